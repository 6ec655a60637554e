"""MDM2-3, OES2: the server signs its messages (responses, pushes) so that
standard WS-Security receivers verify them; the policy file is read strictly."""
import shutil
import subprocess

import pytest
import zeep
from lxml import etree
from zeep.wsse.signature import verify_envelope

from dmwsi.security import SignaturePlugin, sign_envelope
from dmwsi.security.principals import PolicyError, load_policy
from tests.security.conftest import SOAP, WSU, envelope, post, register_body, successes, write_policy

XMLSEC1 = shutil.which("xmlsec1")


def test_sign_envelope_verifies_with_zeep(signer, tmp_path):
    signed = sign_envelope(etree.tostring(envelope(register_body("IMEI:400"))), signer.key, signer.cert)
    verify_envelope(etree.fromstring(signed), str(signer.cert))       # raises on failure
    with pytest.raises(zeep.exceptions.SignatureVerificationFailed):
        verify_envelope(etree.fromstring(signed.replace(b"IMEI:400", b"IMEI:401")), str(signer.cert))


@pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 CLI not installed (apt-get install xmlsec1)")
def test_sign_envelope_verifies_with_xmlsec1(signer, tmp_path):
    signed = tmp_path / "signed.xml"
    signed.write_bytes(sign_envelope(etree.tostring(envelope(register_body("IMEI:402"))),
                                     signer.key.read_bytes(), signer.cert.read_bytes()))
    result = subprocess.run([XMLSEC1, "--verify", "--pubkey-cert-pem", str(signer.cert),
                             "--id-attr:Id", f"{SOAP}:Body", "--id-attr:Id", f"{WSU}:Timestamp", str(signed)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_envelope_signed_by_us_is_accepted_by_our_verifier(secure_server, signer):
    """What a push receiver sees is what a dmwsi server accepts."""
    signed = sign_envelope(etree.tostring(envelope(register_body("IMEI:403"))), signer.key, signer.cert)
    assert post(secure_server.soap_url, signed).status_code == 200
    assert successes(secure_server, "RegisterDevice")[0].principal == "signer"


def test_signature_plugin_signs_zeep_calls(secure_server, signer):
    """The zeep plugin the push sender uses, pointed at a dmwsi endpoint."""
    soap = zeep.Client(secure_server.soap_url + "?wsdl", wsse=SignaturePlugin(signer.key, signer.cert))
    soap.service.RegisterDevice(device={"deviceId": "IMEI:404"}, clientPassword="c", serverPassword="s")
    assert successes(secure_server, "RegisterDevice")[0].principal == "signer"


def test_policy_file_is_read_strictly(tmp_path, signer):
    ok = write_policy(tmp_path, f'''
[principals.a]
roles = ["operator"]
username = "a"
password_env = "A_PASSWORD"
future_key = "kept for authorization"
[principals.b]
certificate_subject = "{signer.subject}"
[roles.operator]
permissions = ["*"]
''')
    policy = load_policy(ok, environ={"A_PASSWORD": "from-env"})
    assert policy.by_username("a").password == "from-env"
    assert policy.get("a").extra == {"future_key": "kept for authorization"}
    assert policy.raw["roles"]["operator"]["permissions"] == ["*"]
    from cryptography import x509
    assert policy.by_certificate(x509.load_pem_x509_certificate(signer.cert.read_bytes())).name == "b"
    assert load_policy(ok, environ={}).by_username("a") is None     # no password: no UsernameToken
    for bad in ('[principals.x]\nroles = "operator"\n',
                '[principals.x]\ncertificate_subject = "not a DN"\n',
                '[principals.x]\nusername = "u"\npassword = "p"\n[principals.y]\nusername = "u"\npassword = "q"\n',
                '[principals.anonymous]\nusername = "u"\npassword = "p"\n',
                '[principals.x]\nencrypt_responses = true\n'):
        with pytest.raises(PolicyError):
            load_policy(write_policy(tmp_path, bad), environ={})
