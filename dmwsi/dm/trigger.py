"""Package 0: the binary server-alerted trigger (reference §10, DMNOTI 1.2).

Layout, big-endian: 16-byte MD5 digest, then the *trigger*: an 8-byte header
(version:10 ui-mode:2 initiator:1 future-use:27 session-id:16 server-id-len:8),
the ASCII server id, and an optional vendor trailer.  The digest is the shared
DM digest (``auth.digest``) over the trigger, left raw (no outer Base64).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from . import auth
from dmwsi.errors import DmwsiError

# ui-mode values
UI_NOT_SPECIFIED = 0
UI_BACKGROUND = 1
UI_INFORMATIVE = 2
UI_USER_INTERACTION = 3
# initiator values
INITIATOR_CLIENT = 0
INITIATOR_SERVER = 1

# The DM 1.2 text wants 11 ("1.1" x 10); some peers might expect 12 (§10.1 [?]),
# so ``build`` takes the version as a parameter.
DEFAULT_VERSION = 11

# Nonce a device falls back to when verification with the stored nonce fails
# (§10.2).  Implementations disagree on its byte form [?]: Android uses four
# zero bytes, libdmclient the ASCII text.  Try them in this order.
RESYNC_NONCES = (b"\x00\x00\x00\x00", b"0x00000000")

_DIGEST_LEN = 16
_HEADER = struct.Struct(">Q")
_MIN_LEN = _DIGEST_LEN + _HEADER.size


class NotificationError(DmwsiError, ValueError):
    """Bytes that cannot be a package 0."""


@dataclass(frozen=True)
class Notification:
    digest: bytes  # raw 16 bytes
    version: int
    ui_mode: int
    initiator: int
    session_id: int
    server_id: str
    vendor: bytes
    trigger: bytes  # everything after the digest: what the digest covers

    @property
    def session_id_hex(self) -> str:
        """The SessionID the device must use in package 1."""
        return session_id_to_hex(self.session_id)


def session_id_to_hex(session_id: int) -> str:
    """16-bit session id as SyncHdr SessionID: upper-case hex, no leading zeros."""
    if not 1 <= session_id <= 0xFFFF:
        raise ValueError(f"package 0 session id must be 1..0xFFFF, got {session_id}")
    return format(session_id, "X")


def session_id_from_hex(text: str) -> int:
    """Inverse of ``session_id_to_hex``; accepts any case and leading zeros."""
    try:
        value = int(text.strip(), 16)
    except ValueError:
        raise ValueError(f"not a hex session id: {text!r}") from None
    if not 1 <= value <= 0xFFFF:
        raise ValueError(f"session id out of range 1..FFFF: {text!r}")
    return value


def _trigger(server_id: bytes, session_id: int, ui_mode: int, initiator: int, version: int, vendor: bytes) -> bytes:
    if not 0 <= version < 1 << 10:
        raise ValueError(f"version must fit 10 bits, got {version}")
    if not 0 <= ui_mode <= 3 or initiator not in (0, 1):
        raise ValueError("ui_mode must be 0..3 and initiator 0 or 1")
    if len(server_id) > 255:
        raise ValueError("server id longer than 255 bytes")
    session_id_to_hex(session_id)  # range check
    header = (version << 54) | (ui_mode << 52) | (initiator << 51) | (session_id << 8) | len(server_id)
    return _HEADER.pack(header) + server_id + vendor


def build(
    server_id: str,
    server_password: str,
    nonce: bytes,
    session_id: int,
    ui_mode: int = UI_NOT_SPECIFIED,
    initiator: int = INITIATOR_SERVER,
    version: int = DEFAULT_VERSION,
    vendor: bytes = b"",
    *,
    auth_name: str | None = None,
) -> bytes:
    """Package 0 bytes.

    ``server_password`` and ``nonce`` are what the device holds in SRVCRED
    (AAuthSecret, and AAuthData = the raw nonce the device last issued).
    ``auth_name`` is SRVCRED AAuthName when it differs from the server id.
    """
    trigger = _trigger(server_id.encode("ascii"), session_id, ui_mode, initiator, version, vendor)
    return auth.digest(auth_name or server_id, server_password, nonce, trigger) + trigger


def parse(data: bytes) -> Notification:
    """Decode package 0; NotificationError if truncated or malformed."""
    data = bytes(data)
    if len(data) < _MIN_LEN:
        raise NotificationError(f"package 0 needs at least {_MIN_LEN} bytes, got {len(data)}")
    (header,) = _HEADER.unpack_from(data, _DIGEST_LEN)
    length = header & 0xFF
    start = _MIN_LEN
    if len(data) < start + length:
        raise NotificationError(f"server id truncated: header says {length} bytes, {len(data) - start} present")
    try:
        server_id = data[start : start + length].decode("ascii")
    except UnicodeDecodeError:
        raise NotificationError("server id is not ASCII") from None
    # future-use bits are not checked: newer senders may use them.
    return Notification(
        digest=data[:_DIGEST_LEN],
        version=header >> 54,
        ui_mode=(header >> 52) & 0x3,
        initiator=(header >> 51) & 0x1,
        session_id=(header >> 8) & 0xFFFF,
        server_id=server_id,
        vendor=data[start + length :],
        trigger=data[_DIGEST_LEN:],
    )


def verify(
    notification: Notification,
    server_id: str,
    server_password: str,
    nonce: bytes,
    *,
    auth_name: str | None = None,
) -> bool:
    """True if the digest matches these SRVCRED values (one nonce; callers
    wanting the resync fallback also try each of ``RESYNC_NONCES``)."""
    if notification.server_id != server_id:  # the trigger names another server
        return False
    expected = auth.digest(auth_name or server_id, server_password, nonce, notification.trigger)
    return auth.constant_time_equals(notification.digest, expected)
