"""Signing the server's messages (responses and pushes) with WS-Security.

The signature covers the soap:Body and a fresh wsu:Timestamp, uses RSA-SHA256,
SHA-256 digests and exclusive c14n, and names its key with a
wsse:SecurityTokenReference/wsse:Reference to a wsse:BinarySecurityToken
carrying the certificate (X.509 Token Profile; what WSS4J, Metro and .NET
expect, unlike a bare ds:X509Data).

``sign_envelope(xml_bytes, key, cert)`` signs a serialized envelope;
``SignaturePlugin(key, cert)`` does the same as a zeep ``wsse`` plugin for
outgoing pushes.
"""
import base64
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from dmwsi.security.ns import BASE64, SOAP11, SOAP12, WSSE, WSU, X509V3

TIMESTAMP_LIFETIME = 300   # seconds a signed message stays valid


def _pem(value):
    """PEM bytes from bytes/str content or a path."""
    if isinstance(value, Path) or (isinstance(value, str) and "-----BEGIN" not in value):
        return Path(value).read_bytes()
    return value.encode() if isinstance(value, str) else value


def _utc(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _ensure_id(element, prefix):
    existing = element.get(f"{{{WSU}}}Id")
    if existing:
        return existing
    value = f"{prefix}-{uuid.uuid4().hex}"
    element.set(f"{{{WSU}}}Id", value)
    return value


def sign_tree(envelope, key, cert, lifetime=TIMESTAMP_LIFETIME):
    """Sign a SOAP envelope (lxml element) in place; returns it."""
    key_pem, cert_pem = _pem(key), _pem(cert)
    soap, body, security = security_header(envelope)
    now = datetime.now(timezone.utc)
    timestamp = etree.SubElement(security, f"{{{WSU}}}Timestamp", nsmap={"wsu": WSU})
    etree.SubElement(timestamp, f"{{{WSU}}}Created").text = _utc(now)
    etree.SubElement(timestamp, f"{{{WSU}}}Expires").text = _utc(now + timedelta(seconds=lifetime))
    certificate = x509.load_pem_x509_certificate(cert_pem)
    token = etree.SubElement(security, f"{{{WSSE}}}BinarySecurityToken",
                             {"ValueType": X509V3, "EncodingType": BASE64}, nsmap={"wsse": WSSE, "wsu": WSU})
    token.text = base64.b64encode(certificate.public_bytes(Encoding.DER)).decode("ascii")
    token_id = _ensure_id(token, "X509")

    signature = xmlsec.template.create(envelope, xmlsec.Transform.EXCL_C14N, xmlsec.Transform.RSA_SHA256, ns="ds")
    security.append(signature)
    ctx = xmlsec.SignatureContext()
    for target, prefix in ((body, "Body"), (timestamp, "TS")):
        ref = xmlsec.template.add_reference(signature, xmlsec.Transform.SHA256, uri="#" + _ensure_id(target, prefix))
        xmlsec.template.add_transform(ref, xmlsec.Transform.EXCL_C14N)
        ctx.register_id(target, "Id", WSU)
    key_info = xmlsec.template.ensure_key_info(signature)
    ctx.key = xmlsec.Key.from_memory(key_pem, xmlsec.KeyFormat.PEM, None)
    ctx.sign(signature)
    # KeyInfo is not signed: the token reference can go in after signing.
    etree.SubElement(etree.SubElement(key_info, f"{{{WSSE}}}SecurityTokenReference"),
                     f"{{{WSSE}}}Reference", {"URI": "#" + token_id, "ValueType": X509V3})
    return envelope


def security_header(envelope):
    """(SOAP namespace, Body, wsse:Security header) of an envelope; the
    Header and the Security block are created when missing."""
    soap = etree.QName(envelope).namespace
    if soap not in (SOAP11, SOAP12):
        raise ValueError("not a SOAP envelope")
    body = envelope.find(f"{{{soap}}}Body")
    header = envelope.find(f"{{{soap}}}Header")
    if header is None:
        header = etree.Element(f"{{{soap}}}Header")
        envelope.insert(0, header)
    security = header.find(f"{{{WSSE}}}Security")
    if security is None:
        security = etree.SubElement(header, f"{{{WSSE}}}Security", nsmap={"wsse": WSSE, "wsu": WSU})
        security.set(f"{{{soap}}}mustUnderstand", "1")
    return soap, body, security


def sign_envelope(xml_bytes, key, cert, lifetime=TIMESTAMP_LIFETIME):
    """Sign a serialized SOAP envelope -> the signed envelope (UTF-8 bytes).

    ``key`` and ``cert``: PEM content (bytes/str) or a path, e.g. the pair of
    ``dmwsi.tls.server_key_pair(config)``.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    envelope = etree.fromstring(xml_bytes, parser)
    sign_tree(envelope, key, cert, lifetime)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


class SignaturePlugin:
    """zeep ``wsse`` plugin: signs every outgoing message (pushes to consumers).

    ``verify`` accepts unsigned replies: whether a consumer signs its
    acknowledgements is its own policy.
    """

    def __init__(self, key, cert):
        self.key, self.cert = _pem(key), _pem(cert)

    def apply(self, envelope, headers):
        sign_tree(envelope, self.key, self.cert)
        return envelope, headers

    def verify(self, envelope):
        return envelope
