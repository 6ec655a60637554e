"""Principals: who may call the SOAP interface, read from the policy file
(``conf/policy.toml``, ``[principals.<name>]`` tables).

This module only knows what authentication needs: how a principal proves who
it is (certificate subject or pinned certificate, UsernameToken credentials)
and the per-principal message-security options. Other keys in a principal's
table and other top-level tables (roles, permissions, scopes) are kept in
``Principal.extra`` / ``Policy.raw`` for the authorization layer.

It also keeps the bootstrap operator credential: a UsernameToken user and a
random password the server writes once, mode 0600, into its data directory
(``security.bootstrap_credential``), so a fresh install is usable without
anonymous access, and ``dmwsi call`` on the same machine can read it.
"""
import hashlib
import logging
import os
import secrets
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from dmwsi.errors import DmwsiError

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
#: principal (and UsernameToken user) of the bootstrap credential
BOOTSTRAP = "bootstrap-operator"
BOOTSTRAP_ROLES = ("operator",)

KNOWN_KEYS = {"roles", "certificate_subject", "certificate_file", "certificate_sha256", "username",
              "password", "password_env", "sign_responses", "require_signature", "encrypt_responses",
              "encryption_certificate_file", "encryption_algorithm"}


class PolicyError(DmwsiError, ValueError):
    pass


def normalize_subject(name):
    """A distinguished name (RFC 4514 string or x509.Name) -> comparable tuple."""
    if isinstance(name, str):
        try:
            name = x509.Name.from_rfc4514_string(name)
        except ValueError as e:
            raise PolicyError(f"not a distinguished name: {name!r} ({e})")
    return tuple(tuple(sorted((a.oid.dotted_string, str(a.value)) for a in rdn)) for rdn in name.rdns)


@dataclass
class Principal:
    name: str
    roles: tuple = ()
    certificate_subject: str | None = None
    pinned_sha256: frozenset = frozenset()   # SHA-256 of DER certificates pinned for this principal
    username: str | None = None
    password: str | None = None
    sign_responses: bool = False
    require_signature: bool = False
    certificate_der: bytes | None = None     # the pinned certificate itself
    encrypt_responses: bool = False
    encryption_certificate_der: bytes | None = None   # responses are encrypted to it
    encryption_algorithm: str = "aes128-gcm"
    extra: dict = field(default_factory=dict)


class Policy:
    """The principals of one policy file, indexed for authentication."""

    def __init__(self, principals, raw=None):
        self.principals = {p.name: p for p in principals}
        self.raw = raw or {}
        self._by_subject, self._by_username, self._by_pin = {}, {}, {}
        for p in principals:
            if p.certificate_subject:
                self._index(self._by_subject, normalize_subject(p.certificate_subject), p, "certificate_subject")
            if p.username:
                self._index(self._by_username, p.username, p, "username")
            for pin in p.pinned_sha256:
                self._index(self._by_pin, pin, p, "pinned certificate")

    def add(self, principal):
        """One more principal (the bootstrap operator); PolicyError if its name or credentials clash."""
        if principal.name in self.principals:
            raise PolicyError(f"principal {principal.name!r} is defined twice")
        if principal.username:
            self._index(self._by_username, principal.username, principal, "username")
        self.principals[principal.name] = principal

    @staticmethod
    def _index(index, key, principal, what):
        if key in index:
            raise PolicyError(f"principals {index[key].name!r} and {principal.name!r} share a {what}")
        index[key] = principal

    def get(self, name):
        return self.principals.get(name)

    def by_username(self, username):
        return self._by_username.get(username)

    def by_certificate(self, cert):
        """The principal a certificate (cryptography x509.Certificate) identifies, or None.

        A pinned certificate wins; otherwise the subject must match exactly.
        """
        from cryptography.hazmat.primitives.serialization import Encoding
        pin = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
        if pin in self._by_pin:
            return self._by_pin[pin]
        return self._by_subject.get(normalize_subject(cert.subject))

    def is_pinned(self, cert):
        from cryptography.hazmat.primitives.serialization import Encoding
        return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest() in self._by_pin


def _certificate(path, base_dir):
    path = Path(path)
    if not path.is_absolute():
        path = base_dir / path
    data = path.read_bytes()
    cert = x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data else x509.load_der_x509_certificate(data)
    from cryptography.hazmat.primitives.serialization import Encoding
    return cert.public_bytes(Encoding.DER)


