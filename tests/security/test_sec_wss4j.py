"""MDM2-3, OES1-3 interop with Apache WSS4J 1.6 (Debian libwss4j-java, on the
installed JDK): requests signed (and encrypted) by WSS4J are accepted, and
WSS4J verifies (and decrypts) the server's signed (and encrypted) responses.
The peer is tests/security/java/Wss4jPeer.java, compiled per session."""
import shutil
import subprocess
from pathlib import Path

import pytest
from lxml import etree

from tests.security.conftest import (
    NS, SOAP, envelope, post, register_body, successes, write_policy, wsse_fault)
from tests.security.test_sec_wsse import assert_nothing_ran

JAVA_DIR = Path(__file__).parent / "java"
SHARE = Path("/usr/share/java")
# wss4j 1.6 -> santuario xmlsec, commons-logging; santuario -> slf4j, commons-codec.
REQUIRED_JARS = ["wss4j.jar", "xmlsec.jar", "commons-logging.jar", "slf4j-api.jar", "commons-codec.jar"]
OPTIONAL_JARS = ["slf4j-nop.jar"]      # silences slf4j's "no binding" warning


@pytest.fixture(scope="session")
def wss4j(tmp_path_factory):
    """A function running Wss4jPeer with arguments -> CompletedProcess."""
    java, javac = shutil.which("java"), shutil.which("javac")
    missing = [name for name, found in (("java", java), ("javac", javac)) if found is None]
    missing += [str(SHARE / jar) for jar in REQUIRED_JARS if not (SHARE / jar).exists()]
    if missing:
        pytest.skip(f"WSS4J interop needs a JDK and libwss4j-java (apt-get install default-jdk-headless "
                    f"libwss4j-java); missing: {', '.join(missing)}")
    classpath = [str(SHARE / jar) for jar in REQUIRED_JARS + OPTIONAL_JARS if (SHARE / jar).exists()]
    classes = tmp_path_factory.mktemp("wss4j-classes")
    result = subprocess.run([javac, "-d", str(classes), "-cp", ":".join(classpath),
                             str(JAVA_DIR / "Wss4jPeer.java")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    classpath.append(str(classes))

    def run(*args):
        return subprocess.run([java, "-cp", ":".join(classpath), "Wss4jPeer", *map(str, args)],
                              capture_output=True, text=True, timeout=120)
    return run


@pytest.fixture(scope="module")
def java_signer(pki):
    return pki.issue("wss4j.example")


@pytest.fixture(scope="module")
def java_sealed(pki):
    return pki.issue("wss4j-sealed.example")


@pytest.fixture
def wss4j_server(start_server, tmp_path, pki, java_signer, java_sealed):
    policy = write_policy(tmp_path, f'''
[principals.wss4j]
roles = ["operator", "registrar"]
certificate_subject = "{java_signer.subject}"
sign_responses = true
require_signature = true

[principals.wss4j-sealed]
roles = ["operator", "registrar"]
certificate_file = "{java_sealed.cert}"
sign_responses = true
encrypt_responses = true
''')
    return start_server(security={"policy_file": str(policy), "allow_anonymous": False,
                                  "trusted_ca_file": str(pki.ca[2])})


def request_file(tmp_path, device_id, name="request.xml"):
    path = tmp_path / name
    path.write_bytes(etree.tostring(envelope(register_body(device_id))))
    return path


def test_wss4j_signed_request_is_accepted_and_its_signed_reply_verifies(wss4j, wss4j_server, java_signer,
                                                                        tls_pair, tmp_path):
    signed = tmp_path / "signed.xml"
    result = wss4j("sign", java_signer.key, java_signer.cert, request_file(tmp_path, "IMEI:800"), signed)
    assert result.returncode == 0, result.stderr
    response = post(wss4j_server.soap_url, signed.read_bytes())
    assert response.status_code == 200, response.text
    assert wss4j_server.store.get_device("IMEI:800") is not None
    assert successes(wss4j_server, "RegisterDevice")[0].principal == "wss4j"

    reply = tmp_path / "reply.xml"
    reply.write_bytes(response.content)
    result = wss4j("verify", tls_pair[1], reply, tmp_path / "processed.xml")
    assert result.returncode == 0, result.stderr
    # Tampered: WSS4J must refuse it.
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(response.content.replace(b"RegisterDeviceResponse", b"RegisterDeviceResponsX"))
    assert tampered.read_bytes() != response.content
    assert wss4j("verify", tls_pair[1], tampered, tmp_path / "out.xml").returncode != 0
    # Signed by someone else than the server: refused too.
    assert wss4j("verify", java_signer.cert, reply, tmp_path / "out.xml").returncode != 0


def test_tampered_wss4j_request_is_refused(wss4j, wss4j_server, java_signer, tmp_path):
    signed = tmp_path / "signed.xml"
    assert wss4j("sign", java_signer.key, java_signer.cert, request_file(tmp_path, "IMEI:801"), signed).returncode == 0
    data = signed.read_bytes().replace(b"IMEI:801", b"IMEI:802")
    assert wsse_fault(post(wss4j_server.soap_url, data)) == "FailedCheck"
    assert_nothing_ran(wss4j_server, "IMEI:802")


def test_wss4j_signed_and_encrypted_request_runs(wss4j, wss4j_server, java_sealed, tls_pair, tmp_path):
    sealed = tmp_path / "sealed.xml"
    result = wss4j("sign-encrypt", java_sealed.key, java_sealed.cert, tls_pair[1],
                   request_file(tmp_path, "IMEI:803"), sealed)
    assert result.returncode == 0, result.stderr
    assert b"IMEI:803" not in sealed.read_bytes() and b"EncryptedData" in sealed.read_bytes()
    response = post(wss4j_server.soap_url, sealed.read_bytes())
    assert response.status_code == 200, response.text
    assert wss4j_server.store.get_device("IMEI:803") is not None
    assert successes(wss4j_server, "RegisterDevice")[0].principal == "wss4j-sealed"

    # The reply is signed then encrypted to wss4j-sealed: WSS4J decrypts it and verifies the signature.
    assert b"RegisterDeviceResponse" not in response.content
    reply, processed = tmp_path / "reply.xml", tmp_path / "processed.xml"
    reply.write_bytes(response.content)
    result = wss4j("verify", "--key", java_sealed.key, java_sealed.cert, tls_pair[1], reply, processed)
    assert result.returncode == 0, result.stderr
    answer = etree.parse(str(processed)).getroot().find(f"{{{SOAP}}}Body")[0]
    assert etree.QName(answer) == etree.QName(NS, "RegisterDeviceResponse")
