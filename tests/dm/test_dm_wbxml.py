"""WBXML codec (ctypes on libwbxml), cross-checked against libwbxml2-utils' CLI tools."""
import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from dmwsi.dm import message as M
from dmwsi.dm import wbxml as W

FIXTURES = Path(__file__).parent / "fixtures" / "real-clients"

try:
    W._library()
except W.WbxmlError as e:
    pytest.skip(f"libwbxml unavailable ({e}); apt-get install libwbxml2-1", allow_module_level=True)

needs_cli = pytest.mark.skipif(
    not (shutil.which("xml2wbxml") and shutil.which("wbxml2xml")),
    reason="xml2wbxml/wbxml2xml not installed (apt-get install libwbxml2-utils)")


def load_sample_message():
    """sample_message() from the message tests (import-mode=importlib: load by path)."""
    spec = importlib.util.spec_from_file_location("_dm_msg_tests", Path(__file__).parent / "test_dm_message.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.sample_message()


def log_messages():
    out = []
    for name in ("koneki-session.log", "libdmclient-xml-session.log"):
        out += re.findall(rb"<\?xml.*?</SyncML>", (FIXTURES / name).read_bytes(), re.S)
    return out


def test_decodes_libdmclient_wbxml_fixture():
    xml = W.wbxml_to_xml((FIXTURES / "libdmclient-pkg3-chal.wbxml").read_bytes())
    assert M.parse(xml) == M.parse((FIXTURES / "libdmclient-pkg3-chal.xml").read_bytes())
    # opaque <Data> (C3 0A "test model") decodes as text
    assert M.parse(xml).body[2].items[0].data == "test model"


def test_encoding_header_is_wbxml12_syncml12_utf8_no_string_table():
    wb = W.xml_to_wbxml(M.serialize(load_sample_message()))
    assert wb[:5] == bytes([0x02, 0xA4, 0x01, 0x6A, 0x00])
    assert wb[5] == 0x6D  # <SyncML> with content


def test_fixture_reencodes_to_same_size_as_client():
    # Same structure as libdmclient's encoding; only its opaque Data differs from our inline string.
    fixture = (FIXTURES / "libdmclient-pkg3-chal.wbxml").read_bytes()
    ours = W.xml_to_wbxml(M.serialize(M.parse(W.wbxml_to_xml(fixture))))
    assert ours[:352] == fixture[:352]
    assert ours.replace(b"\x4f\x03test model\x00", b"\x4f\xc3\x0atest model") == fixture


def test_round_trip_sample_message():
    m = load_sample_message()
    assert M.parse(W.wbxml_to_xml(W.xml_to_wbxml(M.serialize(m)))) == m


@pytest.mark.parametrize("body", log_messages())
def test_round_trip_logged_messages(body):
    m = M.parse(body)
    assert M.parse(W.wbxml_to_xml(W.xml_to_wbxml(M.serialize(m)))) == m


def test_data_whitespace_survives():
    m = M.Message(header=M.SyncHdr(session_id="1", msg_id="1", target="t", source="s"),
                  body=[M.Replace(cmd_id="1", items=[M.Item(target="./a", data="  two  spaces \n")])], final=True)
    assert M.parse(W.wbxml_to_xml(W.xml_to_wbxml(M.serialize(m)))).body[0].items[0].data == "  two  spaces \n"


def test_unknown_public_id_falls_back_to_syncml12():
    fixture = (FIXTURES / "libdmclient-pkg3-chal.wbxml").read_bytes()
    anonymous = fixture[:1] + b"\x01" + fixture[3:]  # public id 1 = unknown
    assert M.parse(W.wbxml_to_xml(anonymous)) == M.parse(W.wbxml_to_xml(fixture))


def test_string_table_public_id_is_accepted():
    fixture = (FIXTURES / "libdmclient-pkg3-chal.wbxml").read_bytes()
    fpi = b"-//SYNCML//DTD SyncML 1.2//EN\x00"
    string_form = fixture[:1] + b"\x00\x00\x6a" + bytes([len(fpi)]) + fpi + fixture[5:]
    assert M.parse(W.wbxml_to_xml(string_form)) == M.parse(W.wbxml_to_xml(fixture))


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x02\xa4\x01\x6a\x00\x6d\x6c\x71\x03\x31"])
def test_bad_wbxml_raises(data):
    with pytest.raises(W.WbxmlError):
        W.wbxml_to_xml(data)


@pytest.mark.parametrize("xml", [b"<html><body/></html>", b"<SyncML", b""])
def test_bad_xml_raises(xml):
    with pytest.raises(W.WbxmlError, match=r"libwbxml code \d+"):
        W.xml_to_wbxml(xml)


@pytest.mark.parametrize("ctype, expected", [
    ("application/vnd.syncml.dm+wbxml", True),
    ("Application/VND.SyncML.DM+WBXML; charset=utf-8", True),
    ("application/vnd.syncml+wbxml", True),
    ("application/vnd.syncml.dm+xml", False),
    ("application/vnd.syncml+xml", False),
    ("application/vnd.syncml.notification", False),
    ("", False),
    (None, False),
])
def test_is_wbxml(ctype, expected):
    assert W.is_wbxml(ctype) is expected


# -- cross-check against the command-line tools ---------------------------------

def run(tool, *args, data: bytes, tmp_path) -> bytes:
    src, dst = tmp_path / "in", tmp_path / "out"
    src.write_bytes(data)
    subprocess.run([tool, *args, "-o", str(dst), str(src)], check=True, capture_output=True, timeout=30)
    return dst.read_bytes()


@needs_cli
def test_our_encoding_matches_xml2wbxml(tmp_path):
    xml = M.serialize(load_sample_message())
    assert W.xml_to_wbxml(xml) == run("xml2wbxml", "-v", "1.2", "-n", "-k", data=xml, tmp_path=tmp_path)


@needs_cli
def test_wbxml2xml_reads_our_encoding(tmp_path):
    m = load_sample_message()
    xml = run("wbxml2xml", "-m", "0", "-k", data=W.xml_to_wbxml(M.serialize(m)), tmp_path=tmp_path)
    assert M.parse(xml) == m


@needs_cli
def test_we_read_xml2wbxml_encoding_with_string_table(tmp_path):
    # Default xml2wbxml uses a string table; a client may too.
    m = load_sample_message()
    wb = run("xml2wbxml", "-k", data=M.serialize(m), tmp_path=tmp_path)
    assert M.parse(W.wbxml_to_xml(wb)) == m


@needs_cli
def test_fixture_decoding_matches_wbxml2xml(tmp_path):
    fixture = (FIXTURES / "libdmclient-pkg3-chal.wbxml").read_bytes()
    assert M.parse(W.wbxml_to_xml(fixture)) == M.parse(run("wbxml2xml", data=fixture, tmp_path=tmp_path))
