"""The WSGI middleware in front of the SOAP application: every request
passes it. Only a POST of a SOAP 1.1 message or a bodiless GET (the WSDL)
gets past the gate (dmwsi.security.gate); every POST is authenticated once,
before spyne parses it and before any handler runs.

On success the principal's name goes to ``environ["dmwsi.principal"]`` (the
dispatcher puts it in every ``Call`` and the transaction log) and its roles to
``environ["dmwsi.roles"]``; the request goes on without its wsse:Security
header. On failure the caller gets a SOAP 1.1 fault with a wsse fault code
(HTTP 500), the refusal is logged and written to the transaction log as a
failed call, and nothing else happens.

Requests whose Body content is encrypted (XML Encryption, to the server's
certificate) are decrypted before the signature is verified. Responses to a
principal with ``sign_responses`` are signed with the server's key
(dmwsi.security.signing); responses to a principal with ``encrypt_responses``
have their Body content encrypted to its certificate
(dmwsi.security.encryption) — after signing, so the signature covers the
plaintext (sign-then-encrypt).
"""
import io
import logging
import re
import uuid

from lxml import etree

from dmwsi.security import gate
from dmwsi.security.authenticate import PARSER, Authenticator
from dmwsi.security.encryption import Decryptor, encrypt_body
from dmwsi.security.faults import SecurityFault, fault_envelope
from dmwsi.security.mtls import PEER_CERTIFICATE
from dmwsi.security.ns import SIGNATURE_ALGORITHMS, SOAP11
from dmwsi.security.principals import load_policy, policy_path
from dmwsi.security.replay import ReplayCache
from dmwsi.security.signing import sign_tree
from dmwsi.security.trust import TrustStore
from dmwsi.security.wsse import MessageVerifier, Settings
from dmwsi.records import LogEntry

log = logging.getLogger(__name__)

FAULT_STATUS = "500 Internal Server Error"
_OPERATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")


def authenticator_from_config(config, server_key=None):
    """The Authenticator described by ``[security]`` (ConfigError-like ValueError if inconsistent).

    ``server_key``: the server's private key (PEM bytes, or a function
    returning them) for decrypting encrypted requests; None refuses them.
    """
    sec = config["security"]
    unknown = set(sec["allowed_signature_algorithms"]) - set(SIGNATURE_ALGORITHMS)
    if unknown:
        raise ValueError(f"security.allowed_signature_algorithms: unknown {sorted(unknown)}; "
                         f"known: {sorted(SIGNATURE_ALGORITHMS)}")
    policy = load_policy(policy_path(config))
    trust = TrustStore.from_file(config.data_path(sec["trusted_ca_file"]) if sec["trusted_ca_file"] else None)
    settings = Settings(timestamp_skew=float(sec["timestamp_skew"]), replay_window=float(sec["replay_window"]),
                        signature_algorithms=frozenset(sec["allowed_signature_algorithms"]))
    verifier = MessageVerifier(policy, trust, settings, ReplayCache())
    if sec["allow_anonymous"]:
        log.warning("security.allow_anonymous is true: requests without credentials run as 'anonymous' "
                    "(development only; production sets it false)")
    return Authenticator(policy, verifier, sec["allow_anonymous"], sec["require_client_cert_for_roles"],
                         decryptor=Decryptor(server_key) if server_key is not None else None)


