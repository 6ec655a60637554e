"""Devices, subscribers and groups."""

import pytest

from dmwsi.selector import SelectorError, parse_selector
from dmwsi.store import AmbiguousMatch, ConflictError, NotFound, UnknownDevices
from dmwsi.records import Device, Subscriber

from .conftest import T0, at


def test_upsert_and_get_round_trips_every_field(store):
    store.upsert_subscriber(Subscriber("sub1"))
    d = Device(
        "dev1", alias="al1", msisdn="+44", imsi="234", imei="35", subscriber_id="sub1",
        man="Acme", mod="P1", fwv="1.0", swv="2.0", hwv="A", lang="en", dmv="1.2", devtyp="phone",
        oem="OemCo", notification_url="sms:+44", auth_scheme="syncml:auth-md5", client_username="u",
        client_password="cp", server_password="sp", client_nonce=b"\x00\x01", server_nonce=b"\xff",
        last_seen=at(5),
    )
    stored = store.upsert_device(d, now=T0)
    assert stored == Device(**{**d.__dict__, "registered_at": T0})
    assert store.get_device("dev1") == stored
    assert isinstance(stored.client_nonce, bytes)


def test_upsert_replaces_fields_but_keeps_registration_time(store):
    store.upsert_device(Device("dev1", man="Acme", fwv="1.0"), now=T0)
    again = store.upsert_device(Device("dev1", man="Acme", fwv="1.1"), now=at(10))
    assert again.fwv == "1.1" and again.registered_at == T0


def test_get_missing_device_is_none(store):
    assert store.get_device("nope") is None


def test_upsert_with_unknown_subscriber_is_refused(store):
    with pytest.raises(ConflictError, match="subscriber 'ghost' is not registered"):
        store.upsert_device(Device("dev1", subscriber_id="ghost"))
    assert store.get_device("dev1") is None


def test_update_device_changes_only_named_fields(store):
    store.upsert_device(Device("dev1", man="Acme", fwv="1.0"), now=T0)
    d = store.update_device("dev1", last_seen=at(3), server_nonce=b"n2", fwv="1.2")
    assert (d.man, d.fwv, d.last_seen, d.server_nonce) == ("Acme", "1.2", at(3), b"n2")
    with pytest.raises(TypeError, match="unknown device field"):
        store.update_device("dev1", colour="red")
    with pytest.raises(NotFound):
        store.update_device("nope", fwv="1")


def test_alias_is_unique(store):
    store.upsert_device(Device("dev1", alias="same"))
    with pytest.raises(ConflictError):
        store.upsert_device(Device("dev2", alias="same"))


def test_naive_datetimes_are_rejected(store):
    from datetime import datetime

    with pytest.raises(ValueError, match="naive"):
        store.upsert_device(Device("dev1"), now=datetime(2024, 1, 1))


def test_find_device_by_each_key(store, devices):
    store.upsert_subscriber(Subscriber("sub1"))
    store.update_device("dev-c", subscriber_id="sub1", imsi="23415", alias="xyz")
    assert store.find_device(msisdn="+4470002").device_id == "dev-b"
    assert store.find_device(imei="350000000000004").device_id == "dev-d"
    assert store.find_device(imsi="23415").device_id == "dev-c"
    assert store.find_device(subscriber_id="sub1").device_id == "dev-c"
    assert store.find_device(alias="xyz").device_id == "dev-c"
    assert store.find_device(msisdn="+999") is None
    with pytest.raises(TypeError):
        store.find_device()
    with pytest.raises(TypeError):
        store.find_device(msisdn="+4470002", imei="350000000000002")


def test_find_device_reports_ambiguity(store, devices):
    store.update_device("dev-e", msisdn="+4470001")  # SIM moved, old row not cleaned up
    with pytest.raises(AmbiguousMatch):
        store.find_device(msisdn="+4470001")


def test_select_devices(store, devices):
    assert store.select_devices(parse_selector("Man=Acme and Mod=Phone1")) == ["dev-a", "dev-b"]
    # Version-aware: 1.10 > 1.9, 10.0 > 2.0; dev-e has no FwV and never matches.
    assert store.select_devices(parse_selector("FwV>1.9")) == ["dev-b", "dev-c", "dev-d"]
    assert store.select_devices(parse_selector("FwV<2.0")) == ["dev-a", "dev-b"]
    assert store.select_devices(parse_selector("FwV<=2")) == ["dev-a", "dev-b", "dev-c"]
    assert store.select_devices(parse_selector("FwV>=10 and FwV!=10.1")) == ["dev-d"]
    assert store.select_devices(parse_selector("Man like 'ACME'")) == ["dev-a", "dev-b", "dev-c", "dev-e"]
    assert store.select_devices(parse_selector("Lang!=en")) == ["dev-b", "dev-d"]
    assert store.select_devices(parse_selector("MSISDN like '+44700_3'")) == ["dev-c"]
    assert store.select_devices([("devid", "=", "dev-d")]) == ["dev-d"]
    with pytest.raises(SelectorError):
        store.select_devices([("Colour", "=", "red")])
    with pytest.raises(SelectorError):
        store.select_devices([])


def test_selector_values_are_parameters_not_sql(store, devices):
    assert store.select_devices([("Man", "=", "x' OR '1'='1")]) == []


def test_subscriber_round_trip_with_devices(store, devices):
    s = store.upsert_subscriber(Subscriber("sub1", msisdn="+4470001", name="Ann", plan="gold",
                                           attributes={"segment": "b2b"}), now=T0)
    assert (s.name, s.plan, s.attributes, s.created_at, s.devices) == ("Ann", "gold", {"segment": "b2b"}, T0, [])
    store.update_device("dev-a", subscriber_id="sub1")
    store.update_device("dev-c", subscriber_id="sub1")
    s = store.upsert_subscriber(Subscriber("sub1", name="Ann B"), now=at(1))
    assert s.name == "Ann B" and s.plan is None and s.created_at == T0 and s.updated_at == at(1)
    assert [d.device_id for d in store.get_subscriber("sub1").devices] == ["dev-a", "dev-c"]
    assert store.get_subscriber("nobody") is None


def test_static_group(store, devices):
    assert store.define_group("g1", "op", members=["dev-b", "dev-a", "dev-a"]) == 2
    assert store.group_members("g1") == ["dev-a", "dev-b"]
    # Redefinition replaces the members.
    assert store.define_group("g1", "op", members=["dev-c"]) == 1
    assert store.group_members("g1") == ["dev-c"]


def test_static_group_with_unknown_devices_changes_nothing(store, devices):
    store.define_group("g1", "op", members=["dev-a"])
    with pytest.raises(UnknownDevices) as e:
        store.define_group("g1", "other", members=["dev-b", "ghost1", "ghost2"])
    assert e.value.device_ids == ["ghost1", "ghost2"]
    assert store.group_members("g1") == ["dev-a"]


def test_selector_group_resolves_at_use_time(store, devices):
    assert store.define_group("old-fw", "op", selector=parse_selector("FwV<2")) == 2
    store.upsert_device(Device("dev-new", fwv="1.5"))
    assert store.group_members("old-fw") == ["dev-a", "dev-b", "dev-new"]


def test_group_argument_errors(store, devices):
    with pytest.raises(ValueError):
        store.define_group("g", "op", members=["dev-a"], selector=[("Man", "=", "x")])
    with pytest.raises(SelectorError):
        store.define_group("g", "op", selector=[("Nope", "=", "x")])
    with pytest.raises(NotFound):
        store.group_members("g")
