"""Security fixtures: a throwaway PKI (a trusted CA, a rogue CA, client
certificates), policy files, and helpers that build, sign and post raw
SOAP requests."""
import base64
import datetime
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lxml import etree

NS = "http://dmwsi.org/ns/dmwsi/1.0"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS = "http://www.w3.org/2000/09/xmldsig#"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"


@dataclass
class Identity:
    key: Path
    cert: Path
    subject: str

    @property
    def pair(self):
        return str(self.cert), str(self.key)


class PKI:
    def __init__(self, directory):
        self.dir = Path(directory)
        self.ca = self._make_ca("dmwsi test CA")
        self.rogue_ca = self._make_ca("rogue CA")

    def _make_ca(self, name):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (self._builder(subject, subject, key.public_key())
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        path = self.dir / (name.replace(" ", "-") + ".pem")
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return key, cert, path

    @staticmethod
    def _builder(subject, issuer, public_key, days=30, start=None):
        start = start or datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=days)))

    def issue(self, common_name, ca=None, self_signed=False, days=30, start=None):
        """A client key + certificate (subject "CN=<cn>,O=dmwsi tests")."""
        ca_key, ca_cert, _ = ca or self.ca
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dmwsi tests"),
                             x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        issuer, signer = (subject, key) if self_signed else (ca_cert.subject, ca_key)
        cert = (self._builder(subject, issuer, key.public_key(), days, start)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .sign(signer, hashes.SHA256()))
        stem = f"{common_name}-{uuid.uuid4().hex[:6]}"
        key_path, cert_path = self.dir / (stem + ".key"), self.dir / (stem + ".pem")
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return Identity(key_path, cert_path, subject.rfc4514_string())


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def signer(pki):
    """Principal 'signer': X.509 signatures, chains to the test CA."""
    return pki.issue("signer.example")


@pytest.fixture(scope="session")
def dm2(pki):
    """Principal 'dm2' (role secondary-dm): needs its TLS client certificate."""
    return pki.issue("dm2.example")


POLICY = '''
[principals.signer]
roles = ["operator"]
certificate_subject = "{signer}"
sign_responses = true

[principals.alice]
roles = ["customer-care", "registrar"]
username = "alice"
password = "alice-secret"

[principals.strict]
roles = ["operator"]
username = "strict"
password = "strict-secret"
require_signature = true

[principals.dm2]
roles = ["secondary-dm", "registrar"]
certificate_subject = "{dm2}"
username = "dm2"
password = "dm2-secret"
'''


def write_policy(directory, text):
    """Test principals, with the shipped roles (authorization is default deny)."""
    from dmwsi.config import PROJECT_ROOT
    shipped = (PROJECT_ROOT / "conf" / "policy.toml").read_text()
    path = Path(directory) / "policy.toml"
    # "registrar": the authentication tests drive RegisterDevice as any principal.
    registrar = '[roles.registrar]\noperations = ["RegisterDevice", "GetTransactionLog"]\ndevices = "all"\n'
    roles = "" if "[roles." in text else registrar + "\n" + shipped[shipped.index("[roles.operator]"):]
    path.write_text(text + "\n" + roles)
    return path


@pytest.fixture
def policy_file(tmp_path, signer, dm2):
    return write_policy(tmp_path, POLICY.format(signer=signer.subject, dm2=dm2.subject))


@pytest.fixture
def secure_server(start_server, policy_file, pki):
    """A server refusing anonymous callers, trusting the test CA."""
    return start_server(security={"policy_file": str(policy_file), "allow_anonymous": False,
                                  "trusted_ca_file": str(pki.ca[2])})


# -- raw requests ------------------------------------------------------------

def register_body(device_id):
    return (f"<d:RegisterDevice xmlns:d='{NS}'><d:device><d:deviceId>{device_id}</d:deviceId></d:device>"
            f"<d:clientPassword>cpw</d:clientPassword><d:serverPassword>spw</d:serverPassword></d:RegisterDevice>")


def envelope(body_xml):
    return etree.fromstring(
        f"<soap:Envelope xmlns:soap='{SOAP}'><soap:Header/><soap:Body>{body_xml}</soap:Body></soap:Envelope>")


