"""Fuzzing the SOAP endpoint of a real server (issue 10 item 6): requests
generated from the contract (tests/fuzz/soap_grammar.py) -- valid ones,
structurally mutated ones, broken bytes, other HTTP methods -- sent raw with
http.client. After every request:

* no traceback text is in the answer;
* an answer that is not a success is a SOAP 1.1 Fault whose FaultDetail code
  is one of dmwsi.errors.CODES (HTTP 500, or 405 for MethodNotAllowed);
* a refused request left the store as it was (transaction log aside);
* the server still answers GetServiceInfo with its operations.
"""
import pytest
from lxml import etree

from dmwsi.contract import WSDL, XS
from dmwsi.errors import CODES
from dmwsi.jobs.submit import JobRequest, submit
from dmwsi.records import Command, Device
from tests.fuzz import soap_grammar as grammar
from tests.fuzz.conftest import EXAMPLES, SEED, StoreSnapshot, assert_no_traceback, assert_unchanged, run_property
from tests.security.test_sec_http_attacks import send

SOAP = grammar.SOAP11
GET_SERVICE_INFO = (b'<?xml version="1.0"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
                    b'<soap:Body><d:GetServiceInfo xmlns:d="http://dmwsi.org/ns/dmwsi/1.0"/></soap:Body>'
                    b'</soap:Envelope>')


class SoapTarget:
    def __init__(self, running):
        self.running = running
        self.url = running.soap_url
        self.snapshot = StoreSnapshot(running)
        self.operations = self.service_operations()

    def post(self, request):
        return send(self.url, request.method, request.body, request.headers)

    def service_operations(self):
        """GetServiceInfo's operation list (asserting it is a real success)."""
        status, _, body = send(self.url, "POST", GET_SERVICE_INFO)
        assert status == 200, f"seed {SEED}: GetServiceInfo answered HTTP {status}: {body[:500]!r}"
        root = etree.fromstring(body)
        operations = [e.text for e in root.iterfind(f".//{{{grammar.NS}}}info/{{{grammar.NS}}}operations")]
        assert "GetServiceInfo" in operations, body[:500]
        return operations


@pytest.fixture(scope="module")
def soap_target(fuzz_factory):
    running = fuzz_factory()
    for device_id in grammar.KNOWN_DEVICES:
        running.store.upsert_device(Device(device_id=device_id, man="Acme", mod="P1", fwv="1.0", auth_scheme="md5",
                                           client_username=device_id, client_password="c", server_password="s"))
    # Jobs of the principal anonymous callers act as, so generated jobIds can name them.
    for n, device_id in enumerate(grammar.KNOWN_DEVICES):
        job = submit(running.services, JobRequest(
            principal="anonymous", operation="GetDeviceData", devices=[device_id],
            commands=[Command(action="Get", uri="./DevInfo/Mod", seq=1)], client_job_id=f"fuzz-{n}"))
        grammar.LIVE_JOB_IDS.append(job.job_id)
    target = SoapTarget(running)
    yield target
    target.snapshot.close()
    grammar.LIVE_JOB_IDS.clear()


def parsed(body, where):
    """The answer as an XML tree, asserting it is one (an empty or broken answer fails here, with ``where``)."""
    try:
        return etree.fromstring(body)
    except etree.XMLSyntaxError as error:
        raise AssertionError(f"the answer is not XML ({error}): {where}") from None


def fault_code(status, headers, body, request):
    """The FaultDetail code of a refusal, asserting the refusal is a proper SOAP 1.1 Fault."""
    where = f"seed {SEED}: {request.kind} {request.method} {request.body[:300]!r} -> HTTP {status} {body[:600]!r}"
    assert status in (405, 500), where
    root = parsed(body, where)
    assert root.tag == f"{{{SOAP}}}Envelope", where
    fault = root.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None and fault.findtext("faultcode") and fault.findtext("faultstring") is not None, where
    code = fault.findtext("detail/{*}FaultDetail/{*}code")
    assert code in CODES, where
    assert (status == 405) == (code == "MethodNotAllowed"), where
    if status == 405:
        assert headers.get("Allow") == "POST, GET", where
    return code


def check_success(body, request):
    where = f"seed {SEED}: {request.kind} {request.method} {request.body[:300]!r} -> HTTP 200 {body[:600]!r}"
    root = parsed(body, where)
    if request.method == "GET":     # the WSDL (or a schema) spyne serves
        assert root.tag in (f"{{{WSDL}}}definitions", f"{{{XS}}}schema"), where
        return
    assert root.tag == f"{{{SOAP}}}Envelope" and root.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault") is None, where


# Bugs the fuzzer found that are fixed; each one's minimal request stays as a regression case.
EMPTY_BODY = grammar.Request(
    "empty-body", "POST", b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/>'
    b'</soap:Envelope>', {"Content-Type": "text/xml; charset=utf-8"})
FIXED_BUGS = [
    # Was HTTP 500 with an empty body: spyne's Soap11.decompose_incoming_envelope raised AttributeError on
    # a Body holding no element. Now dmwsi/wsi/application.py:ContractSoap11 validates the Body first.
    (EMPTY_BODY, "InvalidRequest"),
]


def check_request(soap_target, request, before):
    """Send one request and assert the properties; -> outcome (HTTP status or fault code)."""
    status, headers, body = soap_target.post(request)
    assert_no_traceback(body, request.body)
    if request.method == "HEAD":        # no body to look at: the status must still be a refusal
        assert status == 405, f"seed {SEED}: HEAD {request.body[:300]!r} -> HTTP {status} {headers}"
        refused, outcome = True, "405"
    elif status == 200:
        check_success(body, request)
        refused, outcome = False, "200"
    else:
        refused, outcome = True, fault_code(status, headers, body, request)
    if refused:
        assert_unchanged(before, soap_target.snapshot.take(), request.body, body)
    assert soap_target.service_operations() == soap_target.operations, f"seed {SEED}: after {request.body[:300]!r}"
    return outcome


def test_snapshot_sees_one_changed_value(soap_target):
    """The store comparison the properties rely on notices a single changed column."""
    before = soap_target.snapshot.take()
    soap_target.running.store.update_device(grammar.KNOWN_DEVICES[1], fwv="1.1")
    after = soap_target.snapshot.take()
    assert [t for t in before if before[t] != after[t]] == ["devices"]


@pytest.mark.parametrize("request_, code", FIXED_BUGS, ids=[request.kind for request, _ in FIXED_BUGS])
def test_fixed_bug(soap_target, request_, code):
    assert check_request(soap_target, request_, soap_target.snapshot.take()) == code


def test_soap_endpoint_survives_generated_and_mutated_requests(soap_target):
    outcomes = run_property(grammar.REQUESTS, lambda request: (
        request.kind, check_request(soap_target, request, soap_target.snapshot.take())))
    print(f"\nSOAP fuzz outcomes (seed {SEED}): {dict(sorted(outcomes.items()))}")
    # The generator must reach past the schema check into the handlers, and
    # every kind of request must have been sent.
    assert {kind for kind, _ in outcomes} == {"valid", "mutated", "bytes", "http"}
    assert outcomes["valid", "200"] > 0
    assert sum(outcomes.values()) >= EXAMPLES
