"""The contract reader: the served WSDL seen through zeep's parser has the
authored operations and types (the element-by-element comparison is in
test_contract_served.py), and every construct outside the supported subset is
refused at its file:line."""
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


# --- the strict reader: every construct outside the subset refused at its file:line --------------

from tests.contract.conftest import FACET_WSDL, FACET_XSD, write_contract  # noqa: E402

XSD_REFUSALS = [
    # (replace this, with this, the line holding this marker, the refusal)
    ('<xs:element name="accepted" type="xs:int"/>', '<xs:element name="accepted" type="xs:int"/></xs:sequence>'
     '<xs:attribute name="a" type="xs:string"/><xs:sequence>', "xs:attribute", "more than one xs:sequence|xs:attribute"),
    ('<xs:length value="3"/>', '<xs:totalDigits value="3"/>', "totalDigits", "xs:totalDigits in xs:restriction"),
    ('<xs:restriction base="xs:int"><xs:minInclusive value="1"/>',
     '<xs:restriction base="xs:int"><xs:length value="1"/>', 'base="xs:int"><xs:length', "xs:length on xs:int"),
    ('<xs:enumeration value="green"/>', '<xs:enumeration value="green"/><xs:maxLength value="5"/>',
     'value="green"', "xs:enumeration together with other facets"),
    ('<xs:maxLength value="8"/>', '<xs:maxLength value="8"/><xs:maxLength value="9"/>', 'value="9"',
     "xs:maxLength given twice"),
    ('<xs:restriction base="xs:long">', '<xs:restriction base="xs:decimal">', "xs:decimal",
     "restriction of decimal"),
    ('name="code" type="tns:Code"', 'name="code" type="tns:Code" fixed="abc"', 'fixed="abc"',
     "attribute fixed on xs:element"),
    ('name="code" type="tns:Code"', 'name="code" type="tns:Missing"', "tns:Missing", "Missing is not defined"),
    ('name="accepted" type="xs:int"', 'name="accepted" type="xs:dateTime" minOccurs="0" default="2020-01-01T00:00:00Z"',
     "xs:dateTime", "a default on a dateTime"),
    ('name="colors" type="tns:Color" minOccurs="0" maxOccurs="3"', 'name="colors" type="tns:Color" minOccurs="4" '
     'maxOccurs="3"', 'minOccurs="4"', "minOccurs is larger than maxOccurs"),
    ('<xs:documentation>Free text.</xs:documentation>', '<xs:documentation>Free <b>text</b>.</xs:documentation>',
     "<b>", "markup in xs:documentation"),
    ('name="count" type="tns:Count" minOccurs="0"', 'name="count" type="tns:Count" minOccurs="zero"',
     'minOccurs="zero"', "minOccurs='zero'"),
]

WSDL_REFUSALS = [
    ('<soap:binding style="document"', '<soap:binding style="rpc"', 'style="rpc"', "only document style"),
    ('<wsdl:output><soap:body use="literal"/></wsdl:output>', '<wsdl:output><soap:body use="encoded"/></wsdl:output>',
     'use="encoded"', "use='encoded'"),
    ('<wsdl:documentation>A contract', '<wsdl:import namespace="urn:x" location="x.wsdl"/><wsdl:documentation>'
     'A contract', "wsdl:import", "wsdl:import in wsdl:definitions"),
    ('<wsdl:output message="tns:PutResponse"/>', "", '<wsdl:operation name="Put">',
     "wsdl:operation needs exactly one output"),
    ('<wsdl:part name="Put" element="tns:Put"/>', '<wsdl:part name="Put" element="tns:Put"/>'
     '<wsdl:part name="More" element="tns:Put"/>', 'name="More"', "wsdl:message needs exactly one part"),
    ('<soap:address location="http://localhost/soap"/>', '<soap:address location="http://localhost/soap"/>'
     '<soap:address location="http://localhost/other"/>', "/other", "needs exactly one address"),
    ("http://schemas.xmlsoap.org/wsdl/soap/", "http://schemas.xmlsoap.org/wsdl/soap12/", "<soap:binding",
     "soap12/}:binding in wsdl:binding"),
]


def _line_of(text, marker):
    return next(n for n, line in enumerate(text.splitlines(), 1) if marker in line)


@pytest.mark.parametrize("old, new, marker, refusal", XSD_REFUSALS, ids=[r[3] for r in XSD_REFUSALS])
def test_reader_refuses_xsd_constructs_at_their_line(tmp_path, old, new, marker, refusal):
    assert old in FACET_XSD
    xsd = FACET_XSD.replace(old, new, 1)
    wsdl = write_contract(tmp_path, xsd=xsd)
    with pytest.raises(ContractError, match=rf"facets\.xsd:{_line_of(xsd, marker)}: .*({refusal})"):
        load_contract(wsdl)


@pytest.mark.parametrize("old, new, marker, refusal", WSDL_REFUSALS, ids=[r[3] for r in WSDL_REFUSALS])
def test_reader_refuses_wsdl_constructs_at_their_line(tmp_path, old, new, marker, refusal):
    assert old in FACET_WSDL
    wsdl_text = FACET_WSDL.replace(old, new)
    wsdl = write_contract(tmp_path, wsdl=wsdl_text)
    with pytest.raises(ContractError, match=rf"facets\.wsdl:{_line_of(wsdl_text, marker)}: .*{refusal}"):
        load_contract(wsdl)


def test_the_shipped_contracts_are_inside_the_subset():
    """The reader accepts both shipped contracts and keeps all their documentation."""
    main, callback = load_contract(), load_contract(CALLBACK_WSDL)
    assert all(op.documentation for op in main.operations.values())
    assert all(main.type_docs.values()) and all(callback.type_docs.values())
    documented = [f for fields in main.complex_types.values() for f in fields if f.documentation]
    assert len(documented) > 400