def utc(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def add_timestamp(env, created=None, lifetime=300, id_attr=f"{{{WSU}}}Id"):
    from zeep.wsse.utils import get_security_header
    created = created or datetime.datetime.now(datetime.timezone.utc)
    security = get_security_header(env)
    ts = etree.SubElement(security, f"{{{WSU}}}Timestamp", {id_attr: "TS-" + uuid.uuid4().hex})
    etree.SubElement(ts, f"{{{WSU}}}Created").text = utc(created)
    etree.SubElement(ts, f"{{{WSU}}}Expires").text = utc(created + datetime.timedelta(seconds=lifetime))
    return ts


def zeep_sign(env, identity, sha1=False):
    """Sign with zeep's BinarySignature (an implementation independent of ours)."""
    import xmlsec
    from zeep.wsse.signature import BinarySignature
    method, digest = (xmlsec.Transform.RSA_SHA1, xmlsec.Transform.SHA1) if sha1 else \
        (xmlsec.Transform.RSA_SHA256, xmlsec.Transform.SHA256)
    BinarySignature(str(identity.key), str(identity.cert), signature_method=method, digest_method=digest).apply(env, {})
    return env


def signed_request(body_xml, identity, created=None, lifetime=300, sha1=False):
    env = envelope(body_xml)
    add_timestamp(env, created, lifetime)
    return zeep_sign(env, identity, sha1)


def template_request(body_xml, identity, id_attr="Id"):
    """An unsigned ds:Signature template over Body and Timestamp (ids in
    ``id_attr``), its KeyInfo a SecurityTokenReference to a BinarySecurityToken
    — for xmlsec1 or python-xmlsec to sign."""
    env = envelope(body_xml)
    body = env.find(f"{{{SOAP}}}Body")
    body.set(id_attr, "body-1")
    ts = add_timestamp(env, id_attr=id_attr)
    for attr in list(ts.attrib):
        del ts.attrib[attr]
    ts.set(id_attr, "ts-1")
    security = ts.getparent()
    der = x509.load_pem_x509_certificate(identity.cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    bst = etree.SubElement(security, f"{{{WSSE}}}BinarySecurityToken",
                           {"ValueType": X509V3, "EncodingType": BASE64, f"{{{WSU}}}Id": "bst-1"})
    bst.text = base64.b64encode(der).decode()
    refs = "".join(
        f"<ds:Reference URI='#{i}'><ds:Transforms><ds:Transform Algorithm='http://www.w3.org/2001/10/xml-exc-c14n#'/>"
        f"</ds:Transforms><ds:DigestMethod Algorithm='http://www.w3.org/2001/04/xmlenc#sha256'/>"
        f"<ds:DigestValue/></ds:Reference>" for i in ("body-1", "ts-1"))
    signature = etree.fromstring(
        f"<ds:Signature xmlns:ds='{DS}' xmlns:wsse='{WSSE}'><ds:SignedInfo>"
        f"<ds:CanonicalizationMethod Algorithm='http://www.w3.org/2001/10/xml-exc-c14n#'/>"
        f"<ds:SignatureMethod Algorithm='http://www.w3.org/2001/04/xmldsig-more#rsa-sha256'/>{refs}"
        f"</ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><wsse:SecurityTokenReference>"
        f"<wsse:Reference URI='#bst-1' ValueType='{X509V3}'/></wsse:SecurityTokenReference></ds:KeyInfo>"
        f"</ds:Signature>")
    security.append(signature)
    return env


def post(url, env, **kwargs):
    data = env if isinstance(env, bytes) else etree.tostring(env)
    return requests.post(url, data=data, headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
                         timeout=20, **kwargs)


def wsse_fault(response):
    """The wsse fault code (local name) of a refused request; asserts its form."""
    assert response.status_code == 500, response.text
    root = etree.fromstring(response.content)
    code = root.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault/faultcode")
    prefix, _, local = code.text.partition(":")
    assert code.nsmap[prefix] == WSSE, code.text
    detail = root.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault/detail/{{{NS}}}FaultDetail")
    assert detail.findtext(f"{{{NS}}}code") == "NotAuthenticated"
    return local


def successes(server, operation=None):
    rows, _ = server.store.query_log(success=True, operation=operation, limit=1000)
    return rows


def username_token_server(running_reactor, tmp_path_factory, tls_pair, name, policy_text):
    """A module-scoped server whose policy is ``policy_text``, anonymous access
    off and every principal on UsernameToken (mTLS is test_sec_mtls.py's):
    (factory to stop, server)."""
    from tests.conftest import ServerFactory
    directory = tmp_path_factory.mktemp(name)
    policy = directory / "policy.toml"
    policy.write_text(policy_text)
    factory = ServerFactory(running_reactor, directory, tls_pair)
    return factory, factory(security={"policy_file": str(policy), "allow_anonymous": False,
                                      "require_client_cert_for_roles": []})
