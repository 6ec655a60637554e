"""OES3, MDM3: XML Encryption of SOAP Bodies. Responses to a principal with
``encrypt_responses`` are encrypted to its certificate (after signing), and
requests encrypted to the server's certificate are decrypted before the
signature is checked. Decryption here is independent of the server's code
(python-xmlsec driven directly, and the xmlsec1 CLI)."""
import base64
import shutil
import subprocess

import pytest
import xmlsec
from lxml import etree
from zeep.wsse.signature import verify_envelope

from dmwsi.security import encrypt_envelope
from dmwsi.security.principals import PolicyError, load_policy
from tests.security.conftest import (
    NS, SOAP, WSSE, envelope, post, register_body, signed_request, successes, write_policy, wsse_fault)
from tests.security.test_sec_wsse import assert_nothing_ran

XENC = "http://www.w3.org/2001/04/xmlenc#"
XMLSEC1 = shutil.which("xmlsec1")


@pytest.fixture(scope="module")
def sealed(pki):
    """Principal 'sealed': signs its requests, gets signed and encrypted responses."""
    return pki.issue("sealed.example")


@pytest.fixture(scope="module")
def reader(pki):
    """Principal 'reader': UsernameToken, AES-256-CBC encrypted (unsigned) responses."""
    return pki.issue("reader.example")


@pytest.fixture
def encrypting_server(start_server, tmp_path, pki, sealed, reader, signer):
    policy = write_policy(tmp_path, f'''
[principals.sealed]
roles = ["operator", "registrar"]
certificate_file = "{sealed.cert}"
sign_responses = true
encrypt_responses = true

[principals.reader]
roles = ["operator", "registrar"]
username = "reader"
password = "reader-secret"
encryption_certificate_file = "{reader.cert}"
encryption_algorithm = "aes256-cbc"
encrypt_responses = true

[principals.signer]
roles = ["operator", "registrar"]
certificate_subject = "{signer.subject}"
''')
    return start_server(security={"policy_file": str(policy), "allow_anonymous": False,
                                  "trusted_ca_file": str(pki.ca[2])})


def username_request(body_xml, user, password):
    from zeep.wsse.username import UsernameToken
    env = envelope(body_xml)
    UsernameToken(user, password, use_digest=True).apply(env, {})
    return env


def decrypt_response(data, key_path):
    """Decrypt a response's Body like a WSS receiver: the header EncryptedKey
    (RSA-OAEP, our private key) -> the session key -> the DataReference'd
    EncryptedData. Returns the decrypted document."""
    root = etree.fromstring(data)
    security = root.find(f"{{{SOAP}}}Header/{{{WSSE}}}Security")
    [enc_key] = security.findall(f"{{{XENC}}}EncryptedKey")
    [enc_data] = root.find(f"{{{SOAP}}}Body")
    assert enc_data.tag == f"{{{XENC}}}EncryptedData" and enc_data.get("Type") == XENC + "Content"
    [reference] = enc_key.findall(f"{{{XENC}}}ReferenceList/{{{XENC}}}DataReference")
    assert reference.get("URI") == "#" + enc_data.get("Id")
    ctx = xmlsec.EncryptionContext()
    ctx.key = xmlsec.Key.from_file(str(key_path), xmlsec.KeyFormat.PEM, None)
    session_key = ctx.decrypt(enc_key)
    ctx = xmlsec.EncryptionContext()
    ctx.key = xmlsec.Key.from_binary_data(xmlsec.KeyData.AES, session_key)
    ctx.decrypt(enc_data)
    return etree.fromstring(etree.tostring(root))


def encrypt_request(env, cert_path, key_transport=xmlsec.Transform.RSA_OAEP):
    """Encrypt the Body content with python-xmlsec, EncryptedKey inline (the
    plain XML Encryption layout), to ``cert_path``."""
    body = env.find(f"{{{SOAP}}}Body")
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_file(str(cert_path), xmlsec.KeyFormat.CERT_PEM, None))
    enc_data = xmlsec.template.encrypted_data_create(env, xmlsec.Transform.AES256, type=XENC + "Content", ns="xenc")
    xmlsec.template.encrypted_data_ensure_cipher_value(enc_data)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(enc_data, ns="ds")
    enc_key = xmlsec.template.add_encrypted_key(key_info, key_transport)
    xmlsec.template.encrypted_data_ensure_cipher_value(enc_key)
    ctx = xmlsec.EncryptionContext(manager)
    ctx.key = xmlsec.Key.generate(xmlsec.KeyData.AES, 256, xmlsec.KeyDataType.SESSION)
    ctx.encrypt_xml(enc_data, body)
    return etree.tostring(env)


