"""Issue 11 item 3: an Atomic (or Sequence) the device refuses as a whole --
a Status on the container and none for its members -- is the members'
result: recorded at once with the container's code, not retried."""
import pytest

from dmwsi.dm.message import Status
from dmwsi.dm.work import WorkUnit
from dmwsi.records import Command

from tests.dm.engine import FakeBackend, ScriptedDevice, new_session


def container_unit(**flags):
    return WorkUnit("job-1", [Command(action="Add", uri="./Ext/A", value="1", seq=1),
                              Command(action="Replace", uri="./Ext/B", value="2", seq=2)], **flags)


def refuse_container(device, reply, code):
    """Package 3 of the real client: SyncHdr 212 status and the container's
    status alone, no member statuses."""
    hdr = reply.header
    container = next(c for c in reply.body if c.tag in ("Atomic", "Sequence"))
    return device.message([Status(msg_ref=hdr.msg_id, cmd_ref="0", cmd="SyncHdr", code=200),
                           Status(msg_ref=hdr.msg_id, cmd_ref=container.cmd_id, cmd=container.tag, code=code)])


@pytest.mark.parametrize("flags,code", [({"atomic": True}, 406), ({"atomic": True}, 507),
                                        ({"atomic": True}, 500), ({"sequence": True}, 406)])
def test_container_refused_as_a_whole_is_its_members_result_at_once(flags, code):
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    backend.queue("IMEI:1", container_unit(**flags))
    session = new_session(backend)
    reply = device.send(session, device.package1())
    end = device.send(session, refuse_container(device, reply, code))
    assert session.ended and session.end_reason == "completed" and end.final
    assert not backend.interrupted                         # not handed back for another attempt
    (_, unit, outcomes), = backend.finished
    assert [(o.seq, o.status) for o in outcomes] == [(1, code), (2, code)]


def test_member_statuses_win_over_the_containers():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    backend.queue("IMEI:1", container_unit(atomic=True))
    session = new_session(backend)
    reply = device.send(session, device.package1())
    atomic = next(c for c in reply.body if c.tag == "Atomic")
    add, rep = atomic.commands
    hdr = reply.header
    device.send(session, device.message([
        Status(msg_ref=hdr.msg_id, cmd_ref="0", cmd="SyncHdr", code=200),
        Status(msg_ref=hdr.msg_id, cmd_ref=atomic.cmd_id, cmd="Atomic", code=507),
        Status(msg_ref=hdr.msg_id, cmd_ref=add.cmd_id, cmd="Add", code=216),
        Status(msg_ref=hdr.msg_id, cmd_ref=rep.cmd_id, cmd="Replace", code=404)]))
    (_, _, outcomes), = backend.finished
    assert [o.status for o in outcomes] == [216, 404]
