"""Spyne model classes generated from the contract (dmwsi.contract): the
SOAP edge's view of the types; nothing here types a field twice."""
from spyne import ComplexModel
from spyne.model.binary import ByteArray
from spyne.model.enum import Enum
from spyne.model.primitive import Boolean, DateTime, Int, Long, Unicode

from dmwsi.contract import XS, ContractError

BUILTINS = {
    "string": Unicode,
    "int": Int,
    "long": Long,
    "boolean": Boolean,
    "dateTime": DateTime,
    "base64Binary": ByteArray,
}


class ModelFactory:
    """Spyne model classes for a contract's types, built once and shared."""

    def __init__(self, contract):
        self.contract = contract
        self._models = {}

    def model(self, qname):
        if qname in self._models:
            return self._models[qname]
        ns, name = qname
        if ns == XS:
            if name not in BUILTINS:
                raise ContractError(f"unsupported built-in type xs:{name}")
            model = BUILTINS[name]
        elif qname in self.contract.enums:
            # spyne's Enum (unlike Unicode(values=...)) stays one named simpleType when customized.
            model = Enum(*self.contract.enums[qname], type_name=name)
            model.__namespace__ = ns
        elif qname in self.contract.complex_types:
            model = ComplexModel.produce(namespace=ns, type_name=name, members={})
            self._models[qname] = model  # registered before members: types may refer to themselves
            members = [(f.name, self.field_model(f)) for f in self.contract.complex_types[qname]]
            model._type_info.update(members)
        else:
            raise ContractError(f"type {{{ns}}}{name} is not defined in the contract")
        self._models[qname] = model
        return model

    def field_model(self, f):
        return self.model(f.type).customize(
            min_occurs=f.min_occurs, max_occurs=f.max_occurs, nillable=False)

    def members(self, element_qname):
        """(name, spyne type) for each field of a wrapper element."""
        return [(f.name, self.field_model(f)) for f in self.contract.fields_of(element_qname)]
