"""Session rules checked message by message against the real DM server:
abort (1223), credential scheme policy, two failures end the session."""
import pytest

from dmwsi.dm import auth
from dmwsi.dm.message import Alert, Cred, Message, Replace, Item, SyncHdr, parse, serialize
from dmwsi.jobs.submit import JobRequest, submit
from dmwsi.records import Command, Device

from tests.dm.test_dm_server_fixtures import post


def pkg(msg_id, body, cred=None, session="7", final=True):
    return serialize(Message(header=SyncHdr(session_id=session, msg_id=str(msg_id), target="http://dm",
                                            source="IMEI:1", cred=cred), body=body, final=final))


def md5_cred(nonce=b""):
    return Cred(type=auth.AUTH_MD5, format="b64", data=auth.md5_encode("IMEI:1", "pw", nonce))


@pytest.fixture
def server(start_server):
    srv = start_server(dm={"notifier": "log"})
    srv.store.upsert_device(Device(device_id="IMEI:1", auth_scheme="md5", client_username="IMEI:1",
                                   client_password="pw", server_password="spw"))
    return srv


def test_device_abort_hands_the_work_back(server):
    job = submit(server.services, JobRequest(principal="t", operation="GetDeviceData", devices=["IMEI:1"],
                                             commands=[Command(action="Get", uri="./DevInfo/Mod", seq=1)]))
    url = server.url("http", "dm")
    _, _, body = post(url, pkg(1, [Alert(cmd_id="1", data=1201)], md5_cred()), "application/vnd.syncml.dm+xml")
    reply = parse(body)
    assert reply.body[0].code == 212 and any(c.tag == "Get" for c in reply.body)
    assert server.store.get_target(job.job_id, "IMEI:1").state == "inSession"
    _, _, body = post(reply.header.resp_uri, pkg(2, [Alert(cmd_id="1", data=1223)]), "application/vnd.syncml.dm+xml")
    end = parse(body)
    assert [c.tag for c in end.body] == ["Status", "Status"] and end.final
    target = server.store.get_target(job.job_id, "IMEI:1")
    assert target.state == "pending" and "aborted" in target.message
    assert not server.services.dm_server.in_session("IMEI:1")


def test_scheme_not_accepted_gets_the_accounts_challenge(start_server):
    srv = start_server(dm={"notifier": "log", "accepted_auth": ["md5"]})
    srv.store.upsert_device(Device(device_id="IMEI:1", auth_scheme="basic", client_username="IMEI:1",
                                   client_password="pw", server_password="spw"))
    basic = Cred(type=auth.AUTH_BASIC, format="b64", data=auth.basic_encode("IMEI:1", "pw"))
    _, _, body = post(srv.url("http", "dm"), pkg(1, [Alert(cmd_id="1", data=1201)], basic),
                      "application/vnd.syncml.dm+xml")
    status = parse(body).body[0]
    assert status.code == 401 and status.chal.type == auth.AUTH_MD5    # policy: MD5 only


def test_two_bad_credentials_end_the_session(server):
    url = server.url("http", "dm")
    bad = Cred(type=auth.AUTH_MD5, format="b64", data=auth.md5_encode("IMEI:1", "wrong", b""))
    _, _, body = post(url, pkg(1, [Alert(cmd_id="1", data=1201)], bad), "application/vnd.syncml.dm+xml")
    first = parse(body)
    assert first.body[0].code == 401 and first.body[1].code == 215
    _, _, body = post(first.header.resp_uri, pkg(2, [Alert(cmd_id="1", data=1201)], bad),
                      "application/vnd.syncml.dm+xml")
    assert parse(body).body[0].code == 401
    assert not server.services.dm_server.in_session("IMEI:1")
    # A good retry after a challenge works with the challenged nonce.
    nonce = auth.b64decode(first.body[0].chal.next_nonce)
    assert nonce and server.store.get_device("IMEI:1").client_nonce != b""


def test_devinfo_updates_the_registry(server):
    url = server.url("http", "dm")
    devinfo = Replace(cmd_id="2", items=[Item(source="./DevInfo/Man", data="NewMan"),
                                         Item(source="./DevInfo/Lang", data="de-DE")])
    _, _, body = post(url, pkg(1, [Alert(cmd_id="1", data=1201), devinfo], md5_cred()),
                      "application/vnd.syncml.dm+xml")
    assert parse(body).body[0].code == 212
    device = server.store.get_device("IMEI:1")
    assert (device.man, device.lang) == ("NewMan", "de-DE")
