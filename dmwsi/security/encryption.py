"""XML Encryption of SOAP Bodies (WSS 1.1 SOAP Message Security, section 9;
XML Encryption 1.0/1.1).

Layout, in both directions — the one WSS4J, Metro and .NET produce and
consume, and one the xmlsec1 CLI decrypts as well::

    <wsse:Security>
      <xenc:EncryptedKey Id="EK-..">               key transport: RSA-OAEP (MGF1-SHA1)
        <xenc:EncryptionMethod Algorithm="..#rsa-oaep-mgf1p"/>
        <ds:KeyInfo><wsse:SecurityTokenReference>  the recipient's certificate,
          <ds:X509Data><ds:X509IssuerSerial>..      by issuer and serial number
        </wsse:SecurityTokenReference></ds:KeyInfo>
        <xenc:CipherData>..</xenc:CipherData>
        <xenc:ReferenceList><xenc:DataReference URI="#ED-.."/></xenc:ReferenceList>
      </xenc:EncryptedKey>
    </wsse:Security>
    <soap:Body>
      <xenc:EncryptedData Id="ED-.." Type="..xmlenc#Content">   AES-128-GCM (default)
        <ds:KeyInfo><ds:RetrievalMethod Type="..xmlenc#EncryptedKey" URI="#EK-.."/></ds:KeyInfo>
        <xenc:CipherData>..</xenc:CipherData>
      </xenc:EncryptedData>
    </soap:Body>

WSS receivers take the key from the header's EncryptedKey and its
ReferenceList; the RetrievalMethod lets a plain XML Encryption processor
(``xmlsec1 --decrypt``) find the same EncryptedKey.

Requests are accepted in that layout and also with the EncryptedKey inline in
the EncryptedData's KeyInfo (with or without a header ReferenceList). Only
the content of the soap:Body may be encrypted; key transport must be RSA-OAEP
(RSA PKCS#1 v1.5 is refused: Bleichenbacher), data encryption AES-CBC or
AES-GCM. Every decryption failure is the same ``wsse:FailedCheck``.
"""
import uuid

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from dmwsi.security.faults import SecurityFault
from dmwsi.security.ns import DS, SOAP11, WSSE, WSU, XENC
from dmwsi.security.signing import security_header

XENC11 = "http://www.w3.org/2009/xmlenc11#"
TYPE_CONTENT = XENC + "Content"
TYPE_ELEMENT = XENC + "Element"
TYPE_ENCRYPTED_KEY = XENC + "EncryptedKey"

# Configuration name -> (xmlsec transform, key bits).
DATA_ALGORITHMS = {
    "aes128-gcm": (xmlsec.Transform.AES128_GCM, 128),
    "aes256-gcm": (xmlsec.Transform.AES256_GCM, 256),
    "aes128-cbc": (xmlsec.Transform.AES128, 128),
    "aes256-cbc": (xmlsec.Transform.AES256, 256),
}
DEFAULT_DATA_ALGORITHM = "aes128-gcm"
ACCEPTED_DATA_URIS = {t.href for t in (xmlsec.Transform.AES128, xmlsec.Transform.AES192, xmlsec.Transform.AES256,
                                      xmlsec.Transform.AES128_GCM, xmlsec.Transform.AES192_GCM,
                                      xmlsec.Transform.AES256_GCM)}
RSA_OAEP_MGF1P = xmlsec.Transform.RSA_OAEP.href        # http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p
ACCEPTED_KEY_TRANSPORT_URIS = {RSA_OAEP_MGF1P}


def _cert(cert):
    """cryptography Certificate from PEM or DER bytes."""
    if isinstance(cert, x509.Certificate):
        return cert
    return x509.load_pem_x509_certificate(cert) if b"-----BEGIN" in cert else x509.load_der_x509_certificate(cert)


# -- encrypting (responses) ------------------------------------------------------

def _child(parent, tag):
    return next(c for c in parent if c.tag == tag)