def _principal(name, table, base_dir, environ):
    if not isinstance(table, dict):
        raise PolicyError(f"[principals.{name}] must be a table")
    if name == ANONYMOUS and set(table) & (KNOWN_KEYS - {"roles"}):
        # [principals.anonymous] may give unauthenticated callers roles, nothing else.
        raise PolicyError(f"principals.{ANONYMOUS}: only 'roles' (it stands for unauthenticated callers)")

    def get(key, kind, default=None):
        value = table.get(key, default)
        if value is not None and not isinstance(value, kind):
            raise PolicyError(f"principals.{name}.{key}: expected {kind.__name__}, got {value!r}")
        return value

    roles = get("roles", list, [])
    if not all(isinstance(r, str) for r in roles):
        raise PolicyError(f"principals.{name}.roles: expected a list of strings")
    subject = get("certificate_subject", str)
    if subject:
        normalize_subject(subject)   # fail at load time on a malformed DN
    pins, der = set(), None
    if get("certificate_file", str):
        der = _certificate(table["certificate_file"], base_dir)
        pins.add(hashlib.sha256(der).hexdigest())
    if get("certificate_sha256", str):
        pins.add(table["certificate_sha256"].replace(":", "").lower())
    password = get("password", str)
    if get("password_env", str):
        password = environ.get(table["password_env"], password)
        if password is None:
            log.info("principal %s: environment variable %s is not set; UsernameToken disabled",
                        name, table["password_env"])
    encryption_der = der
    if get("encryption_certificate_file", str):
        encryption_der = _certificate(table["encryption_certificate_file"], base_dir)
    encrypt = bool(get("encrypt_responses", bool, False))
    if encrypt and encryption_der is None:
        # Never answer in clear what a principal asked to have encrypted.
        raise PolicyError(f"principals.{name}.encrypt_responses needs certificate_file or "
                          f"encryption_certificate_file (the certificate responses are encrypted to)")
    from dmwsi.security.encryption import DATA_ALGORITHMS, DEFAULT_DATA_ALGORITHM
    algorithm = get("encryption_algorithm", str, DEFAULT_DATA_ALGORITHM)
    if algorithm not in DATA_ALGORITHMS:
        raise PolicyError(f"principals.{name}.encryption_algorithm: {algorithm!r} is not one of {sorted(DATA_ALGORITHMS)}")
    username = get("username", str)
    if password and not username:
        username = name
    return Principal(
        name=name, roles=tuple(roles), certificate_subject=subject, pinned_sha256=frozenset(pins),
        username=username if password else None, password=password or None,
        sign_responses=bool(get("sign_responses", bool, False)),
        require_signature=bool(get("require_signature", bool, False)),
        certificate_der=der, encrypt_responses=encrypt, encryption_certificate_der=encryption_der,
        encryption_algorithm=algorithm,
        extra={k: v for k, v in table.items() if k not in KNOWN_KEYS})


def load_policy(path, environ=None):
    """Read the principals of a policy file -> Policy (PolicyError if malformed)."""
    environ = os.environ if environ is None else environ
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise PolicyError(f"cannot read policy file {path}: {e}")
    tables = raw.get("principals", {})
    if not isinstance(tables, dict):
        raise PolicyError("[principals] must be a table of tables")
    try:
        principals = [_principal(name, table, path.parent, environ) for name, table in tables.items()]
    except OSError as e:
        raise PolicyError(f"{path}: {e}")
    return Policy(principals, raw)


def policy_path(config):
    """The policy file of ``[security] policy_file`` (default: the shipped conf/policy.toml)."""
    from dmwsi.resources import CONF_DIR
    configured = config["security"]["policy_file"]
    return config.data_path(configured) if configured else CONF_DIR / "policy.toml"


# --- the bootstrap operator credential ---------------------------------------

@dataclass(frozen=True)
class BootstrapCredential:
    path: Path
    username: str
    password: str = field(repr=False)

    def principal(self):
        return Principal(name=BOOTSTRAP, roles=BOOTSTRAP_ROLES, username=self.username, password=self.password)


_BOOTSTRAP_HEADER = """\
# dmwsi bootstrap operator credential (UsernameToken, role "operator"), written
# once by the first `dmwsi serve` on this data directory. `dmwsi call` on this
# machine, with the same configuration, uses it when given no credentials.
# Keep it mode 0600. To replace it: delete this file and restart the server.
# To have none: security.bootstrap_credential = "" (docs/deploy.rst).
"""


def bootstrap_credential_path(config):
    """Where ``security.bootstrap_credential`` lives (relative to data_dir), or None if disabled."""
    return config.data_path(config["security"]["bootstrap_credential"])


def read_bootstrap_credential(path):
    """The credential in ``path`` -> BootstrapCredential; None if there is no such file.

    PolicyError if it is malformed or readable by anyone but its owner (a
    password others can read is no credential: refused, as ssh refuses keys).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PolicyError(f"{path}: mode {stat.S_IMODE(mode):04o} lets others read the bootstrap "
                              f"credential; chmod 600 it")
        with open(path, "rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise PolicyError(f"cannot read the bootstrap credential {path}: {e}")
    username, password = table.get("username"), table.get("password")
    if not (isinstance(username, str) and username and isinstance(password, str) and password):
        raise PolicyError(f"{path}: needs username and password strings (delete it to have a new one made)")
    return BootstrapCredential(path, username, password)


def ensure_bootstrap_credential(config):
    """The server's bootstrap credential, created on first start -> BootstrapCredential (None if disabled).

    An existing file is read, never rewritten, so a restart keeps the password
    the operator's tools already use.
    """
    path = bootstrap_credential_path(config)
    if path is None:
        return None
    existing = read_bootstrap_credential(path)
    if existing is not None:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    # O_EXCL: never follow or overwrite a file that appeared meanwhile; the
    # mode is set at creation, so the password is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)      # whatever the umask
        os.write(fd, (_BOOTSTRAP_HEADER + f'username = "{BOOTSTRAP}"\npassword = "{password}"\n').encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    log.warning("created the bootstrap operator credential (UsernameToken user %r) in %s", BOOTSTRAP, path)
    return BootstrapCredential(path, BOOTSTRAP, password)
