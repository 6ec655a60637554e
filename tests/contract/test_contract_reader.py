"""The served WSDL is the hand-authored contract: same operations, same
message elements, same types (compared through zeep's parser)."""
import pytest
import zeep

from dmwsi.contract import CALLBACK_WSDL, MAIN_WSDL, ContractError, load_contract
from dmwsi.wsi.application import build_service


def operation_signatures(client):
    signatures = {}
    for service in client.wsdl.services.values():
        for port in service.ports.values():
            for name, op in port.binding._operations.items():
                signatures[name] = (
                    op.input.body.qname, op.input.signature(as_output=False),
                    op.output.body.qname, op.output.signature(as_output=True),
                    op.soapaction,
                )
    return signatures


def test_served_wsdl_equals_hand_authored(dmwsi_server):
    authored = operation_signatures(zeep.Client(str(MAIN_WSDL)))
    served = operation_signatures(zeep.Client(dmwsi_server.soap_url + "?wsdl"))
    assert len(authored) == len(load_contract().operations) >= 30
    assert served.keys() == authored.keys()
    for name in authored:
        assert served[name] == authored[name], name


def test_served_types_equal_hand_authored(dmwsi_server):
    authored = zeep.Client(str(MAIN_WSDL)).wsdl.types
    served = zeep.Client(dmwsi_server.soap_url + "?wsdl").wsdl.types
    ns = load_contract().target_namespace
    authored_types = {t.qname: t.signature(schema=authored) for t in authored.types if t.qname is not None and t.qname.namespace == ns}
    served_types = {t.qname: t.signature(schema=served) for t in served.types if t.qname is not None and t.qname.namespace == ns}
    assert authored_types
    for qname, signature in authored_types.items():
        assert served_types.get(qname) == signature, qname


def test_namespace_carries_version():
    assert load_contract().target_namespace.endswith("/1.0")
    assert load_contract(CALLBACK_WSDL).target_namespace.endswith("/1.0")


def test_every_operation_documents_requirement_ids():
    for op in load_contract().operations.values():
        assert "Serves:" in op.documentation, op.name


def test_callback_contract_builds_services():
    contract = load_contract(CALLBACK_WSDL)
    assert set(contract.operations) == {"DeviceResult", "ResultsAvailable", "EventOccurred",
                                        "DiagnosticsReport", "JobCompleted"}
    service = build_service(contract, {}.get)
    assert set(service.public_methods) == set(contract.operations)


def test_reader_refuses_constructs_outside_the_subset(tmp_path):
    xsd = tmp_path / "bad.xsd"
    xsd.write_text("""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t" elementFormDefault="qualified"
        xmlns:tns="urn:t"><xs:complexType name="T"><xs:choice><xs:element name="a" type="xs:string"/>
        </xs:choice></xs:complexType></xs:schema>""")
    wsdl = tmp_path / "bad.wsdl"
    wsdl.write_text(f"""<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
        xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:t">
        <wsdl:types><xs:schema targetNamespace="urn:t"><xs:include schemaLocation="bad.xsd"/></xs:schema></wsdl:types>
        <wsdl:portType name="P"/><wsdl:binding name="B" type="P"/><wsdl:service name="S"/></wsdl:definitions>""")
    with pytest.raises(ContractError, match=r"bad\.xsd:2: xs:choice in xs:complexType is not supported"):
        load_contract(wsdl)
