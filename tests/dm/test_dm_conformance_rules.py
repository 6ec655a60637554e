"""Server-side OMA DM 1.2 session rules (omadm-reference.md §3-§9), one test
each, driven through the engine with the harness (tests/dm/engine.py): the
rows of docs/dm-conformance.rst that had no engine-level test before."""
from dmwsi.dm import auth, codes
from dmwsi.dm.message import Add, Alert, Item, Meta, Results, Status
from dmwsi.dm.work import WorkUnit
from dmwsi.records import Command

from tests.dm.engine import FakeBackend, ScriptedDevice, header_status, new_session, server_commands


def started(units=(), **account):
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account(**account))
    for unit in units:
        backend.queue("IMEI:1", unit)
    session = new_session(backend)
    return backend, device, session


def get_unit(uri="./DevInfo/Mod", job_id="job-1"):
    return WorkUnit(job_id, [Command(action="Get", uri=uri, seq=1)])


def command_statuses(reply):
    return {(s.cmd_ref, s.cmd): s.code for s in reply.body if s.tag == "Status" and s.cmd_ref != "0"}


def test_synchdr_status_comes_first_and_every_device_command_gets_one():
    backend, device, session = started([get_unit()])
    reply = device.send(session, device.package1())
    assert reply.body[0].tag == "Status" and reply.body[0].cmd_ref == "0" and reply.body[0].cmd == "SyncHdr"
    assert command_statuses(reply) == {("1", "Alert"): 200, ("2", "Replace"): 200}
    assert int(reply.body[0].cmd_id) == 1                      # CmdIDs from 1 in every message
    assert reply.header.resp_uri.endswith("?s=tok") and reply.header.session_id == "1"


def test_md5_accepted_is_212_with_a_fresh_nonce_kept_for_the_next_session():
    backend, device, session = started()
    reply = device.send(session, device.package1())
    status = header_status(reply)
    assert status.code == codes.StatusCode.AUTH_ACCEPTED and status.chal.type == auth.AUTH_MD5
    assert backend.accounts["IMEI:1"].client_nonce == auth.b64decode(status.chal.next_nonce)


def test_missing_credentials_get_407_with_a_challenge_and_nothing_runs():
    backend, device, session = started([get_unit()])
    reply = device.send(session, device.package1(authenticate=False))
    status = header_status(reply)
    assert status.code == codes.StatusCode.MISSING_CREDENTIALS and status.chal.next_nonce
    assert set(command_statuses(reply).values()) == {codes.StatusCode.NOT_EXECUTED}
    assert not server_commands(reply) and backend.claims == []          # no work before authentication
    reply = device.send(session, device.package1())                   # §3.5: retry with the nonce
    assert header_status(reply).code == 212 and [c.tag for c in server_commands(reply)] == ["Get"]


def test_wrong_credentials_get_401_and_two_failures_end_the_session():
    backend, device, session = started()
    assert header_status(device.send(session, device.package1(password="bad"))).code == 401
    device.send(session, device.package1(password="bad"))
    assert session.ended and session.end_reason == "authentication failed"


def test_unknown_device_is_403():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account("IMEI:9"))
    session = new_session(backend, device_id="IMEI:1")
    reply = session.receive(device.package1().msg)
    assert reply.body[0].code == 403 and session.ended


def test_device_may_not_send_management_commands_and_a_missing_cmd_id_is_400():
    backend, device, session = started()
    reply = device.send(session, device.package1())
    sent = device.message([Status(msg_ref=reply.header.msg_id, cmd_ref="0", cmd="SyncHdr", code=200),
                           Add(items=[Item(target="./Server/X", data="1")])])
    answer = device.send(session, sent)
    assert command_statuses(answer) == {("2", "Add"): codes.StatusCode.COMMAND_NOT_ALLOWED}
    missing = device.message([Add(items=[Item(target="./Server/X", data="1")])])
    missing.msg.body[0].cmd_id = None
    assert [(s.cmd, s.code) for s in session.receive(missing.msg).body if s.cmd != "SyncHdr"] == [("Add", 400)]


