"""The simulator's real-client quirks (issue 11), each a DeviceBehaviour
option that is off by default, checked message by message as in
test_sim_device.py: SessionID 1 every session, MoreData ignored (200 per
chunk, the last kept), Atomic refused as a whole."""
from dmwsi.dm.message import Add, Atomic, Item, Meta, Replace, Status
from dmwsi.sim.fleet import sim_config_from_dict

from tests.sim.test_sim_device import accept, decode, make_device, status_for


def test_session_id_one_on_every_session_package0_or_not():
    device = make_device(session_id_one=True)
    for _ in range(3):
        assert decode(device.open_session()).header.session_id == "1"
        device.abort_session()
    pkg1 = decode(device.open_session(1200, "1A2B"))
    assert pkg1.header.session_id == "1" and pkg1.header.msg_id == "1"
    assert decode(make_device().open_session(1200, "1A2B")).header.session_id == "1A2B"   # default: as asked


def test_chunks_as_whole_answers_200_and_keeps_the_last_chunk():
    target = "./Ext/Big"
    chunks = ["a" * 100, "b" * 100, "c" * 50]
    for quirk, first_code, kept in ((True, 200, "a" * 100), (False, 213, None)):
        device = make_device(chunks_as_whole=quirk)
        pkg1 = decode(device.open_session())
        first = Add(cmd_id="3", items=[Item(target=target, meta=Meta(size=250), data=chunks[0], more_data=True)])
        msg = decode(accept(device, pkg1, [first], final=False))
        assert status_for(msg, "3")[0].code == first_code
        if quirk:
            assert device.tree.read_value(target) == kept      # written at once, as if whole
        else:
            assert not device.tree.exists(target)             # buffered until the last chunk


def test_atomic_refusal_answers_the_container_alone_and_runs_nothing():
    device = make_device(atomic_refusal=406)
    pkg1 = decode(device.open_session())
    atomic = Atomic(cmd_id="3", commands=[Add(cmd_id="4", items=[Item(target="./Ext/New1", data="a")]),
                                          Replace(cmd_id="5", items=[Item(target="./Ext/New1", data="b")])])
    pkg3 = decode(accept(device, pkg1, [atomic]))
    command_statuses = [(s.cmd_ref, s.code) for s in pkg3.body if isinstance(s, Status) and s.cmd_ref != "0"]
    assert ("3", 406) in command_statuses
    assert not [ref for ref, _ in command_statuses if ref in ("4", "5")]
    assert not device.tree.exists("./Ext/New1")


def test_fleet_classes_carry_the_quirks():
    config = sim_config_from_dict({"class": [{"name": "odd", "session_id_one": True, "chunks_as_whole": True,
                                              "atomic_refusal": 406}]})
    behaviour = config.classes[0].behaviour()
    assert (behaviour.session_id_one, behaviour.chunks_as_whole, behaviour.atomic_refusal) == (True, True, 406)
    plain = sim_config_from_dict({"class": [{"name": "plain"}]}).classes[0].behaviour()
    assert (plain.session_id_one, plain.chunks_as_whole, plain.atomic_refusal) == (False, False, None)