# -- encrypted responses -----------------------------------------------------------

def test_response_is_signed_then_encrypted_to_the_principal(encrypting_server, sealed, tls_pair):
    response = post(encrypting_server.soap_url, signed_request(register_body("IMEI:700"), sealed))
    assert response.status_code == 200, response.text
    assert b"RegisterDeviceResponse" not in response.content      # nothing of the answer in clear
    assert b"EncryptedData" in response.content
    with pytest.raises(xmlsec.Error):                               # someone else's key does not open it
        decrypt_response(response.content, tls_pair[0])
    document = decrypt_response(response.content, sealed.key)
    [answer] = document.find(f"{{{SOAP}}}Body")
    assert etree.QName(answer).localname == "RegisterDeviceResponse" and etree.QName(answer).namespace == NS
    verify_envelope(document, str(tls_pair[1]))      # the signature covers the plaintext Body (raises otherwise)
    assert encrypting_server.store.get_device("IMEI:700") is not None
    assert successes(encrypting_server, "RegisterDevice")[0].principal == "sealed"


def test_usernametoken_principal_gets_aes256_cbc_encrypted_responses(encrypting_server, reader):
    response = post(encrypting_server.soap_url,
                    username_request(register_body("IMEI:701"), "reader", "reader-secret"))
    assert response.status_code == 200, response.text
    assert b"RegisterDeviceResponse" not in response.content
    assert b"http://www.w3.org/2001/04/xmlenc#aes256-cbc" in response.content
    document = decrypt_response(response.content, reader.key)
    assert etree.QName(document.find(f"{{{SOAP}}}Body")[0]).localname == "RegisterDeviceResponse"


def test_other_principals_still_get_clear_responses(encrypting_server, signer):
    response = post(encrypting_server.soap_url, signed_request(register_body("IMEI:702"), signer))
    assert response.status_code == 200 and b"RegisterDeviceResponse" in response.content
    assert b"EncryptedData" not in response.content


@pytest.mark.skipif(XMLSEC1 is None, reason="xmlsec1 CLI not installed (apt-get install xmlsec1)")
def test_xmlsec1_decrypts_the_response(encrypting_server, sealed, tls_pair, tmp_path):
    response = post(encrypting_server.soap_url, signed_request(register_body("IMEI:703"), sealed))
    assert response.status_code == 200, response.text
    wire = tmp_path / "response.xml"
    wire.write_bytes(response.content)
    result = subprocess.run([XMLSEC1, "--decrypt", "--privkey-pem", str(sealed.key),
                             "--id-attr:Id", f"{XENC}:EncryptedKey", str(wire)],
                            capture_output=True, timeout=30)
    assert result.returncode == 0, result.stderr.decode()
    document = etree.fromstring(result.stdout)
    assert etree.QName(document.find(f"{{{SOAP}}}Body")[0]).localname == "RegisterDeviceResponse"
    # And not with a wrong key.
    other = subprocess.run([XMLSEC1, "--decrypt", "--privkey-pem", str(tls_pair[0]),
                            "--id-attr:Id", f"{XENC}:EncryptedKey", str(wire)], capture_output=True, timeout=30)
    assert other.returncode != 0


# -- encrypted requests ------------------------------------------------------------

@pytest.mark.parametrize("layout", ["inline-encrypted-key", "wss11-header-encrypted-key"])
def test_signed_then_encrypted_request_runs(encrypting_server, sealed, tls_pair, layout):
    env = signed_request(register_body("IMEI:710"), sealed)
    if layout == "inline-encrypted-key":
        data = encrypt_request(env, tls_pair[1])
    else:
        data = encrypt_envelope(etree.tostring(env), tls_pair[1].read_bytes())
    assert b"IMEI:710" not in data and b"RegisterDevice" not in data
    response = post(encrypting_server.soap_url, data)
    assert response.status_code == 200, response.text
    assert encrypting_server.store.get_device("IMEI:710") is not None
    assert successes(encrypting_server, "RegisterDevice")[0].principal == "sealed"


