"""What ``?wsdl`` serves is the authored contract, element by element, and
what spyne implements says the same; soap:address names the URL a client
should call (``server.public_url``, else the request's scheme, host and path)."""
import copy

import pytest
import requests
from lxml import etree
from spyne.interface.wsdl import Wsdl11

from dmwsi.contract import MAIN_WSDL, load_contract
from dmwsi.wsi.application import contract_application
from tests.contract.wsdl_view import (SOAP, WSDL, XS, authored_schemas, differences, documentation_count, elements, interface,
                       parse, served_schemas)


def fetch(url, **options):
    response = requests.get(url + "?wsdl", timeout=10, **options)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"].startswith("text/xml")
    return parse(response.content)


def address(root):
    return root.find(f"{{{WSDL}}}service/{{{WSDL}}}port/{{{SOAP}}}address").get("location")


def contract_differences(authored_path, served):
    """Every difference between the served document and the authored WSDL with its XSD files.

    The served document differs by design in two places only: wsdl:types holds the XSD files'
    schemas themselves (xs:include dropped, xs:import without schemaLocation), and soap:address.
    """
    authored = parse(authored_path)
    served = copy.deepcopy(served)
    served.find(f"{{{WSDL}}}service/{{{WSDL}}}port/{{{SOAP}}}address").set("location", address(authored))
    found = []
    if authored.attrib != served.attrib:
        found.append(f"definitions: {dict(authored.attrib)} != {dict(served.attrib)}")
    outside = [e for e in elements(authored) if e.tag != f"{{{WSDL}}}types"]
    served_outside = [e for e in elements(served) if e.tag != f"{{{WSDL}}}types"]
    if len(outside) != len(served_outside):
        found.append(f"definitions: {len(outside)} children != {len(served_outside)}")
    for a, b in zip(outside, served_outside):
        found.extend(differences(a, b, f"{etree.QName(a).localname}[{a.get('name')}]"))
    files, inlined = authored_schemas(authored_path), served_schemas(served)
    if set(files) != set(inlined):
        found.append(f"schemas for {sorted(files)} != {sorted(inlined)}")
    for ns, schema in files.items():
        if ns not in inlined:
            continue
        schema = copy.deepcopy(schema)
        for include in schema.findall(f"{{{XS}}}include"):
            schema.remove(include)
        for imported in schema.findall(f"{{{XS}}}import"):
            del imported.attrib["schemaLocation"]
        found.extend(differences(schema, inlined[ns], f"schema[{ns}]"))
    return found


def test_served_wsdl_is_the_authored_contract_element_by_element(shared_server):
    served = fetch(shared_server.soap_url)
    assert contract_differences(MAIN_WSDL, served) == []
    # Operations, messages, types and facets are all in what was compared; these say it was the real thing.
    operations = served.findall(f"{{{WSDL}}}portType/{{{WSDL}}}operation")
    assert len(operations) == len(load_contract().operations) >= 30
    authored_docs = documentation_count(parse(MAIN_WSDL), *authored_schemas(MAIN_WSDL).values())
    assert documentation_count(served) == authored_docs >= 589 + 30


def test_the_comparison_sees_a_changed_facet_documentation_or_fault(facet_wsdl):
    """The element-by-element comparison is not blind: one edit anywhere is reported at its place."""
    from dmwsi.contract.served import ServedWsdl
    served = parse(ServedWsdl(load_contract(facet_wsdl)).document("http://h/soap"))
    assert contract_differences(facet_wsdl, served) == []

    edited = copy.deepcopy(served)
    edited.find(f".//{{{XS}}}simpleType[@name='Name']/{{{XS}}}restriction/{{{XS}}}maxLength").set("value", "9")
    assert any("simpleType[Name]" in d and "maxLength" in d for d in contract_differences(facet_wsdl, edited))

    edited = copy.deepcopy(served)
    edited.find(f".//{{{XS}}}element[@name='note']//{{{XS}}}documentation").text = "Something else."
    assert any("element[note]" in d for d in contract_differences(facet_wsdl, edited))

    edited = copy.deepcopy(served)
    operation = edited.find(f"{{{WSDL}}}portType/{{{WSDL}}}operation")
    etree.SubElement(operation, f"{{{WSDL}}}fault", name="Refused", message="tns:PutResponse")
    assert any("portType[Facets]" in d for d in contract_differences(facet_wsdl, edited))