def test_get_results_are_recorded_with_their_format_and_type():
    backend, device, session = started([get_unit("./Ext/Bin")])
    reply = device.send(session, device.package1())
    get = server_commands(reply)[0]
    hdr = reply.header
    device.send(session, device.message([
        Status(msg_ref=hdr.msg_id, cmd_ref="0", cmd="SyncHdr", code=200),
        Status(msg_ref=hdr.msg_id, cmd_ref=get.cmd_id, cmd="Get", code=200),
        Results(msg_ref=hdr.msg_id, cmd_ref=get.cmd_id,
                items=[Item(source="./Ext/Bin", meta=Meta(format="b64", type="application/x"), data="AAE=")])]))
    (_, _, (outcome,)), = backend.finished
    (item,) = outcome.results
    assert (item.uri, item.value, item.format, item.type) == ("./Ext/Bin", "AAE=", "b64", "application/x")


def test_device_package_over_several_messages_is_answered_with_1222_until_final():
    backend, device, session = started([get_unit()])
    first = device.package1()
    first = device.message(first.msg.body, cred=first.msg.header.cred, final=False, msg_id=1)
    reply = device.send(session, first)
    assert not reply.final and [c.data for c in reply.body if c.tag == "Alert"] == [1222]
    assert [c.tag for c in server_commands(reply)] == ["Alert"]          # no work yet: the package is open
    rest = device.message([Status(msg_ref=reply.header.msg_id, cmd_ref="0", cmd="SyncHdr", code=200)])
    reply = device.send(session, rest)
    assert [c.tag for c in server_commands(reply)] == ["Get"]          # work once the package is whole


def test_incoming_large_object_213_per_chunk_and_424_on_a_size_mismatch():
    for total, pieces, expected in ((10, ["abcde", "fghij"], "abcdefghij"), (11, ["abcde", "fghij"], None)):
        backend, device, session = started([get_unit("./Ext/Big")])
        reply = device.send(session, device.package1())
        get = server_commands(reply)[0]
        hdr = reply.header
        chunk = device.message([
            Status(msg_ref=hdr.msg_id, cmd_ref="0", cmd="SyncHdr", code=200),
            Status(msg_ref=hdr.msg_id, cmd_ref=get.cmd_id, cmd="Get", code=200),
            Results(msg_ref=hdr.msg_id, cmd_ref=get.cmd_id,
                    items=[Item(source="./Ext/Big", meta=Meta(size=total), data=pieces[0], more_data=True)])],
            final=False)
        answer = device.send(session, chunk)
        assert [s.code for s in answer.body if s.tag == "Status" and s.cmd == "Results"] == [213]
        device.send(session, device.message([
            Status(msg_ref=answer.header.msg_id, cmd_ref="0", cmd="SyncHdr", code=200),
            Results(msg_ref=hdr.msg_id, cmd_ref=get.cmd_id, items=[Item(source="./Ext/Big", data=pieces[1])])]))
        (_, _, (outcome,)), = backend.finished
        if expected is None:
            assert outcome.status == codes.StatusCode.SIZE_MISMATCH and not outcome.results
        else:
            assert outcome.status == 200 and outcome.results[0].value == expected


def test_generic_alert_goes_to_the_backend_and_is_answered_200():
    backend, device, session = started()
    pkg1 = device.package1()
    alert = Alert(data=1226, correlator="job-7:1", items=[Item(source="./FUMO/x/Update",
                  meta=Meta(type="org.openmobilealliance.dm.firmwareupdate.update", format="int"), data="200")])
    sent = device.message(pkg1.msg.body + [alert], cred=pkg1.msg.header.cred)
    reply = device.send(session, sent)
    assert command_statuses(reply)[("3", "Alert")] == 200
    (_, got), = backend.alerts
    assert (got.code, got.correlator, got.data, got.source) == (1226, "job-7:1", "200", "./FUMO/x/Update")


def test_device_abort_1223_hands_the_work_back():
    backend, device, session = started([get_unit()])
    reply = device.send(session, device.package1())
    device.send(session, device.message([Status(msg_ref=reply.header.msg_id, cmd_ref="0", cmd="SyncHdr", code=200),
                                         Alert(data=1223)]))
    assert session.ended and not backend.finished
    (_, unit, reason), = backend.interrupted
    assert unit.job_id == "job-1" and "aborted" in reason


def test_a_lost_reply_is_sent_again_byte_for_byte():
    backend, device, session = started([get_unit()])
    sent = device.package1()
    first = session.receive(sent.msg, body=sent.body)
    assert session.receive(sent.msg, body=sent.body) is first
    assert backend.claims == [("IMEI:1", ["job-1"])]                   # claimed once
