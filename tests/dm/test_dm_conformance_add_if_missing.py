"""Issue 11 item 6: SetDeviceData is "Replace, or Add when the node does not
exist". A unit that asks for it (WorkUnit.add_if_missing) answers the
device's 404 to a Replace with an Add of the same node, value, format and
type in the same session; both statuses are the command's, in order."""
from dmwsi.dm import codes
from dmwsi.dm.work import WorkUnit
from dmwsi.records import Command

from tests.dm.engine import FakeBackend, ScriptedDevice, new_session, server_commands


def run(unit, missing):
    """Drive a session where the device has no node in ``missing`` until it is Added."""
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    backend.queue("IMEI:1", unit)
    session = new_session(backend)
    reply = device.send(session, device.package1())
    seen = []
    while not session.ended:
        answers = {}
        for cmd in server_commands(reply):
            if cmd.tag in ("Atomic", "Sequence"):
                continue
            item = cmd.items[0]
            seen.append((cmd.tag, item.target, item.data, item.meta.format if item.meta else None))
            if cmd.tag == "Replace" and item.target in missing:
                answers[item.target] = codes.StatusCode.NOT_FOUND
            elif cmd.tag == "Add":
                missing.discard(item.target)
        reply = device.send(session, device.answer(reply, codes_by_uri=answers))
    return backend, seen


def set_unit(**flags):
    return WorkUnit("job-1", [Command(action="Replace", uri="./Ext/Present", value="a", seq=1),
                              Command(action="Replace", uri="./Ext/Missing", value="b", format="int", seq=2)],
                    **flags)


def test_404_to_a_replace_becomes_an_add_in_the_same_session():
    backend, seen = run(set_unit(add_if_missing=True), {"./Ext/Missing"})
    assert seen == [("Replace", "./Ext/Present", "a", "chr"), ("Replace", "./Ext/Missing", "b", "int"),
                    ("Add", "./Ext/Missing", "b", "int")]
    (_, _, (present, missing)), = backend.finished
    assert (present.status, present.earlier) == (200, [])
    assert (missing.status, missing.earlier) == (200, [("Replace", 404)])
    assert not backend.interrupted


def test_without_the_flag_a_404_is_the_result():
    backend, seen = run(set_unit(), {"./Ext/Missing"})
    assert [s[0] for s in seen] == ["Replace", "Replace"]
    (_, _, (_, missing)), = backend.finished
    assert (missing.status, missing.earlier) == (404, [])


def test_the_add_is_tried_once_and_its_failure_is_the_result():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    backend.queue("IMEI:1", WorkUnit("job-1", [Command(action="Replace", uri="./Ext/No/Parent", value="b", seq=1)],
                                     add_if_missing=True))
    session = new_session(backend)
    reply = device.send(session, device.package1())
    reply = device.send(session, device.answer(reply, codes_by_uri={"./Ext/No/Parent": 404}))
    assert [c.tag for c in server_commands(reply)] == ["Add"]
    reply = device.send(session, device.answer(reply, codes_by_uri={"./Ext/No/Parent": 404}))
    assert session.ended and not server_commands(reply)
    (_, _, (outcome,)), = backend.finished
    assert (outcome.status, outcome.earlier) == (404, [("Replace", 404)])


def test_no_fallback_inside_an_atomic():
    backend, seen = run(set_unit(add_if_missing=True, atomic=True), {"./Ext/Missing"})
    assert "Add" not in [s[0] for s in seen]          # an Add after the Atomic would break all-or-nothing