def spyne_picture(contract):
    """spyne's own WSDL for the application the server runs, as an interface picture."""
    application = contract_application(contract, {}.get)
    wsdl = Wsdl11(application.interface)
    wsdl.build_interface_document("http://127.0.0.1/soap")
    root = parse(wsdl.get_interface_document())
    return interface(root, served_schemas(root))


def authored_picture(path):
    return interface(parse(path), authored_schemas(path))


@pytest.mark.parametrize("which", ["main", "facets"])
def test_spyne_implements_the_authored_interface(which, facet_wsdl):
    """What is served (the authored contract) is also what spyne deserializes and answers."""
    path = MAIN_WSDL if which == "main" else facet_wsdl
    authored, implemented = authored_picture(path), spyne_picture(load_contract(path))
    assert implemented["operations"] == authored["operations"]
    assert implemented["simpleTypes"] == authored["simpleTypes"]
    assert implemented["complexTypes"] == authored["complexTypes"]
    # spyne also declares a top-level element for each complex type it emits (named as the type).
    extra = {q: t for q, t in implemented["elements"].items() if q not in authored["elements"]}
    assert all(q == t and q in authored["complexTypes"] for q, t in extra.items()), extra
    assert {q: implemented["elements"].get(q) for q in authored["elements"]} == authored["elements"]
    if which == "facets":      # the picture sees facets: the test would notice one lost
        assert authored["simpleTypes"]["{urn:dmwsi:test:facets}Name"][2] == {"minLength": "1", "maxLength": "8"}


def test_address_follows_the_request_over_http_and_https(shared_server, tls_pair):
    assert address(fetch(shared_server.soap_url)) == shared_server.soap_url
    assert address(fetch(shared_server.https_url, verify=str(tls_pair[1]))) == shared_server.https_url
    assert shared_server.https_url.startswith("https://")


def test_address_honours_the_host_header(shared_server):
    root = fetch(shared_server.soap_url, headers={"Host": "dm.example.com:8081"})
    assert address(root) == "http://dm.example.com:8081/soap"
    root = fetch(shared_server.soap_url, headers={"Host": "[2001:db8::1]"})
    assert address(root) == "http://[2001:db8::1]/soap"


def test_a_host_header_that_names_no_host_is_refused(shared_server):
    response = requests.get(shared_server.soap_url + "?wsdl", headers={"Host": 'x" y'}, timeout=10)
    assert response.status_code == 500
    fault = etree.fromstring(response.content).find("{*}Body/{*}Fault")
    assert fault.find("detail/{*}FaultDetail/{*}code").text == "InvalidRequest"


@pytest.mark.parametrize("public_url, expected", [
    ("https://dm.example.com/api/dmwsi", "https://dm.example.com/api/dmwsi"),    # a path: as it is
    ("https://dm.example.com", "https://dm.example.com/soap"),                   # a base: + the served path
])
def test_address_is_the_public_url_when_configured(start_server, public_url, expected):
    server = start_server(server={"public_url": public_url})
    assert address(fetch(server.soap_url)) == expected
    assert address(fetch(server.soap_url, headers={"Host": "elsewhere:1"})) == expected


def test_a_public_url_that_is_not_http_fails_the_start(start_server):
    from dmwsi.config import ConfigError
    with pytest.raises(ConfigError, match="server.public_url"):
        start_server(server={"public_url": "ftp://dm.example.com/soap"})
