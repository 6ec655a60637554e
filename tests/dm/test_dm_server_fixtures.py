"""Messages captured from real OMA DM clients get protocol-correct answers
from our DM server (content types, Basic/empty credentials, a device that
challenges the server, chunked bodies)."""
import http.client
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dmwsi.dm import auth, wbxml
from dmwsi.dm.message import parse
from dmwsi.jobs.submit import JobRequest, submit
from dmwsi.records import Command, Device

FIXTURES = Path(__file__).parent / "fixtures" / "real-clients"


def log_messages(name):
    return re.findall(rb"<\?xml.*?</SyncML>", (FIXTURES / name).read_bytes(), re.S)


def post(url, body, content_type, chunked=False, extra=()):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    headers = {"Content-Type": content_type, **dict(extra)}
    path = parts.path + ("?" + parts.query if parts.query else "")
    if chunked:
        conn.request("POST", path, body=iter([body[:100], body[100:]]), headers=headers, encode_chunked=True)
    else:
        conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.getheader("content-type"), response.read()


def statuses(msg):
    return [(s.cmd, s.cmd_ref, s.code) for s in msg.body if s.tag == "Status"]


@pytest.fixture
def server(start_server):
    return start_server(dm={"notifier": "log"})


def test_libdmclient_session_ds_content_type_basic_and_server_challenge(server):
    store = server.store
    store.upsert_device(Device(device_id="DMCtest", auth_scheme="basic", client_username="funambol",
                               client_password="funambol", server_password="srvpw"))
    job = submit(server.services, JobRequest(
        principal="t", operation="ExecuteCommands", devices=["DMCtest"],
        commands=[Command(action="Get", uri="./DevInfo/Mod", seq=1),
                  Command(action="Replace", uri="./DevInfo/Ext/other/test3", value="x", seq=2)]))
    dm_url = server.url("http", "dm")

    pkg1 = log_messages("libdmclient-xml-session.log")[0]
    code, ctype, body = post(dm_url, pkg1, "application/vnd.syncml+xml")
    assert code == 200 and ctype == wbxml.DM_XML          # answered with the DM type
    reply = parse(body)
    assert reply.header.resp_uri and "?s=" in reply.header.resp_uri
    assert statuses(reply) == [("SyncHdr", "0", 212), ("Alert", "1", 200), ("Replace", "2", 200)]
    commands = [(c.tag, c.cmd_id, c.items[0].target) for c in reply.body if c.tag != "Status"]
    assert commands == [("Get", "4", "./DevInfo/Mod"), ("Replace", "5", "./DevInfo/Ext/other/test3")]
    # The device insists on server credentials: we send MD5 ones in every message.
    assert reply.header.cred.type == auth.AUTH_MD5
    assert auth.md5_verify(reply.header.cred.data, "dmwsi", "srvpw", b"")

    # Its package 3 (captured): Results for the Get, 425 for the Replace, and a
    # challenge carrying the nonce we must use next.
    pkg3 = (FIXTURES / "libdmclient-pkg3-chal.xml").read_bytes()
    code, ctype, body = post(reply.header.resp_uri, pkg3, "application/vnd.syncml+xml")
    assert code == 200
    end = parse(body)
    assert end.final and [c.tag for c in end.body] == ["Status"]          # nothing left: session ends
    nonce = auth.b64decode("eWliMEdqQnM3cTA9")
    assert store.get_device("DMCtest").server_nonce == nonce
    assert auth.md5_verify(end.header.cred.data, "dmwsi", "srvpw", nonce)
    result = {r.device_id: r for r in store.job_results(job.job_id)[0]}["DMCtest"]
    values = {i.uri: i.value for i in result.items if i.format is not None}
    codes = {i.command_seq: i.status_code for i in result.items if i.format is None}
    assert values == {"./DevInfo/Mod": "test model"} and codes == {1: 200, 2: 425}
    assert result.state == "failed"


def test_libdmclient_wbxml_message_is_decoded(server):
    server.store.upsert_device(Device(device_id="DMCtest", auth_scheme="basic", client_username="funambol",
                                      client_password="funambol", server_password="s"))
    data = (FIXTURES / "libdmclient-pkg3-chal.wbxml").read_bytes()
    code, ctype, body = post(server.url("http", "dm"), data, "application/vnd.syncml+wbxml")
    assert code == 200 and ctype == wbxml.DM_WBXML
    reply = parse(wbxml.wbxml_to_xml(body))
    # No credentials in this message: the server asks for them (407 + MD5... per
    # policy the account's Basic scheme), runs nothing, and keeps RespURI.
    hdr_status = reply.body[0]
    assert (hdr_status.cmd, hdr_status.code) == ("SyncHdr", 407) and hdr_status.chal is not None
    assert reply.header.resp_uri


def test_koneki_empty_basic_credentials_get_a_challenge_and_chunked_body_is_read(server):
    server.store.upsert_device(Device(device_id="IMEI:KONEKI1", auth_scheme="md5", client_username="koneki",
                                      client_password="secret", server_password="s"))
    pkg1 = log_messages("koneki-session.log")[0]
    code, ctype, body = post(server.url("http", "dm"), pkg1, "application/vnd.syncml.dm+xml", chunked=True,
                             extra={"Content-Encoding": "UTF-8"})            # bogus header, as sent
    assert code == 200
    reply = parse(body)
    hdr = reply.body[0]
    assert (hdr.cmd, hdr.code) == ("SyncHdr", 407)
    assert hdr.chal.type == auth.AUTH_MD5 and auth.b64decode(hdr.chal.next_nonce)
    assert [s.code for s in reply.body[1:]] == [215, 215]                  # nothing executed
    assert reply.header.resp_uri                                           # or Koneki loops forever
    # With the challenge's nonce the device authenticates and the session proceeds.
    nonce = auth.b64decode(hdr.chal.next_nonce)
    retry = pkg1.replace(b"<MsgID>1</MsgID>", b"<MsgID>2</MsgID>").replace(
        b'<Type xmlns="syncml:metinf">syncml:auth-basic</Type></Meta><Data></Data>',
        b'<Type xmlns="syncml:metinf">syncml:auth-md5</Type></Meta><Data>'
        + auth.md5_encode("koneki", "secret", nonce).encode() + b"</Data>")
    code, _, body = post(reply.header.resp_uri, retry, "application/vnd.syncml.dm+xml")
    assert parse(body).body[0].code == 212


def test_unknown_device_is_forbidden_and_garbage_is_400(server):
    pkg1 = log_messages("koneki-session.log")[0]
    code, _, body = post(server.url("http", "dm"), pkg1, "application/vnd.syncml.dm+xml")
    assert code == 200 and parse(body).body[0].code == 403
    assert post(server.url("http", "dm"), b"<SyncML>", "application/vnd.syncml.dm+xml")[0] == 400
    assert post(server.url("http", "dm"), pkg1, "text/plain")[0] == 415
