"""TLS material: the configured key/certificate, or a development pair
generated once under data_dir/tls so a fresh install serves HTTPS at once.
The same key signs the server's messages until a real one is configured."""
import datetime
import ipaddress
import logging
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

DEV_KEY = "dev-key.pem"
DEV_CERT = "dev-cert.pem"


def generate_dev_pair(directory, common_name="localhost"):
    """Write a self-signed RSA-2048 certificate valid for 'localhost' and 127.0.0.1."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dmwsi development"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_path, cert_path = directory / DEV_KEY, directory / DEV_CERT
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def server_key_pair(config):
    """(key_path, cert_path): configured files, else the development pair."""
    tls = config["tls"]
    if tls["cert_file"] and tls["key_file"]:
        return config.data_path(tls["key_file"]), config.data_path(tls["cert_file"])
    directory = config.data_dir / "tls"
    key_path, cert_path = directory / DEV_KEY, directory / DEV_CERT
    if not (key_path.exists() and cert_path.exists()):
        log.warning("no TLS key configured: generating a development pair in %s", directory)
        generate_dev_pair(directory)
    return key_path, cert_path


def server_context(config, **options):
    """Twisted TLS options for the HTTPS listener: TLS 1.2 or newer only.

    ``options`` go to CertificateOptions (client verification: dmwsi.security.mtls)."""
    from OpenSSL import crypto
    from twisted.internet.ssl import CertificateOptions, TLSVersion
    key_path, cert_path = server_key_pair(config)
    return CertificateOptions(
        privateKey=crypto.load_privatekey(crypto.FILETYPE_PEM, key_path.read_bytes()),
        certificate=crypto.load_certificate(crypto.FILETYPE_PEM, cert_path.read_bytes()),
        raiseMinimumTo=TLSVersion.TLSv1_2, **options)
