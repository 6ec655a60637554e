"""Issue 11 item 7, interop hardening: every Add and Replace carries
<Meta><Format> (chr when the caller gave none: a real client crashes on an
Add without it), and a container gets its CmdID before its members."""
from dmwsi.dm.work import WorkUnit
from dmwsi.records import Command

from tests.dm.engine import FakeBackend, ScriptedDevice, new_session


def first_reply(unit):
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account())
    backend.queue("IMEI:1", unit)
    return device.send(new_session(backend), device.package1())


def test_add_and_replace_always_carry_a_format_chr_by_default():
    reply = first_reply(WorkUnit("job-1", [
        Command(action="Add", uri="./Ext/A", value="1", seq=1),
        Command(action="Replace", uri="./Ext/B", value="2", seq=2),
        Command(action="Add", uri="./Ext/C", format="node", seq=3),
        Command(action="Replace", uri="./Ext/D", value="3q==", format="b64", type="application/x", seq=4),
        Command(action="Get", uri="./Ext/E", seq=5)]))
    sent = {c.items[0].target: c for c in reply.body if c.tag not in ("Status", "Results")}
    formats = {uri: (c.items[0].meta.format if c.items[0].meta else None) for uri, c in sent.items()}
    assert formats == {"./Ext/A": "chr", "./Ext/B": "chr", "./Ext/C": "node", "./Ext/D": "b64", "./Ext/E": None}
    assert sent["./Ext/D"].items[0].meta.type == "application/x"


def test_container_cmd_id_comes_before_its_members():
    for flags in ({"atomic": True}, {"sequence": True}):
        reply = first_reply(WorkUnit("job-1", [Command(action="Replace", uri="./Ext/A", value="1", seq=1),
                                               Command(action="Get", uri="./Ext/B", seq=2)], **flags))
        container = next(c for c in reply.body if c.tag in ("Atomic", "Sequence"))
        ids = [int(container.cmd_id)] + [int(c.cmd_id) for c in container.commands]
        assert ids == sorted(ids) and len(set(ids)) == 3
        statuses = [int(c.cmd_id) for c in reply.body if c.tag == "Status"]
        assert max(statuses) < ids[0]                        # statuses first, then the container
