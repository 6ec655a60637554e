"""Message filling and large objects (issue 9 item 4: one packing for the
server's engine and the simulated device): dmwsi.dm.packing alone, then the
engine filling real server messages to a small device MaxMsgSize."""
from dmwsi.dm import codes
from dmwsi.dm.message import serialize
from dmwsi.dm.packing import LargeObject, fitting
from dmwsi.dm.work import WorkUnit
from dmwsi.records import Command

from tests.dm.engine import FakeBackend, ScriptedDevice, new_session, policy, server_commands


def test_fitting_is_the_largest_count_that_fits():
    for count in range(0, 30):
        for limit in range(0, 35):
            asked = []
            n = fitting(count, lambda n: asked.append(n) or n <= limit)
            assert n == min(count, limit)
            assert 0 not in asked and len(asked) <= max(1, count.bit_length() + 1)


def test_large_object_pieces_cover_the_data_once_and_respect_the_budget():
    lo = LargeObject("abcdefghij" * 100)
    pieces = []
    while not lo.done:
        # a piece that is not the last carries MoreData: 10 characters of overhead
        pieces.append(lo.next_piece(lambda piece, last: len(piece) + (0 if last else 10) <= 300))
    assert "".join(pieces) == lo.data and lo.size == 1000
    assert [len(p) for p in pieces] == [290, 290, 290, 130]


def test_large_object_refuses_a_piece_below_the_minimum_and_consumes_nothing():
    lo = LargeObject("x" * 1000)
    assert lo.next_piece(lambda piece, last: len(piece) <= 20, minimum=64) is None
    assert lo.first and lo.pos == 0


def test_engine_fills_messages_to_the_device_max_msg_size_and_chunks_a_large_value():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    big = "<&>" * 4000                     # escaping triples its size on the wire: counted exactly
    commands = [Command(action="Get", uri=f"./DevInfo/Ext/{n}", seq=n) for n in range(1, 41)]
    commands.append(Command(action="Replace", uri="./Ext/Blob", value=big, seq=41))
    backend.queue("IMEI:1", WorkUnit("job-1", commands))
    limit = 2048                           # the device's MaxMsgSize (its package 1 names none: the policy's)
    session = new_session(backend, policy=policy(default_device_max_msg_size=limit))
    replies = [device.send(session, device.package1())]
    while not session.ended:
        replies.append(device.send(session, device.answer(replies[-1])))
    sent = [c for r in replies for c in server_commands(r)]
    assert all(len(serialize(r)) <= limit for r in replies)
    gets = [c for c in sent if c.tag == "Get"]
    assert len(gets) == 40 and len({c.items[0].target for c in gets}) == 40   # each exactly once
    pieces = [c.items[0] for c in sent if c.tag == "Replace"]
    assert len(pieces) > 3 and "".join(p.data for p in pieces) == big
    assert pieces[0].meta.size == len(big) and all(p.more_data for p in pieces[:-1]) and not pieces[-1].more_data
    (_, unit, outcomes), = backend.finished
    assert {o.seq: o.status for o in outcomes}[41] == codes.StatusCode.OK
