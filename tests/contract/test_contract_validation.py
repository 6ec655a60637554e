"""Every request is validated against the hand-authored XSD (lxml XMLSchema),
facets included; a refusal is the InvalidRequest fault naming the element."""
import threading

import pytest
import requests
from lxml import etree
from twisted.internet.threads import blockingCallFromThread
from twisted.python.threadpool import ThreadPool
from twisted.web import server
from twisted.web.wsgi import WSGIResource

from dmwsi.config import load_config
from dmwsi.contract import load_contract
from dmwsi.contract.schema import MAX_MESSAGE, RequestSchema
from dmwsi.errors import OperationError
from dmwsi.runtime import Services
from dmwsi.wsi.application import build_soap_app
from tests.contract.conftest import NS, write_contract

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
MAIN_NS = "http://dmwsi.org/ns/dmwsi/1.0"


def put(**fields):
    """A <Put> payload; a list value repeats its element."""
    xml = "".join(f"<t:{name}>{v}</t:{name}>" for name, values in fields.items()
                  for v in (values if isinstance(values, list) else [values]))
    return etree.fromstring(f'<t:Put xmlns:t="{NS}">{xml}</t:Put>')


def refusal(schema, payload):
    with pytest.raises(OperationError) as caught:
        schema.check(payload)
    assert caught.value.code == "InvalidRequest"
    return caught.value


@pytest.fixture
def facet_schema(facet_wsdl):
    return RequestSchema(load_contract(facet_wsdl))


def test_the_reader_reads_every_facet(facet_wsdl):
    types = {name: t for (_, name), t in load_contract(facet_wsdl).simple_types.items()}
    assert types["Code"].facets == {"length": 3}
    assert types["Name"].facets == {"minLength": 1, "maxLength": 8}
    assert types["Serial"].facets == {"pattern": "[A-Z]{2}[0-9]{4}"}
    assert types["Count"].facets == {"minInclusive": 1, "maxInclusive": 100}
    assert types["Offset"].facets == {"minExclusive": -1, "maxExclusive": 10}
    assert types["Color"].enumerations == ["red", "green"]


def test_a_valid_request_passes(facet_schema):
    facet_schema.check(put(code="abc", name="n", serial="AB1234", count=100, offset=9, colors=["red", "green"],
                           note="x"))
    facet_schema.check(put(code="abc", count=1, offset=0))


@pytest.mark.parametrize("fields, element", [
    (dict(code="abcd"), "code"),                        # length
    (dict(code="abc", name=""), "name"),                # minLength
    (dict(code="abc", name="ninechars"), "name"),       # maxLength
    (dict(code="abc", serial="ab1234"), "serial"),      # pattern
    (dict(code="abc", count=0), "count"),               # minInclusive
    (dict(code="abc", count=101), "count"),             # maxInclusive
    (dict(code="abc", offset=-1), "offset"),            # minExclusive
    (dict(code="abc", offset=10), "offset"),            # maxExclusive
    (dict(code="abc", colors="blue"), "colors"),        # enumeration
    (dict(code="abc", colors=["red"] * 4), "colors"),   # maxOccurs
    (dict(name="n"), "name"),                           # code (minOccurs 1) missing: name is unexpected
    (dict(code="abc", count="many"), "count"),          # the base type
])
def test_each_facet_is_enforced(facet_schema, fields, element):
    error = refusal(facet_schema, put(**fields))
    assert error.element == element
    assert error.message.startswith(f"{element}: ") and "{" not in error.message   # no namespace noise


def test_a_huge_value_is_not_echoed_whole(facet_schema):
    error = refusal(facet_schema, put(code="abc", colors="x" * 100_000))
    assert len(error.message) <= MAX_MESSAGE + 20


def envelope_body(inner):
    root = etree.fromstring(f'<s:Envelope xmlns:s="{SOAP11}" xmlns:t="{NS}"><s:Body>{inner}</s:Body></s:Envelope>')
    return root.find(f"{{{SOAP11}}}Body")


def test_the_body_holds_exactly_one_request_element(facet_schema):
    with pytest.raises(OperationError, match="no request element"):
        facet_schema.payload(envelope_body(""))
    with pytest.raises(OperationError, match="no Body"):
        facet_schema.payload(None)
    with pytest.raises(OperationError, match="2 elements") as caught:
        facet_schema.payload(envelope_body("<t:Put><t:code>abc</t:code></t:Put><t:Extra/>"))
    assert caught.value.element == "Extra"
    # A comment is not content: the request is the element after it.
    payload = facet_schema.payload(envelope_body("<!-- hi --><t:Put><t:code>abc</t:code></t:Put>"))
    assert etree.QName(payload).localname == "Put"


