"""SyncML DM credentials: basic, MD5 digest, HMAC header, nonces (reference §9).

MD5 digest, HMAC and the package 0 digest (§10.2) are the same construction:

    B64(MD5(name:secret)) ":" nonce [":" B64(MD5(body))]  ->  MD5

so it lives in exactly one function, ``digest_from_hash``.  Nonces are always
the raw bytes, i.e. the Base64-decoded ``NextNonce`` (using the Base64 text is
the classic interop bug, §9.2).  Every secret comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac as _hmac
import re
import secrets
from dataclasses import dataclass

from .message import AUTH_BASIC, AUTH_MAC, AUTH_MD5  # noqa: F401  (re-exported)

HMAC_HEADER = "x-syncml-hmac"
NONCE_SIZE = 16  # DMSEC: nonces and passwords should be >= 16 random bytes


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str | bytes) -> bytes:
    """Strict-alphabet Base64 decode that tolerates whitespace and missing padding."""
    if isinstance(text, str):
        text = text.encode("ascii", "replace")
    text = b"".join(text.split())
    text += b"=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise ValueError(f"invalid Base64: {e}") from None


def new_nonce(size: int = NONCE_SIZE) -> bytes:
    """Fresh random nonce; send it as ``b64encode(nonce)`` in a Chal NextNonce."""
    return secrets.token_bytes(size)


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    if isinstance(a, str):
        a = a.encode("utf-8")
    if isinstance(b, str):
        b = b.encode("utf-8")
    return _hmac.compare_digest(a, b)


# -- basic ------------------------------------------------------------------


def basic_encode(name: str, password: str) -> str:
    """Cred Data for ``syncml:auth-basic``: B64("name:password")."""
    return b64encode(f"{name}:{password}".encode("utf-8"))


def basic_decode(data: str) -> tuple[str, str]:
    """(name, password) from basic Cred Data; ValueError if malformed."""
    raw = b64decode(data)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("basic credentials are not UTF-8") from None
    name, sep, password = text.partition(":")
    if not sep:
        raise ValueError("basic credentials lack the ':' separator")
    return name, password


def basic_verify(data: str, name: str, password: str) -> bool:
    # Compared as the whole "name:password" text: splitting at the first ':'
    # would break user names holding one, such as DevIds ("IMEI:...").
    try:
        raw = b64decode(data)
    except ValueError:
        return False
    return constant_time_equals(raw, f"{name}:{password}".encode("utf-8"))


# -- the shared digest ------------------------------------------------------


def user_hash(name: str, secret: str) -> bytes:
    """B64(MD5("name:secret")): all a verifier needs to store (§9.2)."""
    return base64.b64encode(hashlib.md5(f"{name}:{secret}".encode("utf-8")).digest())


def digest_from_hash(hashed: bytes, nonce: bytes, body: bytes | None = None) -> bytes:
    """The one DM digest formula; raw 16-byte MD5.

    Without ``body``: MD5(hashed ":" nonce)                  (auth-md5, §9.2)
    With ``body``:    MD5(hashed ":" nonce ":" B64(MD5(body)))  (HMAC §9.3, pkg 0 §10.2)
    """
    material = hashed + b":" + nonce
    if body is not None:
        material += b":" + base64.b64encode(hashlib.md5(body).digest())
    return hashlib.md5(material).digest()


def digest(name: str, secret: str, nonce: bytes, body: bytes | None = None) -> bytes:
    return digest_from_hash(user_hash(name, secret), nonce, body)


# -- MD5 digest credentials -------------------------------------------------


def md5_encode(name: str, secret: str, nonce: bytes) -> str:
    """Cred Data for ``syncml:auth-md5`` (nonce = raw bytes the peer issued)."""
    return b64encode(digest(name, secret, nonce))


def md5_verify(data: str, name: str, secret: str, nonce: bytes) -> bool:
    return constant_time_equals(data.strip(), md5_encode(name, secret, nonce))


# -- HMAC (x-syncml-hmac header) ---------------------------------------------


@dataclass(frozen=True)
class HmacHeader:
    algorithm: str
    username: str
    mac: str


def hmac_mac(name: str, secret: str, nonce: bytes, body: bytes) -> str:
    """The ``mac`` value over the exact HTTP body bytes (XML or WBXML)."""
    return b64encode(digest(name, secret, nonce, body))


def hmac_header(name: str, secret: str, nonce: bytes, body: bytes) -> str:
    """Value for the x-syncml-hmac header (only MD5 is defined)."""
    return f'algorithm=MD5, username="{name}", mac={hmac_mac(name, secret, nonce, body)}'


# key = "quoted" | bare-up-to-comma; mac values contain '=' padding, never ','.
_HMAC_PARAM = re.compile(r'\s*([A-Za-z-]+)\s*=\s*(?:"([^"]*)"|([^,"]*))\s*(?:,|$)')


def parse_hmac_header(value: str) -> HmacHeader:
    """Parse ``algorithm=MD5, username="u", mac=...`` tolerating spacing and quotes."""
    params, pos = {}, 0
    value = value.strip()
    while pos < len(value):
        m = _HMAC_PARAM.match(value, pos)
        if not m or m.end() == pos:
            raise ValueError(f"malformed {HMAC_HEADER} header: {value!r}")
        params[m.group(1).lower()] = (m.group(2) if m.group(2) is not None else m.group(3)).strip()
        pos = m.end()
    if "username" not in params or "mac" not in params:
        raise ValueError(f"{HMAC_HEADER} header needs username and mac: {value!r}")
    # algorithm is optional on the wire; MD5 is the only defined value.
    return HmacHeader(algorithm=params.get("algorithm", "MD5"), username=params["username"], mac=params["mac"])


def hmac_verify(header: str | HmacHeader, name: str, secret: str, nonce: bytes, body: bytes) -> bool:
    """Check an x-syncml-hmac header against the body and the expected user."""
    if isinstance(header, str):
        try:
            header = parse_hmac_header(header)
        except ValueError:
            return False
    if header.algorithm.upper() != "MD5":
        return False
    ok_user = constant_time_equals(header.username, name)
    ok_mac = constant_time_equals(header.mac, hmac_mac(name, secret, nonce, body))
    return ok_user and ok_mac
