"""Package 0 (reference §10)."""
import pytest

from dmwsi.dm import trigger as N

# §10.2 worked example
EXAMPLE = bytes.fromhex(
    "a7b6d339d1cd3330c9cf7a53f91ee117" "02d80000001a2b0f" "646d732e6578616d706c652e636f6d")


def test_worked_example_exact_bytes():
    built = N.build("dms.example.com", "srvsecret", b"srvnonce", 0x1A2B,
                    ui_mode=N.UI_BACKGROUND, initiator=N.INITIATOR_SERVER, version=11)
    assert built == EXAMPLE and len(built) == 39


def test_version_12_header():
    built = N.build("dms.example.com", "srvsecret", b"srvnonce", 0x1A2B, ui_mode=1, version=12)
    assert built[16:24] == bytes.fromhex("0318" "0000001a2b0f")


def test_parse_worked_example():
    n = N.parse(EXAMPLE)
    assert (n.version, n.ui_mode, n.initiator, n.session_id) == (11, 1, 1, 0x1A2B)
    assert n.server_id == "dms.example.com" and n.vendor == b""
    assert n.digest == EXAMPLE[:16] and n.trigger == EXAMPLE[16:]
    assert n.session_id_hex == "1A2B"


def test_verify():
    n = N.parse(EXAMPLE)
    assert N.verify(n, "dms.example.com", "srvsecret", b"srvnonce")
    assert not N.verify(n, "dms.example.com", "wrong", b"srvnonce")
    assert not N.verify(n, "dms.example.com", "srvsecret", b"other")
    assert not N.verify(n, "other.example.com", "srvsecret", b"srvnonce")
    tampered = bytearray(EXAMPLE)
    tampered[21] ^= 0x01  # flip a session-id bit: digest no longer matches
    assert not N.verify(N.parse(bytes(tampered)), "dms.example.com", "srvsecret", b"srvnonce")


def test_vendor_trailer_ui_modes_and_auth_name():
    data = N.build("srv", "pw", b"n", 0xFFFF, ui_mode=N.UI_USER_INTERACTION, initiator=N.INITIATOR_CLIENT,
                   vendor=b"\x01\x02vendor", auth_name="srv-user")
    n = N.parse(data)
    assert (n.ui_mode, n.initiator, n.session_id, n.server_id, n.vendor) == (3, 0, 0xFFFF, "srv", b"\x01\x02vendor")
    assert N.verify(n, "srv", "pw", b"n", auth_name="srv-user")
    assert not N.verify(n, "srv", "pw", b"n")  # digest was keyed with the AAuthName


@pytest.mark.parametrize("nonce", N.RESYNC_NONCES)
def test_resync_nonces(nonce):
    n = N.parse(N.build("srv", "pw", nonce, 7))
    assert not N.verify(n, "srv", "pw", b"stale")
    assert any(N.verify(n, "srv", "pw", candidate) for candidate in N.RESYNC_NONCES)


@pytest.mark.parametrize("data", [b"", EXAMPLE[:23], EXAMPLE[:30], EXAMPLE[:24]])
def test_truncated(data):
    with pytest.raises(N.NotificationError):
        N.parse(data)


@pytest.mark.parametrize("kwargs", [dict(session_id=0), dict(session_id=0x10000), dict(ui_mode=4),
                                    dict(initiator=2), dict(version=1024)])
def test_build_rejects_out_of_range(kwargs):
    args = dict(server_id="srv", server_password="pw", nonce=b"n", session_id=1) | kwargs
    with pytest.raises(ValueError):
        N.build(**args)


def test_session_id_hex():
    assert N.session_id_to_hex(0x001A) == "1A"
    assert N.session_id_to_hex(0x1A2B) == "1A2B"
    assert N.session_id_to_hex(1) == "1" and N.session_id_to_hex(0xFFFF) == "FFFF"
    assert N.session_id_from_hex("1A2B") == N.session_id_from_hex("001a2b") == 0x1A2B
    for bad in (0, 0x10000):
        with pytest.raises(ValueError):
            N.session_id_to_hex(bad)
    for bad in ("", "0", "xyz", "10000"):
        with pytest.raises(ValueError):
            N.session_id_from_hex(bad)