def test_encrypted_usernametoken_request_runs(encrypting_server, tls_pair):
    data = encrypt_request(username_request(register_body("IMEI:711"), "reader", "reader-secret"), tls_pair[1])
    response = post(encrypting_server.soap_url, data)
    assert response.status_code == 200, response.text
    assert encrypting_server.store.get_device("IMEI:711") is not None
    assert successes(encrypting_server, "RegisterDevice")[0].principal == "reader"


def test_tampered_ciphertext_is_refused(encrypting_server, sealed, tls_pair):
    data = encrypt_request(signed_request(register_body("IMEI:712"), sealed), tls_pair[1])
    root = etree.fromstring(data)
    value = root.find(f"{{{SOAP}}}Body/{{{XENC}}}EncryptedData/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[-20] ^= 0x01              # a byte of the last full block before the padding block
    value.text = base64.b64encode(bytes(raw)).decode()
    assert wsse_fault(post(encrypting_server.soap_url, etree.tostring(root))) == "FailedCheck"
    assert_nothing_ran(encrypting_server, "IMEI:712")


def test_tampered_gcm_ciphertext_is_refused(encrypting_server, sealed, tls_pair):
    data = encrypt_envelope(etree.tostring(signed_request(register_body("IMEI:713"), sealed)),
                            tls_pair[1].read_bytes(), "aes128-gcm")
    root = etree.fromstring(data)
    value = root.find(f"{{{SOAP}}}Body/{{{XENC}}}EncryptedData/{{{XENC}}}CipherData/{{{XENC}}}CipherValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[20] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()
    assert wsse_fault(post(encrypting_server.soap_url, etree.tostring(root))) == "FailedCheck"
    assert_nothing_ran(encrypting_server, "IMEI:713")


def test_request_encrypted_to_another_key_is_refused(encrypting_server, sealed):
    data = encrypt_request(signed_request(register_body("IMEI:714"), sealed), sealed.cert)
    assert wsse_fault(post(encrypting_server.soap_url, data)) == "FailedCheck"
    assert_nothing_ran(encrypting_server, "IMEI:714")


def test_rsa_pkcs1_v15_key_transport_is_refused(encrypting_server, sealed, tls_pair):
    data = encrypt_request(signed_request(register_body("IMEI:715"), sealed), tls_pair[1],
                           key_transport=xmlsec.Transform.RSA_PKCS1)
    assert wsse_fault(post(encrypting_server.soap_url, data)) == "UnsupportedAlgorithm"
    assert_nothing_ran(encrypting_server, "IMEI:715")


def test_encrypted_body_cannot_hide_a_second_operation(encrypting_server, sealed, tls_pair):
    """A signed request whose plaintext Body is swapped for an encrypted one:
    the signature is checked over what is decrypted, so it fails."""
    signed = signed_request(register_body("IMEI:716"), sealed)
    evil = signed_request(register_body("IMEI:717"), sealed)
    encrypted = etree.fromstring(encrypt_request(evil, tls_pair[1]))
    body = signed.find(f"{{{SOAP}}}Body")
    body[:] = [encrypted.find(f"{{{SOAP}}}Body")[0]]
    assert wsse_fault(post(encrypting_server.soap_url, signed)) == "FailedCheck"
    assert_nothing_ran(encrypting_server, "IMEI:717")
    assert encrypting_server.store.get_device("IMEI:716") is None


# -- policy ------------------------------------------------------------------------

def test_encrypt_responses_needs_a_certificate(tmp_path, sealed):
    ok = write_policy(tmp_path, f'[principals.x]\ncertificate_file = "{sealed.cert}"\nencrypt_responses = true\n')
    assert load_policy(ok, environ={}).get("x").encryption_certificate_der is not None
    for bad in ('[principals.x]\nusername = "u"\npassword = "p"\nencrypt_responses = true\n',
                f'[principals.x]\ncertificate_file = "{sealed.cert}"\nencrypt_responses = true\n'
                f'encryption_algorithm = "des-cbc"\n'):
        with pytest.raises(PolicyError):
            load_policy(write_policy(tmp_path, bad), environ={})
