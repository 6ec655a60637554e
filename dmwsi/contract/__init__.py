"""The DMWSI contract (wsdl/, xsd/) read into plain records: the model the
SOAP edge, the push sender and the payload codec all build on. No spyne,
no zeep here."""
from dmwsi.contract.reader import (CALLBACK_NAMESPACE, CALLBACK_WSDL, CONTRACT_DIR, MAIN_NAMESPACE, MAIN_WSDL,
                                   WSDL, XS, Contract, ContractError, Field, Operation, load_contract)

__all__ = ["CALLBACK_NAMESPACE", "CALLBACK_WSDL", "CONTRACT_DIR", "MAIN_NAMESPACE", "MAIN_WSDL", "WSDL", "XS",
           "Contract", "ContractError", "Field", "Operation", "load_contract"]
