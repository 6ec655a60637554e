"""Who is asking: one decision per SOAP request, from the message credentials
(wsse:Security) and the transport (the verified TLS client certificate).

0. An encrypted Body (XML Encryption, to the server's key) is decrypted
   first (dmwsi.security.encryption), so a signature is verified over, and
   the SOAP layer gets, the plaintext.
1. A Security header is verified (dmwsi.security.wsse) and removed, so the
   SOAP layer never sees it; its principal is the message principal.
2. A verified TLS client certificate whose subject (or pin) is a principal's
   is the transport principal. When both exist they must be the same.
3. Without either, the caller is ``anonymous`` if ``allow_anonymous``, else
   refused.
4. A principal with ``require_signature`` must have signed the request; a
   principal with a role in ``require_client_cert_for_roles`` must have come
   with its own verified TLS client certificate.
"""
from dataclasses import dataclass, field

from cryptography import x509
from lxml import etree

from dmwsi.security.encryption import has_encrypted_content
from dmwsi.security.faults import SecurityFault
from dmwsi.security.principals import ANONYMOUS
from dmwsi.security.wsse import find_security_header

PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


@dataclass
class Identity:
    name: str
    roles: tuple = ()
    principal: object = None         # dmwsi.security.principals.Principal; None for anonymous
    methods: tuple = ()              # how it was proved: "x509-signature", "username-token", "tls-client-cert"
    extra: dict = field(default_factory=dict)

    @property
    def sign_responses(self):
        return bool(self.principal and self.principal.sign_responses)

    @property
    def encrypt_responses(self):
        return bool(self.principal and self.principal.encrypt_responses)


class Authenticator:
    def __init__(self, policy, verifier, allow_anonymous, client_cert_roles=(), decryptor=None):
        self.policy = policy
        self.decryptor = decryptor       # dmwsi.security.encryption.Decryptor; None: encrypted requests refused
        self.verifier = verifier
        self.allow_anonymous = allow_anonymous
        self.client_cert_roles = frozenset(client_cert_roles)

    def authenticate(self, root, body, peer_certificate=None):
        """(Identity, body to process) for a request: ``root`` is its Envelope as
        the gate parsed it (dmwsi.security.gate: no DTD), ``body`` its bytes.
        Raise SecurityFault if refused."""
        credentials, methods = None, []
        header, security = find_security_header(root)
        if has_encrypted_content(root, security):
            if self.decryptor is None:
                raise SecurityFault("UnsupportedAlgorithm", "encrypted requests are not accepted here")
            self.decryptor.decrypt(root, security)
            # Re-read the document: lxml does not find by name what xmlsec created.
            root = etree.fromstring(etree.tostring(root), PARSER)
            header, security = find_security_header(root)
            if security is not None and not any(isinstance(c.tag, str) for c in security):
                header.remove(security)      # it only carried the encryption key
                security = None
            body = etree.tostring(root, xml_declaration=True, encoding="utf-8")
        if security is not None:
            credentials = self.verifier.verify(root, security)
            header.remove(security)
            body = etree.tostring(root, xml_declaration=True, encoding="utf-8")
            methods += ["x509-signature"] * bool(credentials.signer) + ["username-token"] * bool(credentials.user)
        transport = None
        if peer_certificate is not None:
            transport = self.policy.by_certificate(x509.load_der_x509_certificate(peer_certificate))
            if transport is not None:
                methods.append("tls-client-cert")
        message = credentials.principal if credentials else None
        if message is not None and transport is not None and message is not transport:
            raise SecurityFault("FailedAuthentication",
                                "the TLS client certificate and the message credentials name different principals")
        principal = message or transport
        if principal is None:
            if not self.allow_anonymous:
                raise SecurityFault("FailedAuthentication", "the request carries no credentials")
            anonymous = self.policy.get(ANONYMOUS)
            return Identity(ANONYMOUS, anonymous.roles if anonymous else ()), body
        if principal.require_signature and not (credentials and credentials.signer):
            raise SecurityFault("InvalidSecurity", f"principal {principal.name!r} must sign its requests")
        if self.client_cert_roles.intersection(principal.roles) and transport is not principal:
            raise SecurityFault("FailedAuthentication",
                                f"principal {principal.name!r} must connect with its TLS client certificate")
        return Identity(principal.name, principal.roles, principal, tuple(methods), principal.extra), body
