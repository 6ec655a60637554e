"""Certificate trust: a certificate is trusted when it chains to a CA of
``[security] trusted_ca_file`` (and is within its validity period), or when it
is pinned in a principal's entry of the policy file. As in WSS4J, an untrusted
or expired certificate is ``wsse:FailedAuthentication``."""
import datetime

from cryptography import x509
from OpenSSL import crypto

from dmwsi.security.faults import SecurityFault


def load_certificates(path):
    """Every certificate of a PEM file (a CA bundle) -> [x509.Certificate]."""
    return x509.load_pem_x509_certificates(open(path, "rb").read())


class TrustStore:
    def __init__(self, ca_certificates=()):
        self.ca_certificates = list(ca_certificates)

    @classmethod
    def from_file(cls, path):
        return cls(load_certificates(path) if path else ())

    def verify(self, cert, pinned=False):
        """Raise SecurityFault unless ``cert`` (x509.Certificate) is trusted."""
        now = datetime.datetime.now(datetime.timezone.utc)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise SecurityFault("FailedAuthentication", "the certificate is not valid now")
        if pinned:
            return
        if not self.ca_certificates:
            raise SecurityFault("FailedAuthentication", "the certificate is not trusted (no trusted CA configured)")
        store = crypto.X509Store()
        for ca in self.ca_certificates:
            store.add_cert(crypto.X509.from_cryptography(ca))
        try:
            crypto.X509StoreContext(store, crypto.X509.from_cryptography(cert)).verify_certificate()
        except crypto.X509StoreContextError as e:
            raise SecurityFault("FailedAuthentication", f"the certificate is not trusted ({e})")
