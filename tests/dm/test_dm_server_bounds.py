"""Bounded work per DM message (issue 10 item 2): a message may carry at most
``max_parts`` commands and items, refused before any session sees it."""
from dmwsi.dm import wbxml
from dmwsi.dm import codes
from dmwsi.dm.message import Alert, Item, Replace, parse
from dmwsi.dm.server import DMServer

from tests.dm.engine import FakeBackend, ScriptedDevice, policy


def package1_with_items(device, count):
    devinfo = Replace(items=[Item(source="./DevInfo/DevId", data=device.account.device_id)] +
                            [Item(source=f"./DevInfo/Ext/{n}", data="x") for n in range(count)])
    return device.message([Alert(data=int(codes.AlertCode.CLIENT_INITIATED_MGMT)), devinfo], cred=device.cred())


def test_a_message_of_too_many_tiny_items_is_refused_before_any_session():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    dm = DMServer(backend, policy(), max_parts=100)
    nonce = backend.accounts["IMEI:1"].client_nonce
    answer = dm.handle(package1_with_items(device, 150).body, wbxml.DM_XML)
    assert answer.code == 413 and b"at most 100" in answer.body
    assert not dm.by_token and not dm.in_session("IMEI:1") and backend.accounts["IMEI:1"].client_nonce == nonce


def test_a_message_within_the_bound_is_served():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    dm = DMServer(backend, policy(), max_parts=100)
    answer = dm.handle(package1_with_items(device, 90).body, wbxml.DM_XML)
    reply = parse(answer.body)
    assert answer.code == 200 and [(c.cmd, c.code) for c in reply.body if c.tag == "Status"] == [
        ("SyncHdr", 212), ("Alert", 200), ("Replace", 200)]          # authenticated, both commands done
