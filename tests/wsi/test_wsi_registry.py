"""RegisterDevice, RegisterSubscriber, GetSubscriberInfo, DefineDeviceGroup
on a real server and store (ES9, ES12, OM1)."""
import pytest
from zeep.exceptions import Fault

from dmwsi.store import NotFound

from tests.conftest import fault_code as code


@pytest.fixture
def server(dmwsi_server):
    return dmwsi_server


def register(client, device_id, **fields):
    return client.service.RegisterDevice(
        device={"deviceId": device_id, **fields}, clientPassword="cpw", serverPassword="spw")


def test_register_device_is_stored(client, server):
    answer = register(client, "IMEI:1", man="Acme", mod="P1", fwV="1.0", msisdn="+15550001")
    assert answer.deviceId == "IMEI:1"
    device = server.store.get_device("IMEI:1")
    assert (device.man, device.mod, device.fwv, device.msisdn) == ("Acme", "P1", "1.0", "+15550001")
    assert (device.client_password, device.server_password, device.auth_scheme) == ("cpw", "spw", "md5")


def test_reregistration_keeps_what_is_not_given(client, server):
    register(client, "IMEI:1", man="Acme", mod="P1", fwV="1.0")
    server.store.update_device("IMEI:1", client_nonce=b"n1")
    client.service.RegisterDevice(device={"deviceId": "IMEI:1", "fwV": "2.0"})
    device = server.store.get_device("IMEI:1")
    assert (device.man, device.fwv, device.client_nonce, device.client_password) == ("Acme", "2.0", b"n1", "cpw")


def test_new_device_without_credentials_is_refused(client, server):
    with pytest.raises(Fault) as info:
        client.service.RegisterDevice(device={"deviceId": "IMEI:9"})
    assert code(info.value) == "InvalidArgument"
    assert server.store.get_device("IMEI:9") is None


def test_subscriber_with_devices(client, server):
    register(client, "IMEI:1", msisdn="+1555")
    register(client, "IMEI:2")
    client.service.RegisterSubscriber(subscriber={
        "subscriberId": "S1", "msisdn": "+1555", "name": "Ann", "servicePlan": "gold",
        "deviceIds": ["IMEI:1", "IMEI:2"]})
    info = client.service.GetSubscriberInfo(subscriber={"subscriberId": "S1"})
    assert (info.subscriber.name, info.subscriber.servicePlan) == ("Ann", "gold")
    assert sorted(info.subscriber.deviceIds) == ["IMEI:1", "IMEI:2"]
    assert sorted(d.deviceId for d in info.devices) == ["IMEI:1", "IMEI:2"]
    by_msisdn = client.service.GetSubscriberInfo(subscriber={"msisdn": "+1555"})
    assert by_msisdn.subscriber.subscriberId == "S1"


def test_subscriber_with_unknown_device_writes_nothing(client, server):
    register(client, "IMEI:1")
    with pytest.raises(Fault) as info:
        client.service.RegisterSubscriber(subscriber={"subscriberId": "S2", "deviceIds": ["IMEI:1", "IMEI:404"]})
    assert code(info.value) == "UnknownDevice"
    assert server.store.get_subscriber("S2") is None
    assert server.store.get_device("IMEI:1").subscriber_id is None


def test_unknown_subscriber(client):
    with pytest.raises(Fault) as info:
        client.service.GetSubscriberInfo(subscriber={"subscriberId": "nobody"})
    assert code(info.value) == "UnknownSubscriber"


def test_static_and_selector_groups(client, server):
    register(client, "IMEI:1", man="Acme", mod="P1", fwV="1.9")
    register(client, "IMEI:2", man="Acme", mod="P1", fwV="1.10")
    register(client, "IMEI:3", man="Acme", mod="P2", fwV="1.0")
    static = client.service.DefineDeviceGroup(name="pilot", members=["IMEI:1", "IMEI:3"])
    assert static.memberCount == 2
    assert server.store.group_members("pilot") == ["IMEI:1", "IMEI:3"]
    dynamic = client.service.DefineDeviceGroup(name="old-p1", selector={"clauses": [
        {"field": "Man", "operator": "eq", "value": "Acme"},
        {"field": "Mod", "operator": "eq", "value": "P1"},
        {"field": "FwV", "operator": "lt", "value": "1.10"}]})
    assert dynamic.memberCount == 1              # version order: 1.9 < 1.10
    assert server.store.group_members("old-p1") == ["IMEI:1"]


def test_group_errors_change_nothing(client, server):
    register(client, "IMEI:1")
    with pytest.raises(Fault) as info:
        client.service.DefineDeviceGroup(name="g", members=["IMEI:1", "IMEI:404"])
    assert code(info.value) == "UnknownDevice"
    with pytest.raises(Fault) as info:
        client.service.DefineDeviceGroup(name="g", selector={"clauses": [
            {"field": "Colour", "operator": "eq", "value": "red"}]})
    assert code(info.value) == "InvalidArgument"
    with pytest.raises(Fault) as info:
        client.service.DefineDeviceGroup(name="g")
    assert code(info.value) == "InvalidArgument"
    with pytest.raises(NotFound):
        server.store.group_members("g")
