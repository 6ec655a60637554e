"""WS-Security interop (MDM2-3, OES1-2): zeep clients (BinarySignature,
UsernameToken digest), requests signed by the xmlsec1 CLI, and signed server
responses checked by xmlsec1 --verify and by zeep's verifier."""
import shutil
import subprocess

import pytest
import xmlsec
import zeep
from lxml import etree
from zeep.wsse.signature import BinarySignature, verify_envelope
from zeep.wsse.username import UsernameToken

from tests.security.conftest import (
    SOAP, WSU, add_timestamp, post, register_body, successes, template_request, wsse_fault)

XMLSEC1 = shutil.which("xmlsec1")
needs_xmlsec1 = pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 CLI not installed (apt-get install xmlsec1)")
ID_ATTRS = ["--id-attr:Id", f"{SOAP}:Body", "--id-attr:Id", f"{WSU}:Timestamp"]


class TimestampedSignature(BinarySignature):
    """zeep's BinarySignature over Body + a wsu:Timestamp, RSA-SHA256; verifies
    the server's signed replies with the server certificate (zeep's own
    verify_envelope), counting them."""

    def __init__(self, identity, server_cert=None):
        super().__init__(str(identity.key), str(identity.cert), signature_method=xmlsec.Transform.RSA_SHA256,
                         digest_method=xmlsec.Transform.SHA256)
        self.server_cert = server_cert
        self.verified = 0

    def apply(self, envelope, headers):
        add_timestamp(envelope)
        return super().apply(envelope, headers)

    def verify(self, envelope):
        if self.server_cert is not None:
            verify_envelope(envelope, self.server_cert)
            self.verified += 1
        return envelope


def client(server, wsse):
    return zeep.Client(server.soap_url + "?wsdl", wsse=wsse)


def test_zeep_binary_signature_client_and_signed_replies(secure_server, signer, tls_pair):
    """'signer' has sign_responses: zeep verifies every reply with the server certificate."""
    wsse = TimestampedSignature(signer, server_cert=str(tls_pair[1]))
    soap = client(secure_server, wsse)
    soap.service.RegisterDevice(device={"deviceId": "IMEI:200"}, clientPassword="c", serverPassword="s")
    log = soap.service.GetTransactionLog(operation="RegisterDevice")
    assert [(e.principal, e.success) for e in log.entries] == [("signer", True)]
    assert wsse.verified == 2


def test_zeep_verifier_rejects_a_reply_signed_by_someone_else(secure_server, signer, pki):
    other = pki.issue("not-the-server")
    soap = client(secure_server, TimestampedSignature(signer, server_cert=str(other.cert)))
    with pytest.raises(zeep.exceptions.SignatureVerificationFailed):
        soap.service.GetServiceInfo()


def test_zeep_username_token_digest_client(secure_server):
    soap = client(secure_server, UsernameToken("alice", "alice-secret", use_digest=True))
    soap.service.RegisterDevice(device={"deviceId": "IMEI:201"}, clientPassword="c", serverPassword="s")
    log = soap.service.GetTransactionLog(principal="alice")
    assert [(e.operation, e.principal, e.success) for e in log.entries] == [("RegisterDevice", "alice", True)]


def test_zeep_username_token_with_wrong_password_is_a_wsse_fault(secure_server):
    soap = client(secure_server, UsernameToken("alice", "wrong", use_digest=True))
    with pytest.raises(zeep.exceptions.Fault) as info:
        soap.service.RegisterDevice(device={"deviceId": "IMEI:202"}, clientPassword="c", serverPassword="s")
    assert info.value.code.endswith("FailedAuthentication")
    assert secure_server.store.get_device("IMEI:202") is None


def test_plain_id_attributes_are_accepted(secure_server, signer):
    """References through a plain ``Id`` attribute (zeep's own verifier fails on them)."""
    env = template_request(register_body("IMEI:203"), signer, id_attr="Id")
    ctx = xmlsec.SignatureContext()
    ctx.key = xmlsec.Key.from_file(str(signer.key), xmlsec.KeyFormat.PEM)
    for node in (env.find(f"{{{SOAP}}}Body"), env.find(f".//{{{WSU}}}Timestamp")):
        ctx.register_id(node, "Id")
    ctx.sign(env.find(".//{http://www.w3.org/2000/09/xmldsig#}Signature"))
    response = post(secure_server.soap_url, env)
    assert response.status_code == 200, response.text
    assert successes(secure_server, "RegisterDevice")[0].principal == "signer"


@needs_xmlsec1
def test_request_signed_by_xmlsec1_is_accepted(secure_server, signer, tmp_path):
    template = tmp_path / "template.xml"
    template.write_bytes(etree.tostring(template_request(register_body("IMEI:204"), signer, id_attr="Id")))
    signed = tmp_path / "signed.xml"
    subprocess.run([XMLSEC1, "--sign", "--privkey-pem", str(signer.key), *ID_ATTRS,
                    "--output", str(signed), str(template)], check=True, capture_output=True, timeout=30)
    response = post(secure_server.soap_url, signed.read_bytes())
    assert response.status_code == 200, response.text
    assert secure_server.store.get_device("IMEI:204") is not None
    # The same bytes, a byte of the Body changed: refused.
    tampered = signed.read_bytes().replace(b"IMEI:204", b"IMEI:205")
    assert wsse_fault(post(secure_server.soap_url, tampered)) == "FailedCheck"
    assert secure_server.store.get_device("IMEI:205") is None


def xmlsec1_verify(path, cert):
    return subprocess.run([XMLSEC1, "--verify", "--pubkey-cert-pem", str(cert), *ID_ATTRS, str(path)],
                          capture_output=True, text=True, timeout=30)


@needs_xmlsec1
def test_signed_response_verifies_with_xmlsec1(secure_server, signer, tls_pair, tmp_path):
    soap = client(secure_server, TimestampedSignature(signer))
    with soap.settings(raw_response=True):
        response = soap.service.GetServiceInfo()
    assert response.status_code == 200
    root = etree.fromstring(response.content)
    security = root.find(f"{{{SOAP}}}Header/{{http://docs.oasis-open.org/wss/2004/01/"
                         f"oasis-200401-wss-wssecurity-secext-1.0.xsd}}Security")
    # KeyInfo names the BinarySecurityToken (WSS4J style), not bare X509Data.
    reference = security.find(".//{http://docs.oasis-open.org/wss/2004/01/"
                              "oasis-200401-wss-wssecurity-secext-1.0.xsd}SecurityTokenReference/*")
    assert etree.QName(reference).localname == "Reference"
    document = tmp_path / "response.xml"
    document.write_bytes(response.content)
    result = xmlsec1_verify(document, tls_pair[1])
    assert result.returncode == 0, result.stderr
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(response.content.replace(b"GetServiceInfo", b"GetServiceInfX"))
    assert xmlsec1_verify(tampered, tls_pair[1]).returncode != 0


def test_unsigned_responses_for_principals_without_sign_responses(secure_server):
    soap = client(secure_server, UsernameToken("alice", "alice-secret", use_digest=True))
    with soap.settings(raw_response=True):
        response = soap.service.GetServiceInfo()
    assert b"Security" not in response.content