def test_every_thread_compiles_the_schema_read_at_start(tmp_path):
    """Threads compile their own schema (lxml keeps the error log on it) from the bytes read at start."""
    schema = RequestSchema(load_contract(write_contract(tmp_path)))
    (tmp_path / "xsd" / "facets.xsd").unlink()      # nothing is read from disk after start
    seen = []

    def validate():
        seen.append(schema._schema())
        refusal(schema, put(code="toolong"))

    threads = [threading.Thread(target=validate) for _ in range(8)]   # at once: compiling is serialized
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in seen}) == 8 and schema._schema() not in seen


def test_a_contract_lxml_cannot_compile_fails_at_start(tmp_path):
    from dmwsi.contract import ContractError
    from tests.contract.conftest import FACET_XSD
    # A pattern that is no regular expression: inside the reader's subset, refused by XML Schema itself.
    bad = FACET_XSD.replace("[A-Z]{{2}}", "[A-Z").replace("[A-Z]{2}", "[A-Z")
    with pytest.raises(ContractError, match="does not compile"):
        RequestSchema(load_contract(write_contract(tmp_path, xsd=bad)))


# --- over HTTP: a real Twisted server serving the facet contract -----------------------------

POLICY = """
[principals.anonymous]
roles = ["tester"]

[roles.tester]
operations = ["*"]
devices = "all"
"""


@pytest.fixture
def facet_server(running_reactor, tmp_path):
    """The facet contract served by build_soap_app (no security layer: validation is what is tested)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "policy.toml").write_text(POLICY)
    config = load_config(overrides={"server": {"data_dir": str(tmp_path / "data")},
                                    "security": {"policy_file": "policy.toml"}}, environ={})
    services = Services.open(config)
    calls = []

    def handle_put(call, request):
        calls.append(request)
        return {"accepted": len(request)}

    app = build_soap_app(services, {"Put": handle_put}, 1_000_000,
                         contract=load_contract(write_contract(tmp_path)))
    pool = ThreadPool(minthreads=1, maxthreads=2, name="facets")
    pool.start()
    port = blockingCallFromThread(running_reactor, running_reactor.listenTCP, 0,
                                  server.Site(WSGIResource(running_reactor, pool, app)), interface="127.0.0.1")
    yield f"http://127.0.0.1:{port.getHost().port}/", calls
    blockingCallFromThread(running_reactor, port.stopListening)
    pool.stop()
    services.close()


def post(url, body, ns=NS):
    envelope = f'<s:Envelope xmlns:s="{SOAP11}" xmlns:t="{ns}"><s:Body>{body}</s:Body></s:Envelope>'
    response = requests.post(url, data=envelope.encode(), headers={"Content-Type": "text/xml"}, timeout=10)
    return response.status_code, etree.fromstring(response.content).find(f"{{{SOAP11}}}Body")


def fault_detail(body, ns=MAIN_NS):   # dmwsi faults carry the main contract's FaultDetail
    fault = body.find(f"{{{SOAP11}}}Fault")
    assert fault is not None, etree.tostring(body)
    detail = fault.find(f"detail/{{{ns}}}FaultDetail")
    return fault.findtext("faultcode"), {etree.QName(c).localname: c.text for c in detail}


def test_over_http_a_facet_violation_is_the_invalid_request_fault(facet_server):
    url, calls = facet_server
    status, body = post(url, "<t:Put><t:code>abc</t:code><t:count>101</t:count></t:Put>")
    faultcode, detail = fault_detail(body)
    assert status == 500 and faultcode.endswith("Client")
    assert (detail["code"], detail["element"]) == ("InvalidRequest", "count")
    assert calls == []      # refused before anything ran


def test_over_http_a_valid_request_reaches_its_handler(facet_server):
    url, calls = facet_server
    status, body = post(url, "<!-- first --><t:Put><t:code>abc</t:code><t:count>7</t:count></t:Put>")
    assert status == 200, etree.tostring(body)
    assert body.findtext(f"{{{NS}}}PutResponse/{{{NS}}}accepted") == "3"
    # The XSD default of an absent field is handed over too.
    assert calls == [{"code": "abc", "count": 7, "note": "none"}]


@pytest.mark.parametrize("inner, message", [
    ("", "no request element"),
    ("<t:Put><t:code>abc</t:code></t:Put><t:Put><t:code>abc</t:code></t:Put>", "2 elements"),
    ("<t:Nothing/>", "Nothing"),
])
def test_over_http_a_body_that_is_not_one_valid_request_is_refused(facet_server, inner, message):
    url, calls = facet_server
    status, body = post(url, inner)
    _, detail = fault_detail(body)
    assert status == 500 and detail["code"] == "InvalidRequest" and message in detail["message"]
    assert calls == []