class SecurityMiddleware:
    def __init__(self, app, authenticator, signing_pair=None, services=None, max_request_bytes=None):
        self.app = app
        self.authenticator = authenticator
        self._signing_pair = signing_pair       # (key PEM, cert PEM), or a function returning it
        self.services = services                # for the transaction log
        self.max_request_bytes = max_request_bytes

    def __call__(self, environ, start_response):
        try:
            gate.check_method(environ)
        except gate.Refused as refusal:
            return self._refuse_message(environ, start_response, refusal, b"")
        if environ["REQUEST_METHOD"] == "GET":
            return self.app(environ, start_response)       # the WSDL and its schemas are public
        body = self._read_body(environ)
        if body is None:       # over the size limit: the SOAP layer refuses it unread
            return self.app(environ, start_response)
        try:
            envelope = gate.parse_soap_envelope(body)
        except gate.Refused as refusal:
            return self._refuse_message(environ, start_response, refusal, body)
        try:
            identity, body = self.authenticator.authenticate(envelope, body, environ.get(PEER_CERTIFICATE))
        except SecurityFault as fault:
            return self._refuse(environ, start_response, fault, body)
        except Exception as error:     # fail closed: a verifier bug must not let a request through
            incident = uuid.uuid4().hex[:12]
            log.error("incident %s: security check failed: %r", incident, error, exc_info=error)
            fault = SecurityFault("InvalidSecurity", f"the Security header could not be processed (incident {incident})")
            return self._refuse(environ, start_response, fault, body)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["dmwsi.principal"] = identity.name
        environ["dmwsi.roles"] = tuple(identity.roles)
        environ["dmwsi.identity"] = identity
        if identity.encrypt_responses:      # never in clear, even without a signing pair
            return self._secured(environ, start_response, identity)
        if identity.sign_responses and self._signing_pair is not None:
            return self._secured(environ, start_response, identity)
        return self.app(environ, start_response)

    @property
    def signing_pair(self):
        if callable(self._signing_pair):
            self._signing_pair = self._signing_pair()
        return self._signing_pair

    def _read_body(self, environ):
        stream = environ["wsgi.input"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        limit = self.max_request_bytes
        if limit is not None and length > limit:
            return None
        body = stream.read(length) if length >= 0 else stream.read(limit + 1 if limit is not None else -1)
        if limit is not None and len(body) > limit:
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
            return None
        return body

    def _refuse(self, environ, start_response, fault, body):
        operation = _operation_of(body)
        log.warning("refused SOAP request %s from %s: wsse:%s: %s", operation or "?",
                    environ.get("REMOTE_ADDR"), fault.code, fault.reason)
        if self.services is not None:
            try:
                self.services.store.append_log(LogEntry(
                    operation=operation or "(unknown)", success=False, principal=None,
                    summary=f"refused: wsse:{fault.code}: {fault.reason}"[:200], error_code="NotAuthenticated"))
            except Exception:
                log.exception("cannot write transaction log for a refused request")
        document = fault_envelope(fault)
        start_response(FAULT_STATUS, [("Content-Type", "text/xml; charset=utf-8"),
                                      ("Content-Length", str(len(document)))])
        return [document]

    def _refuse_message(self, environ, start_response, refusal, body):
        """A request that is not a SOAP message at all: a table fault, a one-line warning."""
        log.warning("refused %s %s from %s: %s: %s (%s)", environ.get("REQUEST_METHOD", "")[:16],
                    environ.get("PATH_INFO", "")[:64], environ.get("REMOTE_ADDR"), refusal.code,
                    refusal.reason, gate.summary(body))
        document = gate.refusal_envelope(refusal.code, refusal.reason)
        headers = [("Content-Type", "text/xml; charset=utf-8"), ("Content-Length", str(len(document)))]
        if refusal.code == "MethodNotAllowed":
            headers.append(("Allow", gate.ALLOWED_METHODS))
        start_response(refusal.status, headers)
        return [document]

    def _secured(self, environ, start_response, identity):
        captured, chunks = {}, []

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return chunks.append

        result = self.app(environ, capture)
        try:
            chunks.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        data = b"".join(chunks)
        headers = captured["headers"]
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        if data and "xml" in content_type:
            try:
                data = self._protect(data, identity.principal)
            except Exception as error:   # never answer unsigned / in clear what must not be
                incident = uuid.uuid4().hex[:12]
                log.error("incident %s: cannot sign or encrypt the response: %r", incident, error, exc_info=error)
                data = fault_envelope(SecurityFault(
                    "InvalidSecurity",
                    f"the request was processed but its response could not be secured (incident {incident})"))
                captured["status"] = FAULT_STATUS
        elif identity.encrypt_responses and data:
            log.error("refusing to send a non-XML response (%s) in clear to %s", content_type, identity.name)
            data = fault_envelope(SecurityFault("InvalidSecurity", "the response could not be encrypted"))
            captured["status"] = FAULT_STATUS
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            headers.append(("Content-Type", "text/xml; charset=utf-8"))
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(data))))
        start_response(captured["status"], headers)
        return [data]


    def _protect(self, data, principal):
        """Sign (sign_responses) then encrypt (encrypt_responses) a response envelope."""
        envelope = etree.fromstring(data, PARSER)
        if principal.sign_responses and self.signing_pair is not None:
            sign_tree(envelope, *self.signing_pair)
        if principal.encrypt_responses:
            encrypt_body(envelope, principal.encryption_certificate_der, principal.encryption_algorithm)
        return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def _operation_of(body):
    """The local name of the Body's first child (for the log), or None."""
    try:
        root = etree.fromstring(body, PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    first = root.find(f"{{{SOAP11}}}Body/*")
    if first is None or not isinstance(first.tag, str):
        return None
    name = etree.QName(first).localname
    return name if _OPERATION.match(name) else None


def secure_soap_app(app, config, services=None):
    """Wrap the SOAP WSGI application with authentication (and response signing)."""
    from dmwsi import tls

    def signing_pair():      # loaded on first use (the development pair is generated on demand)
        key_path, cert_path = tls.server_key_pair(config)
        return key_path.read_bytes(), cert_path.read_bytes()
    def server_key():
        return tls.server_key_pair(config)[0].read_bytes()
    return SecurityMiddleware(app, authenticator_from_config(config, server_key), signing_pair=signing_pair,
                              services=services, max_request_bytes=config["server"]["max_request_bytes"])
