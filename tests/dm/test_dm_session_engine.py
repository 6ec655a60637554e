"""Session identity and the device's slot, driven through the engine and the
HTTP-independent DMServer core with the in-memory harness (tests/dm/engine.py):
issue 11 item 1 (a new session is not a retransmission) and issue 8 item 5
(unauthenticated messages hold no slot; challenges are rate-limited)."""
from dmwsi.dm import codes, wbxml
from dmwsi.dm.message import parse
from dmwsi.dm.server import DMServer
from dmwsi.dm.work import WorkUnit
from dmwsi.records import Command

from tests.dm.engine import FakeBackend, ScriptedDevice, header_status, new_session, policy, server_commands

XML = wbxml.DM_XML


def get_unit(job_id="job-1"):
    return WorkUnit(job_id, [Command(action="Get", uri="./DevInfo/Mod", seq=1)])


def test_harness_runs_a_get_through_the_engine():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    backend.queue("IMEI:1", get_unit())
    session = new_session(backend)
    reply = device.send(session, device.package1())
    assert header_status(reply).code == 212
    assert [(c.tag, c.items[0].target) for c in server_commands(reply)] == [("Get", "./DevInfo/Mod")]
    end = device.send(session, device.answer(reply, values={"./DevInfo/Mod": "P1"}))
    assert end.final and not server_commands(end) and session.ended
    (_, unit, outcomes), = backend.finished
    assert unit.job_id == "job-1" and outcomes[0].status == 200 and outcomes[0].results[0].value == "P1"


def test_same_session_and_msg_id_with_other_bytes_is_a_new_package_1_not_a_retransmission():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    session = new_session(backend)
    abandoned = device.package1(authenticate=False)
    first = session.receive(abandoned.msg, body=abandoned.body)
    assert first.body[0].code == 407
    assert session.is_retransmission(abandoned.msg, abandoned.body)
    assert session.receive(abandoned.msg, body=abandoned.body) is first      # lost reply: same answer
    device.restart()                                   # real clients: SessionID 1, MsgID 1 again
    fresh = device.package1()
    assert fresh.msg.header.msg_id == abandoned.msg.header.msg_id
    assert not session.is_retransmission(fresh.msg, fresh.body)
    assert session.restarts(fresh.msg, fresh.body)
    # The §3.5 retry after a challenge carries the next MsgID: it continues the session.
    retry = device.package1(msg_id=2)
    assert not session.restarts(retry.msg, retry.body)


def dm_server(backend, **kwargs):
    clock = kwargs.pop("clock", None) or (lambda: 0.0)
    return DMServer(backend, policy(), clock=clock, **kwargs)


def post(server, sent, token=None, source="10.0.0.1", device=None):
    """One message through the server core; ``device`` keeps the nonces it is given."""
    answer = server.handle(sent.body, XML, token=token, source=source)
    reply = parse(answer.body) if answer.code == 200 else None
    if device is not None and reply is not None:
        device.learn(reply)
    return answer, reply


def token_of(reply):
    return reply.header.resp_uri.split("?s=", 1)[1]


def test_new_session_after_abandoned_407_gets_a_fresh_answer_and_a_new_token():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    backend.queue("IMEI:1", get_unit())
    server = dm_server(backend)
    # Its nonce is not kept: a challenge from a server that did not authenticate
    # itself is for this session only (§9.4), and the device walked away.
    _, old = post(server, device.package1(authenticate=False))
    assert old.body[0].code == 407
    device.restart()
    _, new = post(server, device.package1(), device=device)             # same SessionID/MsgID, no token
    assert header_status(new).code == 212 and token_of(new) != token_of(old)
    assert [c.tag for c in server_commands(new)] == ["Get"]
    assert token_of(old) not in server.by_token           # the abandoned session ended
    # Arriving with the old RespURI token changes nothing: a different body is no retransmission.
    device.restart()
    _, again = post(server, device.package1(), token=token_of(new), device=device)
    assert header_status(again).code == 212 and token_of(again) != token_of(new)
    (_, unit, reason), = backend.interrupted            # the superseded session's work, handed back
    assert unit.job_id == "job-1" and "superseded" in reason
    assert [c.tag for c in server_commands(again)] == ["Get"]


def test_unauthenticated_package_1_does_not_take_or_disturb_the_devices_slot():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    attacker = ScriptedDevice(backend.accounts["IMEI:1"])
    backend.queue("IMEI:1", get_unit())
    server = dm_server(backend)
    _, reply = post(server, attacker.package1(authenticate=False), source="192.0.2.66")
    assert reply.body[0].code == 407
    assert not server.in_session("IMEI:1")               # nothing to stop package 0 reaching the device
    _, reply = post(server, device.package1(), device=device)
    assert header_status(reply).code == 212 and server.in_session("IMEI:1")
    for _ in range(3):                                   # a stranger keeps naming the device
        attacker.restart()
        _, bogus = post(server, attacker.package1(authenticate=False), source="192.0.2.66")
        assert bogus.body[0].code == 407
    assert server.by_device["IMEI:1"].token == token_of(reply) and not backend.interrupted
    _, end = post(server, device.answer(reply), token=token_of(reply))
    assert end.final and backend.finished[0][2][0].status == 200


def test_challenges_are_rate_limited_per_source_but_valid_credentials_pass():
    now = [0.0]
    backend = FakeBackend()
    backend.add_account()
    device = ScriptedDevice(backend.accounts["IMEI:1"])
    attacker = ScriptedDevice(backend.accounts["IMEI:1"])
    server = dm_server(backend, clock=lambda: now[0], challenge_rate=1.0, challenge_burst=3)
    for _ in range(3):
        attacker.restart()
        answer, _ = post(server, attacker.package1(authenticate=False), source="192.0.2.66")
        assert answer.code == 200
    nonce = backend.accounts["IMEI:1"].client_nonce
    assert nonce == b""                              # challenges never replace the device's nonce
    answer, _ = post(server, attacker.package1(authenticate=False), source="192.0.2.66")
    assert answer.code == 429 and answer.headers["Retry-After"] == "1"
    assert backend.accounts["IMEI:1"].client_nonce == nonce           # a refused message writes nothing
    answer, _ = post(server, attacker.package1(password="guess"), source="192.0.2.66")
    assert answer.code == 429                                          # wrong credentials: no challenge
    assert post(server, attacker.package1(authenticate=False), source="192.0.2.7")[0].code == 200
    answer, reply = post(server, device.package1(), source="192.0.2.66")  # same address, good Cred
    assert answer.code == 200 and header_status(reply).code == 212
    assert "IMEI:1" not in server.unauthenticated                      # the device's 212 ended them
    now[0] += 1.0                                                      # refilled: one more challenge
    assert post(server, attacker.package1(authenticate=False), source="192.0.2.66")[0].code == 200
