"""Credentials: basic, MD5 digest (reference §9.2 vector), HMAC header (§9.3), nonces."""
import base64
import hashlib

import pytest

from dmwsi.dm import auth as A


def test_md5_reference_vector():
    assert A.md5_encode("Bruce2", "OhBehave", b"Nonce") == "Zz6EivR3yeaaENcRN6lpAQ=="
    # the spec text's "Bruce1" erratum gives a different value (§9.2)
    assert A.md5_encode("Bruce1", "OhBehave", b"Nonce") == "+MEIKFrF8Qdou2B1H2YmXw=="


def test_md5_verify():
    assert A.md5_verify("Zz6EivR3yeaaENcRN6lpAQ==", "Bruce2", "OhBehave", b"Nonce")
    assert A.md5_verify(" Zz6EivR3yeaaENcRN6lpAQ==\n", "Bruce2", "OhBehave", b"Nonce")
    assert not A.md5_verify("Zz6EivR3yeaaENcRN6lpAQ==", "Bruce2", "OhBehave", b"Tm9uY2U=")  # b64 text, not bytes
    assert not A.md5_verify("Zz6EivR3yeaaENcRN6lpAQ==", "Bruce2", "wrong", b"Nonce")


def test_stored_hash_gives_same_digest():
    hashed = A.user_hash("Bruce2", "OhBehave")
    assert base64.b64encode(A.digest_from_hash(hashed, b"Nonce")).decode() == "Zz6EivR3yeaaENcRN6lpAQ=="


def test_basic_round_trip_and_fixture_value():
    assert A.basic_encode("funambol", "funambol") == "ZnVuYW1ib2w6ZnVuYW1ib2w="  # libdmclient capture
    assert A.basic_decode("ZnVuYW1ib2w6ZnVuYW1ib2w=") == ("funambol", "funambol")
    assert A.basic_decode(A.basic_encode("ü", "a:b:c")) == ("ü", "a:b:c")
    assert A.basic_verify("ZnVuYW1ib2w6ZnVuYW1ib2w=", "funambol", "funambol")
    assert not A.basic_verify("ZnVuYW1ib2w6ZnVuYW1ib2w=", "funambol", "x")
    assert not A.basic_verify("", "", "")  # koneki's empty Cred never authenticates


@pytest.mark.parametrize("bad", ["", "!!!", base64.b64encode(b"nocolon").decode(), base64.b64encode(b"\xff:\xfe").decode()])
def test_basic_decode_rejects(bad):
    with pytest.raises(ValueError):
        A.basic_decode(bad)


def test_b64_helpers():
    assert A.b64encode(b"barbazqux") == "YmFyYmF6cXV4"
    assert A.b64decode("YmFyYmF6cXV4") == b"barbazqux"
    assert A.b64decode(" ZG9i\nZWhhdmUNCg== ") == b"dobehave\r\n"
    assert A.b64decode("Tg") == b"N"  # missing padding tolerated
    with pytest.raises(ValueError):
        A.b64decode("not base64!")


def test_nonces_are_random_bytes():
    a, b = A.new_nonce(), A.new_nonce()
    assert isinstance(a, bytes) and len(a) == 16 and a != b
    assert len(A.new_nonce(32)) == 32


def reference_hmac_value(name, secret, nonce, body):
    """§9.3 formula written out independently of the module."""
    b64 = base64.b64encode
    md5 = lambda b: hashlib.md5(b).digest()  # noqa: E731
    return b64(md5(b64(md5(f"{name}:{secret}".encode())) + b":" + nonce + b":" + b64(md5(body)))).decode()


BODY = b'<?xml version="1.0"?><SyncML xmlns="SYNCML:SYNCML1.2">...</SyncML>'


def test_hmac_mac_matches_reference_formula():
    assert A.hmac_mac("dev", "secret", b"\x00\x01nonce", BODY) == reference_hmac_value("dev", "secret", b"\x00\x01nonce", BODY)
    assert A.hmac_mac("dev", "secret", b"n", BODY) != A.hmac_mac("dev", "secret", b"n", BODY + b" ")


def test_hmac_header_build_parse_verify():
    value = A.hmac_header("dev", "secret", b"n", BODY)
    assert value.startswith('algorithm=MD5, username="dev", mac=')
    parsed = A.parse_hmac_header(value)
    assert parsed == A.HmacHeader(algorithm="MD5", username="dev", mac=A.hmac_mac("dev", "secret", b"n", BODY))
    assert A.hmac_verify(value, "dev", "secret", b"n", BODY)
    assert not A.hmac_verify(value, "dev", "secret", b"n", BODY + b"x")
    assert not A.hmac_verify(value, "other", "secret", b"n", BODY)
    assert not A.hmac_verify(value, "dev", "secret", b"m", BODY)
    assert not A.hmac_verify("garbage", "dev", "secret", b"n", BODY)


@pytest.mark.parametrize("value", [
    'algorithm=MD5,username="dev",mac=AbC+/0==',  # Android engine spelling
    ' algorithm = MD5 , username = "dev" , mac = AbC+/0== ',
    'username=dev, mac="AbC+/0==", algorithm=MD5',
    'Algorithm=MD5, UserName="dev", MAC=AbC+/0==',
    'username="dev", mac=AbC+/0==',
])
def test_hmac_header_parse_is_tolerant(value):
    h = A.parse_hmac_header(value)
    assert (h.algorithm, h.username, h.mac) == ("MD5", "dev", "AbC+/0==")


@pytest.mark.parametrize("value", ["", "mac=abc", 'username="dev"', 'username="dev" mac=abc', 'username="dev, mac=x'])
def test_hmac_header_parse_rejects(value):
    with pytest.raises(ValueError):
        A.parse_hmac_header(value)


def test_constant_time_equals():
    assert A.constant_time_equals("abc", b"abc")
    assert not A.constant_time_equals("abc", "abd")
    assert not A.constant_time_equals("abc", "abcd")
