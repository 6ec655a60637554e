"""Verifying the wsse:Security header of a request (OASIS WSS 1.0/1.1).

What a request can prove:

* an X.509 signature (X.509 Token Profile): a ds:Signature in the header,
  exclusive c14n, over THE soap:Body and THE wsu:Timestamp of the header,
  its key a certificate carried in a wsse:BinarySecurityToken (referenced by
  wsse:SecurityTokenReference/wsse:Reference) or embedded as ds:X509Data;
* a UsernameToken with a PasswordDigest (Base64(SHA-1(nonce + created +
  password))), a Nonce and a Created time.

Signature wrapping is refused structurally before xmlsec runs: the document
has one Envelope with one Header and one Body, every Id / wsu:Id value in it
is unique, and the signed references must resolve to the Body child of the
Envelope and the Timestamp child of the Security header — the very elements
the server goes on to process. References are "#id" only, transforms are
exclusive c14n only, algorithms come from the configured allow-list.
"""
import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import xmlsec
from cryptography import x509
from lxml import etree

from dmwsi.security.faults import SecurityFault
from dmwsi.security.ns import (
    BASE64, DIGEST_ALGORITHMS, DS, EXC_C14N, PASSWORD_DIGEST, SIGNATURE_ALGORITHMS, SOAP11, WSSE, WSU, X509V3, XENC)

ID_ATTRIBUTES = (f"{{{WSU}}}Id", "Id")


@dataclass
class Settings:
    timestamp_skew: float = 300.0          # seconds of clock difference tolerated
    replay_window: float = 300.0           # oldest message accepted; nonces remembered this long
    signature_algorithms: frozenset = frozenset({"rsa-sha256"})


@dataclass
class MessageCredentials:
    """What the Security header proved (each None when not present)."""
    signer: object = None          # Principal of the verified X.509 signature
    signer_certificate: object = None
    user: object = None            # Principal of the verified UsernameToken

    @property
    def principal(self):
        return self.signer or self.user


def find_security_header(root):
    """(Header, Security) of a SOAP 1.1 envelope; Security None when absent.

    Raises SecurityFault when the envelope's structure is ambiguous.
    """
    if root.tag != f"{{{SOAP11}}}Envelope":
        return None, None
    headers = root.findall(f"{{{SOAP11}}}Header")
    if len(headers) > 1:
        raise SecurityFault("InvalidSecurity", "the envelope has more than one Header")
    if not headers:
        return None, None
    found = headers[0].findall(f"{{{WSSE}}}Security")
    if len(found) > 1:
        raise SecurityFault("InvalidSecurity", "more than one wsse:Security header")
    return headers[0], (found[0] if found else None)


def parse_time(text, what):
    try:
        value = datetime.fromisoformat((text or "").strip())
    except ValueError:
        raise SecurityFault("InvalidSecurity", f"{what} is not an xsd:dateTime")
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _single(parent, tag, what, required=False):
    found = parent.findall(tag)
    if len(found) > 1:
        raise SecurityFault("InvalidSecurity", f"more than one {what}")
    if required and not found:
        raise SecurityFault("InvalidSecurity", f"missing {what}")
    return found[0] if found else None


def _id_of(element):
    return element.get(ID_ATTRIBUTES[0]) or element.get(ID_ATTRIBUTES[1])


def id_index(root):
    """{id value: element} over wsu:Id and Id attributes; duplicates are refused."""
    index = {}
    for element in root.iter(tag=etree.Element):
        for attribute in ID_ATTRIBUTES:
            value = element.get(attribute)
            if value is None:
                continue
            if value in index and index[value] is not element:
                raise SecurityFault("InvalidSecurity", f"the id {value!r} is used more than once")
            index[value] = element
    return index


