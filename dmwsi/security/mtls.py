"""Mutual TLS: the HTTPS listener asks for client certificates when
``[tls] client_ca_file`` is set, verifies them against that CA bundle, and the
verified certificate reaches the WSGI application as
``environ["dmwsi.peer_certificate"]`` (DER bytes).

``[tls] require_client_cert = true`` refuses, at the handshake, a client
without a certificate; a certificate from another CA is always refused at the
handshake once client certificates are requested. Which principals must come
with their certificate is the middleware's business
(``[security] require_client_cert_for_roles``).
"""
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import crypto
from twisted.internet.interfaces import ISSLTransport
from twisted.web.wsgi import WSGIResource

from dmwsi import tls

PEER_CERTIFICATE = "dmwsi.peer_certificate"


def server_context(config):
    """TLS options of the HTTPS listener (TLS 1.2+; client certificates if configured)."""
    ca_file = config["tls"].get("client_ca_file")
    if not ca_file:
        return tls.server_context(config)
    cas = x509.load_pem_x509_certificates(config.data_path(ca_file).read_bytes())
    return tls.server_context(
        config, verify=True, caCerts=[crypto.X509.from_cryptography(ca) for ca in cas],
        requireCertificate=bool(config["tls"].get("require_client_cert")))


def peer_certificate(request):
    """DER of the verified TLS client certificate of a twisted.web request, or None."""
    transport = getattr(request.channel, "transport", None) or request.transport
    if transport is None or not ISSLTransport.providedBy(transport):
        return None
    cert = transport.getPeerCertificate()
    if cert is None:
        return None
    return cert.to_cryptography().public_bytes(Encoding.DER)


class PeerCertificateWSGIResource(WSGIResource):
    """A WSGIResource that hands the request's TLS client certificate to the
    application in the WSGI environ (read on the reactor thread, where the
    transport lives)."""

    def render(self, request):
        der = peer_certificate(request)
        application = self._application

        def with_peer(environ, start_response):
            environ[PEER_CERTIFICATE] = der
            return application(environ, start_response)

        return WSGIResource(self._reactor, self._threadpool, with_peer).render(request)
