"""Issue 11 item 5: a large object is only trusted chunk by chunk. A
non-final chunk answered with anything but 213 (chunk buffered) means the
device did not take the object whole: that command fails with the per-device
error LargeObjectNotBuffered, and the rest of the object is not sent.
And a command that does not fit beside package 1's statuses waits for the
next message instead of being refused 413 (§4)."""
from dmwsi.dm import codes
from dmwsi.dm.message import Meta
from dmwsi.dm.work import WorkUnit
from dmwsi.records import Command

from tests.dm.engine import FakeBackend, ScriptedDevice, new_session, policy, server_commands

VALUE = "x" * 4000


def chunk_session():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    backend.queue("IMEI:1", WorkUnit("job-1", [Command(action="Replace", uri="./Ext/Big", value=VALUE, seq=1),
                                               Command(action="Get", uri="./Ext/After", seq=2)]))
    session = new_session(backend, policy=policy(default_device_max_msg_size=1800))
    return backend, device, session


def run(device, session, non_final_code):
    """Answer every chunk: ``non_final_code`` to those with MoreData, 200 otherwise.
    Returns the chunks' data as the device received them."""
    reply = device.send(session, device.package1())
    pieces = []
    while not session.ended:
        answers = {}
        for cmd in server_commands(reply):
            item = cmd.items[0]
            if cmd.tag == "Replace":
                pieces.append(item.data)
                answers[item.target] = non_final_code if item.more_data else codes.StatusCode.OK
        reply = device.send(session, device.answer(reply, codes_by_uri=answers))
    return pieces


def test_213_for_every_non_final_chunk_then_200_is_success():
    backend, device, session = chunk_session()
    pieces = run(device, session, codes.StatusCode.CHUNKED_ITEM_ACCEPTED)
    assert len(pieces) > 2 and "".join(pieces) == VALUE
    (_, _, outcomes), = backend.finished
    assert [(o.status, o.error) for o in outcomes] == [(200, None), (200, None)]


def test_200_for_a_non_final_chunk_fails_the_command_and_stops_the_object():
    backend, device, session = chunk_session()
    pieces = run(device, session, codes.StatusCode.OK)
    assert len(pieces) == 1 and len(pieces[0]) < len(VALUE)     # nothing more of it was sent
    (_, _, (big, after)), = backend.finished
    assert big.status == 200 and big.error == "LargeObjectNotBuffered"
    assert "213" in big.detail and "200" in big.detail
    assert (after.status, after.error) == (200, None)            # the rest of the unit still ran


def test_an_error_for_a_non_final_chunk_is_the_commands_status():
    backend, device, session = chunk_session()
    pieces = run(device, session, codes.StatusCode.DEVICE_FULL)
    assert len(pieces) == 1
    (_, _, (big, _)), = backend.finished
    assert big.status == codes.StatusCode.DEVICE_FULL and big.error == "LargeObjectNotBuffered"


def test_a_command_crowded_out_by_package_1_statuses_goes_in_the_next_message_not_413():
    # Package 2 answers package 1 (SyncHdr with Chal, Alert, DevInfo Replace):
    # a small MaxMsgSize leaves no room for the Add beside them, but the next
    # message has it. Refusing it 413 would fail a command that fits.
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    backend.queue("IMEI:1", WorkUnit("job-1", [Command(action="Add", uri="./Ext/Node", format="node", seq=1),
                                               Command(action="Add", uri="./Ext/Node/A", value="v" * 120, seq=2)]))
    session = new_session(backend, policy=policy(default_device_max_msg_size=1500))
    reply = device.send(session, device.package1())
    seen = []
    while not session.ended:
        seen += [c.items[0].target for c in server_commands(reply)]
        reply = device.send(session, device.answer(reply))
    assert seen == ["./Ext/Node", "./Ext/Node/A"]
    (_, _, outcomes), = backend.finished
    assert [o.status for o in outcomes] == [200, 200]


def test_an_object_over_the_devices_max_obj_size_is_416_and_never_sent():
    backend, device, session = chunk_session()
    first = device.package1()
    first.msg.header.meta = Meta(max_msg_size=1800, max_obj_size=1000)    # §5: valid for the session
    reply = device.send(session, first)
    assert [c.tag for c in server_commands(reply)] == ["Get"]            # the Replace is not sent
    device.send(session, device.answer(reply))
    (_, _, (big, after)), = backend.finished
    assert big.status == codes.StatusCode.REQUESTED_SIZE_TOO_BIG and after.status == 200
