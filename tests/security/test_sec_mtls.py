"""ES5, OF5, MDM1: HTTPS with mutual TLS. Client certificates are verified
against tls.client_ca_file at the handshake; the verified certificate maps to
its principal; secondary DM servers must come with their own certificate."""
import pytest
import requests
import zeep
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from tests.security.conftest import envelope, post, register_body, successes, wsse_fault


@pytest.fixture
def mtls_server(start_server, policy_file, pki):
    def start(require):
        return start_server(
            tls={"client_ca_file": str(pki.ca[2]), "require_client_cert": require},
            security={"policy_file": str(policy_file), "allow_anonymous": False, "trusted_ca_file": str(pki.ca[2])})
    return start


def https_post(server, env, tls_pair, cert=None):
    return post(server.https_url, env, verify=str(tls_pair[1]), cert=cert.pair if cert else None)


def test_no_certificate_is_refused_at_the_handshake(mtls_server, tls_pair):
    server = mtls_server(require=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        https_post(server, envelope(register_body("IMEI:300")), tls_pair)
    assert server.store.get_device("IMEI:300") is None
    assert server.store.query_log(limit=10)[0] == []     # nothing reached the SOAP layer


def test_certificate_from_another_ca_is_refused_at_the_handshake(mtls_server, pki, tls_pair, dm2):
    rogue = pki.issue("dm2.example", ca=pki.rogue_ca)      # dm2's subject, the wrong issuer
    for require in (True, False):
        server = mtls_server(require=require)
        with pytest.raises(requests.exceptions.ConnectionError):
            https_post(server, envelope(register_body("IMEI:301")), tls_pair, cert=rogue)
        assert server.store.get_device("IMEI:301") is None
        assert server.store.query_log(limit=10)[0] == []


def test_client_certificate_reaches_its_principal(mtls_server, dm2, tls_pair):
    server = mtls_server(require=True)
    session = requests.Session()
    session.cert, session.verify = dm2.pair, str(tls_pair[1])
    session.trust_env = False     # else REQUESTS_CA_BUNDLE overrides session.verify
    soap = zeep.Client(server.https_url + "?wsdl", transport=Transport(session=session))
    soap.service.RegisterDevice(device={"deviceId": "IMEI:302"}, clientPassword="c", serverPassword="s")
    log = soap.service.GetTransactionLog(operation="RegisterDevice")
    assert [(e.principal, e.success) for e in log.entries] == [("dm2", True)]


def test_secondary_dm_without_its_certificate_is_refused(mtls_server, dm2, signer, tls_pair):
    server = mtls_server(require=False)

    def request(device_id):
        env = envelope(register_body(device_id))
        UsernameToken("dm2", "dm2-secret", use_digest=True).apply(env, {})
        return env

    # Right password, but no TLS client certificate (plain HTTP, then HTTPS without one).
    assert wsse_fault(post(server.soap_url, request("IMEI:303"))) == "FailedAuthentication"
    assert wsse_fault(https_post(server, request("IMEI:303"), tls_pair)) == "FailedAuthentication"
    # Another principal's certificate: the transport and the message disagree.
    assert wsse_fault(https_post(server, request("IMEI:303"), tls_pair, cert=signer)) == "FailedAuthentication"
    assert server.store.get_device("IMEI:303") is None
    assert successes(server) == []
    # Its own certificate and its password: accepted.
    assert https_post(server, request("IMEI:304"), tls_pair, cert=dm2).status_code == 200
    assert successes(server, "RegisterDevice")[0].principal == "dm2"


def test_optional_client_certificate_and_other_credentials(mtls_server, tls_pair, pki):
    server = mtls_server(require=False)
    # No certificate, no credentials: refused by policy (allow_anonymous = false), not by TLS.
    assert wsse_fault(https_post(server, envelope(register_body("IMEI:305")), tls_pair)) == "FailedAuthentication"
    # A trusted certificate that names no principal proves nothing.
    stranger = pki.issue("stranger.example")
    response = https_post(server, envelope(register_body("IMEI:305")), tls_pair, cert=stranger)
    assert wsse_fault(response) == "FailedAuthentication"
    assert server.store.get_device("IMEI:305") is None
    # A UsernameToken over HTTPS without a certificate is fine for a principal that needs none.
    env = envelope(register_body("IMEI:306"))
    UsernameToken("alice", "alice-secret", use_digest=True).apply(env, {})
    assert https_post(server, env, tls_pair).status_code == 200
    assert successes(server, "RegisterDevice")[0].principal == "alice"
