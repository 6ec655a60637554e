"""Issue 11 item 2: a unit the device refused because it wanted the server's
credentials first is sent again once, whole, in job order: every command of
a job reaches the device exactly once per attempt, and a requeued unit goes
before later jobs' units, not behind them."""
from dmwsi.dm import auth, codes
from dmwsi.dm.message import Chal
from dmwsi.dm.work import WorkUnit
from dmwsi.records import Command

from tests.dm.engine import FakeBackend, ScriptedDevice, header_status, new_session, policy, server_commands


def five_command_unit(job_id="job-1"):
    value = "v" * 120
    return WorkUnit(job_id, [Command(action="Add", uri="./Ext/A", value=value, seq=1),
                             Command(action="Replace", uri="./Ext/B", value=value, seq=2),
                             Command(action="Replace", uri="./Ext/C", value=value, seq=3),
                             Command(action="Replace", uri="./Ext/D", value=value, seq=4),
                             Command(action="Get", uri="./Ext/E", seq=5)])


def refuse_server(device, reply, code=401):
    """Package 3 of a device that wants the server's Cred: 401 + Chal on our
    SyncHdr, and 401 (not executed) for every command of the message."""
    sent = device.answer(reply, codes_by_uri={c.items[0].target: code for c in server_commands(reply)})
    status = sent.msg.body[0]
    status.chal = Chal(type=auth.AUTH_MD5, format="b64", next_nonce=auth.b64encode(b"devnonce"))
    status.code = code
    return device.message(sent.msg.body, msg_id=sent.msg.header.msg_id)


def run(session, device, reply, first_answer):
    """Drive the session to its end, answering 200 everywhere after ``first_answer``;
    returns every server command the device received, in order."""
    seen = [(c.tag, c.items[0].target) for c in server_commands(reply)]
    reply = device.send(session, first_answer(reply))
    while not session.ended:
        seen += [(c.tag, c.items[0].target) for c in server_commands(reply)]
        reply = device.send(session, device.answer(reply))
    return seen


def test_401_on_the_first_message_sends_the_unit_once_more_whole_not_twice():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    backend.queue("IMEI:1", five_command_unit())
    # Small messages: the unit needs several, so part of it is still queued at the 401.
    session = new_session(backend, policy=policy(send_server_cred="on-challenge",
                                                 default_device_max_msg_size=1800))
    reply = device.send(session, device.package1())
    assert header_status(reply).code == 212
    first = [c.items[0].target for c in server_commands(reply)]
    assert 0 < len(first) < 5
    seen = run(session, device, reply, lambda r: refuse_server(device, r))
    order = ["./Ext/A", "./Ext/B", "./Ext/C", "./Ext/D", "./Ext/E"]
    assert [uri for _, uri in seen] == first + order          # refused part, then the unit once, whole
    (_, unit, outcomes), = backend.finished
    assert [o.status for o in outcomes] == [200] * 5 and not backend.interrupted


def test_a_requeued_unit_goes_before_later_jobs_units():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    value = "v" * 300      # one such Replace per message
    backend.queue("IMEI:1", WorkUnit("job-1", [Command(action="Replace", uri="./Ext/One", value=value, seq=1)]))
    backend.queue("IMEI:1", WorkUnit("job-2", [Command(action="Replace", uri="./Ext/Two", value=value, seq=1),
                                               Command(action="Replace", uri="./Ext/Three", value=value, seq=2)]))
    session = new_session(backend, policy=policy(send_server_cred="on-challenge",
                                                 default_device_max_msg_size=1800))
    reply = device.send(session, device.package1())

    def refuse_first_only(r):
        # The device refused job-1's command only; job-2's are not yet sent.
        targets = [c.items[0].target for c in server_commands(r)]
        assert targets == ["./Ext/One"]
        return refuse_server(device, r)

    seen = run(session, device, reply, refuse_first_only)
    assert [uri for _, uri in seen] == ["./Ext/One", "./Ext/One", "./Ext/Two", "./Ext/Three"]
    assert [u.job_id for _, u, _ in backend.finished] == ["job-1", "job-2"]
    assert all(o.status == 200 for _, _, outs in backend.finished for o in outs)


def test_a_second_refusal_is_recorded_not_requeued_again():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    backend.queue("IMEI:1", WorkUnit("job-1", [Command(action="Get", uri="./Ext/One", seq=1)]))
    session = new_session(backend, policy=policy(send_server_cred="on-challenge"))
    reply = device.send(session, device.package1())
    reply = device.send(session, refuse_server(device, reply))
    assert [c.items[0].target for c in server_commands(reply)] == ["./Ext/One"]
    reply = device.send(session, refuse_server(device, reply))
    assert session.ended and not server_commands(reply)
    (_, _, outcomes), = backend.finished
    assert outcomes[0].status == codes.StatusCode.INVALID_CREDENTIALS