def encrypt_body(envelope, cert, algorithm=DEFAULT_DATA_ALGORITHM):
    """Encrypt the content of a SOAP envelope's Body (lxml element, in place)
    to ``cert`` (PEM/DER bytes or a cryptography Certificate); returns it.

    The session key goes in a wsse:Security header EncryptedKey (created when
    missing, and placed first so a receiver processing the header top-down
    decrypts before it verifies a signature over the plaintext).
    """
    certificate = _cert(cert)
    transform, bits = DATA_ALGORITHMS[algorithm]
    soap, body, security = security_header(envelope)
    if body is None or len(body) == 0:
        raise ValueError("the envelope has no Body content to encrypt")

    data_id, key_id = f"ED-{uuid.uuid4().hex}", f"EK-{uuid.uuid4().hex}"
    manager = xmlsec.KeysManager()
    manager.add_key(xmlsec.Key.from_memory(certificate.public_bytes(Encoding.PEM), xmlsec.KeyFormat.CERT_PEM, None))
    enc_data = xmlsec.template.encrypted_data_create(envelope, transform, id=data_id, type=TYPE_CONTENT, ns="xenc")
    xmlsec.template.encrypted_data_ensure_cipher_value(enc_data)
    key_info = xmlsec.template.encrypted_data_ensure_key_info(enc_data, ns="ds")
    enc_key = xmlsec.template.add_encrypted_key(key_info, xmlsec.Transform.RSA_OAEP, id=key_id)
    xmlsec.template.encrypted_data_ensure_cipher_value(enc_key)
    ctx = xmlsec.EncryptionContext(manager)
    ctx.key = xmlsec.Key.generate(xmlsec.KeyData.AES, bits, xmlsec.KeyDataType.SESSION)
    ctx.encrypt_xml(enc_data, body)
    # Elements xmlsec created are not found by lxml's find() (their names are
    # not in the document's dictionary): look them up by comparing tags.
    enc_data = _child(body, f"{{{XENC}}}EncryptedData")

    # Move the EncryptedKey to the Security header (WSS 1.1, 9.3), name the
    # recipient's certificate, list what it encrypts.
    key_info = _child(enc_data, f"{{{DS}}}KeyInfo")
    enc_key = _child(key_info, f"{{{XENC}}}EncryptedKey")
    key_info.remove(enc_key)
    etree.SubElement(key_info, f"{{{DS}}}RetrievalMethod", {"Type": TYPE_ENCRYPTED_KEY, "URI": "#" + key_id})
    security.insert(0, enc_key)
    method = _child(enc_key, f"{{{XENC}}}EncryptionMethod")
    recipient = etree.Element(f"{{{DS}}}KeyInfo", nsmap={"ds": DS})
    str_ = etree.SubElement(recipient, f"{{{WSSE}}}SecurityTokenReference", nsmap={"wsse": WSSE})
    issuer_serial = etree.SubElement(etree.SubElement(str_, f"{{{DS}}}X509Data"), f"{{{DS}}}X509IssuerSerial")
    etree.SubElement(issuer_serial, f"{{{DS}}}X509IssuerName").text = certificate.issuer.rfc4514_string()
    etree.SubElement(issuer_serial, f"{{{DS}}}X509SerialNumber").text = str(certificate.serial_number)
    for old in [c for c in enc_key if c.tag == f"{{{DS}}}KeyInfo"]:
        enc_key.remove(old)
    method.addnext(recipient)
    references = etree.SubElement(enc_key, f"{{{XENC}}}ReferenceList")
    etree.SubElement(references, f"{{{XENC}}}DataReference", {"URI": "#" + data_id})
    return envelope


