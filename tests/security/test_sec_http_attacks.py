"""Attacks on the SOAP request path through a real server, with raw bytes
(http.client), so no client library normalises them away (issue 8, items
1, 6, 7; docs/security.rst "Threat model and tested attacks").

* Every operation of the contract, sent with every method spelling, runs
  nothing unless it is an authenticated, exact ``POST``.
* Every request of the hostile corpus (tests/security/corpus/soap/: DTDs,
  entities, bad UTF-8, not XML, wrong root, no Body, ...) is answered with the
  ``InvalidRequest`` Client fault, nothing is stored, no traceback is logged,
  and the server keeps serving.
"""
import http.client
import logging
import ssl
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree

from dmwsi.config import PROJECT_ROOT
from tests.security.conftest import NS, SOAP, envelope, register_body, signed_request

CORPUS = Path(__file__).parent / "corpus" / "soap"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
# Method spellings an attacker tries; only the exact "POST" may carry a SOAP message.
METHODS = ["post", "Post", "pOST", "PoSt", "PUT", "PATCH", "DELETE", "OPTIONS", "GET", "PROPFIND", "M-POST"]


def contract_operations():
    """(operation, input element local name) for every operation of the contract's portType."""
    wsdl = etree.parse(str(PROJECT_ROOT / "wsdl" / "dmwsi-1.0.wsdl"))
    messages = {m.get("name"): m.find(f"{{{WSDL_NS}}}part").get("element").split(":")[-1]
                for m in wsdl.iterfind(f"{{{WSDL_NS}}}message")}
    return [(op.get("name"), messages[op.find(f"{{{WSDL_NS}}}input").get("message").split(":")[-1]])
            for op in wsdl.iterfind(f"{{{WSDL_NS}}}portType/{{{WSDL_NS}}}operation")]


def send(url, method, body, headers=None):
    """One raw request -> (status, headers dict, body bytes)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=20,
                                           context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    try:
        conn.putrequest(method, parts.path + (f"?{parts.query}" if parts.query else ""), skip_accept_encoding=True)
        all_headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""', "Content-Length": str(len(body))}
        all_headers.update(headers or {})
        for name, value in all_headers.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), (b"" if method == "HEAD" else response.read())
    finally:
        conn.close()


def table_fault(data):
    """(faultcode, dmwsi code) of a SOAP 1.1 fault document."""
    root = etree.fromstring(data)
    assert root.tag == f"{{{SOAP}}}Envelope"
    fault = root.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None, data[:300]
    return fault.findtext("faultcode"), fault.findtext("detail/{*}FaultDetail/{*}code")


def operation_body(operation, element, device_id):
    if operation == "RegisterDevice":
        return register_body(device_id)
    return f"<d:{element} xmlns:d='{NS}'/>"


def nothing_ran(srv, device_ids):
    """No device registered and no call reached the dispatcher (which logs every call with its principal)."""
    assert all(srv.store.get_device(d) is None for d in device_ids)
    reached = [e for e in srv.store.query_log(limit=1000)[0] if e.principal is not None]
    assert reached == [], [(e.operation, e.principal, e.summary) for e in reached[:5]]


def test_method_spellings_run_nothing(secure_server):
    srv = secure_server
    operations = contract_operations()
    assert len(operations) > 20 and ("RegisterDevice", "RegisterDevice") in operations
    registered = []
    for url in (srv.soap_url, srv.https_url):
        for operation, element in operations:
            for method in METHODS:
                device_id = f"ATTACK-{uuid.uuid4().hex[:8]}"
                registered.append(device_id)
                body = etree.tostring(envelope(operation_body(operation, element, device_id)))
                status, headers, data = send(url, method, body)
                assert status == 405, (url, operation, method, status, data[:200])
                assert headers.get("Allow") == "POST, GET"
                assert table_fault(data) == ("soap:Client", "MethodNotAllowed")
            # The control: the exact method without credentials is refused by authentication.
            status, _, data = send(url, "POST", etree.tostring(envelope(operation_body(operation, element, "X"))))
            assert status == 500 and table_fault(data)[1] == "NotAuthenticated"
    nothing_ran(srv, registered + ["X"])
    # The WSDL stays public, with GET only.
    status, _, data = send(srv.soap_url + "?wsdl", "GET", b"", {"Content-Length": "0"})
    assert status == 200 and b"RegisterDevice" in data


def test_tampered_signed_request_with_lowercase_post_is_refused(secure_server, signer):
    srv = secure_server
    signed = etree.tostring(signed_request(register_body("SIGNED-OK"), signer))
    tampered = signed.replace(b"SIGNED-OK", b"TAMPERED1")
    for url in (srv.soap_url, srv.https_url):
        for method in ("post", "Post"):
            status, _, data = send(url, method, tampered)
            assert status == 405 and table_fault(data)[1] == "MethodNotAllowed"
        status, _, data = send(url, "POST", tampered)
        assert status == 500 and table_fault(data)[1] == "NotAuthenticated"
    assert srv.store.get_device("TAMPERED1") is None
    # The untampered request, exactly as signed, still runs: the refusals above were the method.
    status, _, data = send(srv.soap_url, "POST", signed)
    assert status == 200, data[:300]
    assert srv.store.get_device("SIGNED-OK") is not None


def test_get_with_a_body_is_refused(secure_server):
    body = etree.tostring(envelope(register_body("GET-BODY")))
    status, _, data = send(secure_server.soap_url + "?wsdl", "GET", body)
    assert status == 405 and table_fault(data)[1] == "MethodNotAllowed"
    assert secure_server.store.get_device("GET-BODY") is None


CORPUS_FILES = sorted(p.name for p in CORPUS.iterdir())


@pytest.mark.parametrize("anonymous", [True, False], ids=["anonymous-allowed", "anonymous-refused"])
def test_hostile_corpus_gets_invalid_message(start_server, policy_file, pki, signer, caplog, anonymous):
    """Each hostile request: the InvalidRequest Client fault, a one-line warning, no
    traceback, nothing stored; a valid request still runs afterwards."""
    srv = start_server(security={"policy_file": str(policy_file), "allow_anonymous": anonymous,
                                 "trusted_ca_file": str(pki.ca[2])})
    assert len(CORPUS_FILES) >= 12
    with caplog.at_level(logging.WARNING):
        for name in CORPUS_FILES:
            body = (CORPUS / name).read_bytes()
            for url in (srv.soap_url, srv.https_url):
                status, headers, data = send(url, "POST", body)
                assert status == 500, (name, status, data[:200])
                assert headers.get("Content-Type", "").startswith("text/xml")
                assert table_fault(data) == ("soap:Client", "InvalidRequest"), name
                assert b"root:" not in data and b"lol" not in data
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    warnings = [r.getMessage() for r in caplog.records if "InvalidRequest" in r.getMessage()]
    assert len(warnings) == 2 * len(CORPUS_FILES)
    assert all(len(w) < 600 and "sha256" in w for w in warnings)
    assert not [d for d in srv.store.query_log(limit=1000)[0] if d.principal is not None]
    assert not [n for n in ("CORPUS-internal", "CORPUS-external", "CORPUS-param", "CORPUS-with-security")
                if srv.store.get_device(n) is not None]
    # The server keeps serving: a valid signed request runs.
    status, _, data = send(srv.soap_url, "POST", etree.tostring(signed_request(register_body("AFTER-CORPUS"), signer)))
    assert status == 200, data[:300]
    assert srv.store.get_device("AFTER-CORPUS") is not None