class MessageVerifier:
    """Checks one request's Security header against the policy."""

    def __init__(self, policy, trust, settings, replay_cache, clock=None):
        self.policy = policy
        self.trust = trust
        self.settings = settings
        self.replay = replay_cache
        self.clock = clock or (lambda: datetime.now(timezone.utc))

    # -- entry point -------------------------------------------------------

    def verify(self, root, security):
        """Verify the Security header -> MessageCredentials, or raise SecurityFault."""
        now = self.clock()
        for child in security:
            if isinstance(child.tag, str) and child.tag.startswith(f"{{{XENC}}}"):
                # The decryptor consumed what it supports (an EncryptedKey / ReferenceList for the Body).
                raise SecurityFault("UnsupportedAlgorithm", f"unsupported encryption element {etree.QName(child).localname} "
                                                            "in the Security header")
        timestamp = _single(security, f"{{{WSU}}}Timestamp", "wsu:Timestamp")
        signature = _single(security, f"{{{DS}}}Signature", "ds:Signature")
        token = _single(security, f"{{{WSSE}}}UsernameToken", "wsse:UsernameToken")
        if signature is None and token is None:
            raise SecurityFault("InvalidSecurity", "the Security header carries neither a signature nor a UsernameToken")
        if timestamp is not None:
            self._check_timestamp(timestamp, now)
        credentials = MessageCredentials()
        if signature is not None:
            if timestamp is None:
                raise SecurityFault("InvalidSecurity", "a signed request needs a signed wsu:Timestamp")
            credentials.signer, credentials.signer_certificate = self._verify_signature(
                root, security, signature, timestamp)
        if token is not None:
            credentials.user = self._verify_username_token(token, now)
        if credentials.signer and credentials.user and credentials.signer is not credentials.user:
            raise SecurityFault("FailedAuthentication", "the signature and the UsernameToken name different principals")
        # Remember the message only once everything checked out, so a forged
        # copy cannot lock out the genuine one.
        ttl = self.settings.replay_window + 2 * self.settings.timestamp_skew
        if signature is not None:
            value = "".join((signature.findtext(f"{{{DS}}}SignatureValue") or "").split())
            if not self.replay.check_and_add("sig:" + value, ttl):
                raise SecurityFault("InvalidSecurity", "replayed message (signature value already seen)")
        if token is not None:
            key = "nonce:%s:%s" % (credentials.user.name, "".join(token.findtext(f"{{{WSSE}}}Nonce").split()))
            if not self.replay.check_and_add(key, ttl):
                raise SecurityFault("InvalidSecurity", "replayed message (UsernameToken nonce already seen)")
        return credentials

    # -- freshness ---------------------------------------------------------

    def _check_created(self, created, now, what):
        skew = timedelta(seconds=self.settings.timestamp_skew)
        if created > now + skew:
            raise SecurityFault("MessageExpired", f"{what} is in the future")
        if created < now - skew - timedelta(seconds=self.settings.replay_window):
            raise SecurityFault("MessageExpired", f"{what} is older than the replay window")

    def _check_timestamp(self, timestamp, now):
        created = _single(timestamp, f"{{{WSU}}}Created", "wsu:Created", required=True)
        created = parse_time(created.text, "wsu:Created")
        self._check_created(created, now, "the timestamp")
        expires = _single(timestamp, f"{{{WSU}}}Expires", "wsu:Expires")
        if expires is not None:
            expires = parse_time(expires.text, "wsu:Expires")
            if expires < created:
                raise SecurityFault("InvalidSecurity", "the timestamp expires before it was created")
            if expires < now - timedelta(seconds=self.settings.timestamp_skew):
                raise SecurityFault("MessageExpired", "the timestamp has expired")

    # -- UsernameToken -----------------------------------------------------

    def _verify_username_token(self, token, now):
        username = (token.findtext(f"{{{WSSE}}}Username") or "").strip()
        password = _single(token, f"{{{WSSE}}}Password", "wsse:Password", required=True)
        if password.get("Type") != PASSWORD_DIGEST:
            raise SecurityFault("UnsupportedSecurityToken", "only UsernameToken PasswordDigest is accepted")
        nonce_el = _single(token, f"{{{WSSE}}}Nonce", "wsse:Nonce", required=True)
        if nonce_el.get("EncodingType") not in (None, BASE64):
            raise SecurityFault("InvalidSecurity", "the Nonce must be Base64Binary")
        created_el = _single(token, f"{{{WSU}}}Created", "wsu:Created", required=True)
        try:
            nonce = base64.b64decode(nonce_el.text or "", validate=True)
        except (binascii.Error, ValueError):
            raise SecurityFault("InvalidSecurity", "the Nonce is not base64")
        if len(nonce) < 8:
            raise SecurityFault("InvalidSecurity", "the Nonce is too short")
        self._check_created(parse_time(created_el.text, "wsu:Created"), now, "the UsernameToken")
        principal = self.policy.by_username(username)
        secret = principal.password if principal else "\0 no such user"
        expected = base64.b64encode(hashlib.sha1(
            nonce + (created_el.text or "").encode() + secret.encode()).digest())
        if not hmac.compare_digest(expected, "".join((password.text or "").split()).encode()) or principal is None:
            raise SecurityFault("FailedAuthentication", "unknown user or wrong password")
        return principal

    # -- X.509 signature ---------------------------------------------------

    def _verify_signature(self, root, security, signature, timestamp):
        body = self._the_body(root)
        signed_info = _single(signature, f"{{{DS}}}SignedInfo", "ds:SignedInfo", required=True)
        c14n = _single(signed_info, f"{{{DS}}}CanonicalizationMethod", "CanonicalizationMethod", required=True)
        if c14n.get("Algorithm") != EXC_C14N:
            raise SecurityFault("UnsupportedAlgorithm", "SignedInfo must use exclusive c14n")
        method = _single(signed_info, f"{{{DS}}}SignatureMethod", "SignatureMethod", required=True)
        allowed = {SIGNATURE_ALGORITHMS[name] for name in self.settings.signature_algorithms}
        if method.get("Algorithm") not in allowed:
            raise SecurityFault("UnsupportedAlgorithm", f"signature algorithm {method.get('Algorithm')} is not allowed")
        index = id_index(root)
        referenced = []
        for reference in signed_info.findall(f"{{{DS}}}Reference"):
            referenced.append(self._check_reference(reference, index))
        if not any(element is body for element in referenced):
            raise SecurityFault("FailedCheck", "the signature does not cover the soap:Body")
        if not any(element is timestamp for element in referenced):
            raise SecurityFault("FailedCheck", "the signature does not cover the wsu:Timestamp")
        der = self._signing_certificate(signature, security, index)
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            raise SecurityFault("InvalidSecurityToken", "the security token is not an X.509 certificate")
        principal = self.policy.by_certificate(cert)
        self.trust.verify(cert, pinned=self.policy.is_pinned(cert))
        if principal is None:
            raise SecurityFault("FailedAuthentication", "the certificate does not identify a known principal")
        ctx = xmlsec.SignatureContext()
        for element in referenced:
            if element.get(ID_ATTRIBUTES[0]) is not None:
                ctx.register_id(element, "Id", WSU)
            else:
                ctx.register_id(element, "Id")
        try:
            ctx.key = xmlsec.Key.from_memory(der, xmlsec.KeyFormat.CERT_DER, None)
            ctx.verify(signature)
        except xmlsec.Error:
            raise SecurityFault("FailedCheck", "the signature does not verify")
        return principal, cert

    @staticmethod
    def _the_body(root):
        bodies = root.findall(f"{{{SOAP11}}}Body")
        if len(bodies) != 1:
            raise SecurityFault("InvalidSecurity", "the envelope must have exactly one Body")
        return bodies[0]

    def _check_reference(self, reference, index):
        uri = reference.get("URI") or ""
        if not uri.startswith("#") or len(uri) < 2:
            raise SecurityFault("InvalidSecurity", "signature references must be same-document '#id' references")
        element = index.get(uri[1:])
        if element is None:
            raise SecurityFault("InvalidSecurity", f"the signature references an unknown id {uri[1:]!r}")
        transforms = reference.find(f"{{{DS}}}Transforms")
        for transform in (transforms if transforms is not None else []):
            if not isinstance(transform.tag, str):
                continue
            if transform.get("Algorithm") != EXC_C14N:
                raise SecurityFault("UnsupportedAlgorithm", f"transform {transform.get('Algorithm')} is not allowed")
        digest = _single(reference, f"{{{DS}}}DigestMethod", "DigestMethod", required=True).get("Algorithm")
        if digest not in DIGEST_ALGORITHMS or (
                DIGEST_ALGORITHMS[digest] and DIGEST_ALGORITHMS[digest] not in self.settings.signature_algorithms):
            raise SecurityFault("UnsupportedAlgorithm", f"digest algorithm {digest} is not allowed")
        return element

    @staticmethod
    def _signing_certificate(signature, security, index):
        """DER of the certificate the signature names in its KeyInfo."""
        key_info = _single(signature, f"{{{DS}}}KeyInfo", "ds:KeyInfo")
        if key_info is None:
            raise SecurityFault("SecurityTokenUnavailable", "the signature has no KeyInfo")
        str_ = _single(key_info, f"{{{WSSE}}}SecurityTokenReference", "SecurityTokenReference")
        holder = str_ if str_ is not None else key_info
        reference = _single(holder, f"{{{WSSE}}}Reference", "wsse:Reference")
        if reference is not None:
            uri = reference.get("URI") or ""
            token = index.get(uri[1:]) if uri.startswith("#") else None
            if token is None or token.tag != f"{{{WSSE}}}BinarySecurityToken" or token.getparent() is not security:
                raise SecurityFault("SecurityTokenUnavailable", "the referenced BinarySecurityToken is not in this header")
            if token.get("ValueType") != X509V3 or token.get("EncodingType") not in (None, BASE64):
                raise SecurityFault("UnsupportedSecurityToken", "only X509v3 BinarySecurityTokens are accepted")
            text = token.text
        else:
            data = _single(holder, f"{{{DS}}}X509Data", "ds:X509Data")
            text = data.findtext(f"{{{DS}}}X509Certificate") if data is not None else None
            if text is None:
                raise SecurityFault("SecurityTokenUnavailable",
                                    "KeyInfo must reference a BinarySecurityToken or embed an X509Certificate")
        try:
            return base64.b64decode("".join((text or "").split()), validate=True)
        except (binascii.Error, ValueError):
            raise SecurityFault("InvalidSecurityToken", "the security token is not base64")