def encrypt_envelope(xml_bytes, cert, algorithm=DEFAULT_DATA_ALGORITHM):
    """Encrypt a serialized SOAP envelope's Body content -> UTF-8 bytes."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    envelope = etree.fromstring(xml_bytes, parser)
    encrypt_body(envelope, cert, algorithm)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


# -- decrypting (requests) -------------------------------------------------------

def _failed():
    return SecurityFault("FailedCheck", "the encrypted data could not be decrypted")


def _check_method(element, accepted, what):
    methods = element.findall(f"{{{XENC}}}EncryptionMethod")
    if len(methods) != 1 or methods[0].get("Algorithm") not in accepted:
        algorithm = methods[0].get("Algorithm") if methods else None
        raise SecurityFault("UnsupportedAlgorithm", f"{what} algorithm {algorithm} is not supported")
    for child in methods[0]:
        # OAEP parameters other than the defaults (MGF1-SHA1, SHA-1 digest, no label) are not supported.
        if isinstance(child.tag, str) and child.tag != f"{{{DS}}}DigestMethod":
            raise SecurityFault("UnsupportedAlgorithm", f"{what} parameter {etree.QName(child).localname} is not supported")
        if child.tag == f"{{{DS}}}DigestMethod" and child.get("Algorithm") != f"{DS}sha1":
            raise SecurityFault("UnsupportedAlgorithm", f"{what} digest {child.get('Algorithm')} is not supported")


def has_encrypted_content(root, security):
    """Whether a request carries anything encrypted."""
    if security is not None and any(
            isinstance(c.tag, str) and c.tag.startswith(f"{{{XENC}}}") for c in security):
        return True
    return root.find(f".//{{{XENC}}}EncryptedData") is not None


class Decryptor:
    """Decrypts the Body content of requests encrypted to the server's key."""

    def __init__(self, key_pem):
        self._key_pem = key_pem        # bytes, or a function returning them (loaded on first use)

    @property
    def key_pem(self):
        if callable(self._key_pem):
            self._key_pem = self._key_pem()
        return self._key_pem

    def _session_key(self, enc_key):
        _check_method(enc_key, ACCEPTED_KEY_TRANSPORT_URIS, "key transport")
        ctx = xmlsec.EncryptionContext()
        ctx.key = xmlsec.Key.from_memory(self.key_pem, xmlsec.KeyFormat.PEM, None)
        try:
            value = ctx.decrypt(enc_key)
        except xmlsec.Error:
            raise _failed()
        if not isinstance(value, bytes) or len(value) not in (16, 24, 32):
            raise _failed()
        return value

    def decrypt(self, root, security):
        """Decrypt, in place, the EncryptedData that is the Body's content.

        Raises SecurityFault for anything else encrypted, an unsupported
        algorithm or a failed decryption.
        """
        bodies = root.findall(f"{{{SOAP11}}}Body")
        if len(bodies) != 1:
            raise SecurityFault("InvalidSecurity", "the envelope must have exactly one Body")
        body = bodies[0]
        encrypted = list(root.iter(f"{{{XENC}}}EncryptedData"))
        header_keys = [] if security is None else security.findall(f"{{{XENC}}}EncryptedKey")
        lists = [] if security is None else security.findall(f"{{{XENC}}}ReferenceList")
        if security is not None and security.find(f"{{{XENC}}}EncryptedData") is not None:
            raise SecurityFault("UnsupportedAlgorithm", "encrypted header elements are not supported")
        if len(encrypted) != 1 or encrypted[0].getparent() is not body or len(body) != 1:
            raise SecurityFault("InvalidSecurity", "only the content of the soap:Body may be encrypted, "
                                                   "as one EncryptedData")
        enc_data = encrypted[0]
        if enc_data.get("Type") != TYPE_CONTENT:
            raise SecurityFault("UnsupportedAlgorithm", "only EncryptedData of Type xmlenc#Content is supported")
        _check_method(enc_data, ACCEPTED_DATA_URIS, "data encryption")
        data_id = enc_data.get("Id") or enc_data.get(f"{{{WSU}}}Id")
        # Every reference list must name exactly this EncryptedData.
        referencing = []
        for holder in header_keys + lists:
            references = holder if holder.tag == f"{{{XENC}}}ReferenceList" else holder.find(f"{{{XENC}}}ReferenceList")
            for reference in (references if references is not None else []):
                if not isinstance(reference.tag, str):
                    continue
                if reference.tag != f"{{{XENC}}}DataReference" or reference.get("URI") != f"#{data_id}" or not data_id:
                    raise SecurityFault("InvalidSecurity", "a ReferenceList names something other than the Body's EncryptedData")
                if holder.tag == f"{{{XENC}}}EncryptedKey":
                    referencing.append(holder)
        key_info = enc_data.find(f"{{{DS}}}KeyInfo")
        inline = [] if key_info is None else key_info.findall(f"{{{XENC}}}EncryptedKey")
        candidates = referencing + inline
        if len(candidates) != 1:
            raise SecurityFault("InvalidSecurity", "the Body's EncryptedData needs exactly one EncryptedKey "
                                                   "(referencing it from the Security header, or inline)")
        session_key = self._session_key(candidates[0])
        ctx = xmlsec.EncryptionContext()
        ctx.key = xmlsec.Key.from_binary_data(xmlsec.KeyData.AES, session_key)
        try:
            ctx.decrypt(enc_data)
        except xmlsec.Error:
            raise _failed()
        if len(body) == 0 or body.find(f".//{{{XENC}}}EncryptedData") is not None:
            raise _failed()
        # The header's encryption elements are consumed.
        for element in header_keys + lists:
            security.remove(element)
