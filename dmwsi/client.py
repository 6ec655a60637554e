"""zeep clients for our own endpoints (the CLI, simulator registration, tests),
authenticated the ways a consumer authenticates (docs/security.rst):

* a WS-Security UsernameToken with PasswordDigest (``username``/``password``);
* a TLS client certificate (``cert``/``key``: mutual TLS);
* a WS-Security X.509 signature over the Body and a Timestamp
  (``sign_key``/``sign_cert``, zeep's BinarySignature, RSA-SHA256);
* ``ca``: the CA bundle the server's certificate must chain to (default: the
  system's).
"""
import datetime
import uuid
from dataclasses import dataclass, field

import requests
import zeep
from requests.adapters import HTTPAdapter
from zeep.transports import Transport

WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
TIMESTAMP_LIFETIME = 300      # seconds; the server refuses older messages (security.replay_window)


@dataclass(frozen=True)
class ClientAuth:
    """How a client proves who it is; every field optional (nothing: an anonymous caller)."""
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cert: str | None = None
    key: str | None = None
    sign_key: str | None = None
    sign_cert: str | None = None
    ca: str | None = None

    def __post_init__(self):
        for a, b in (("username", "password"), ("cert", "key"), ("sign_key", "sign_cert")):
            if bool(getattr(self, a)) != bool(getattr(self, b)):
                raise ValueError(f"{a} and {b} go together")

    @property
    def methods(self):
        """What it proves with, for messages: ("username-token", "tls-client-cert", "x509-signature")."""
        return tuple(m for m, on in (("username-token", self.username), ("tls-client-cert", self.cert),
                                     ("x509-signature", self.sign_key)) if on)

    def configure(self, session):
        """Transport credentials on a requests Session (the WSDL fetch uses them too)."""
        if self.cert:
            session.cert = (self.cert, self.key)
        if self.ca:
            session.verify = self.ca
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE win over
            # session.verify (psf/requests#3829); the adapter has the last word.
            session.mount("https://", _PinnedCA(self.ca))
        return session

    def wsse(self):
        """The zeep wsse plugin for the message credentials, or None."""
        if not (self.username or self.sign_key):
            return None
        return _MessageSecurity(self)


class _PinnedCA(HTTPAdapter):
    """HTTPS verified against one CA bundle, whatever the environment says."""

    def __init__(self, ca, **kwargs):
        self.ca = ca
        super().__init__(**kwargs)

    def send(self, request, **kwargs):
        kwargs["verify"] = self.ca
        return super().send(request, **kwargs)


class _MessageSecurity:
    """UsernameToken, then a Timestamp, then the signature over Body and Timestamp.

    One wsse object instead of zeep's list of them: zeep's Signature.verify
    would refuse every unsigned response, and responses are signed only for
    principals with ``sign_responses``; their verification is the caller's."""

    def __init__(self, auth):
        self.token = None
        self.signature = None
        if auth.username:
            self.token = (auth.username, auth.password)
        if auth.sign_key:
            import xmlsec
            from zeep.wsse.signature import BinarySignature
            self.signature = BinarySignature(auth.sign_key, auth.sign_cert,
                                             signature_method=xmlsec.Transform.RSA_SHA256,
                                             digest_method=xmlsec.Transform.SHA256)

    def apply(self, envelope, headers):
        if self.token:
            from zeep.wsse.username import UsernameToken
            # A fresh token per message: its nonce and Created must not repeat (replay cache).
            envelope, headers = UsernameToken(*self.token, use_digest=True).apply(envelope, headers)
        if self.signature:
            _add_timestamp(envelope)
            envelope, headers = self.signature.apply(envelope, headers)
        return envelope, headers

    def verify(self, envelope):
        return envelope


def _add_timestamp(envelope):
    from lxml import etree
    from zeep.wsse.utils import get_security_header
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = etree.SubElement(get_security_header(envelope), f"{{{WSU}}}Timestamp",
                             {f"{{{WSU}}}Id": "TS-" + uuid.uuid4().hex})
    for name, moment in (("Created", now), ("Expires", now + datetime.timedelta(seconds=TIMESTAMP_LIFETIME))):
        etree.SubElement(stamp, f"{{{WSU}}}{name}").text = moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def soap_client(url, timeout=60, session=None, auth=None):
    """A client for the DMWSI endpoint at ``url``, built from its served WSDL.

    ``auth``: a ClientAuth (None: no credentials)."""
    if auth is not None:
        session = auth.configure(session or requests.Session())
    transport = Transport(timeout=timeout, operation_timeout=timeout, session=session)
    return zeep.Client(url + "?wsdl", transport=transport, wsse=auth.wsse() if auth is not None else None)
