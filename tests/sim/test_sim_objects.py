import pytest
from lxml import etree

from dmwsi.sim.objects import (
    DIAGMON_ALERT_TYPE,
    MO_DEVDETAIL,
    MO_DEVINFO,
    MO_DIAGMON,
    MO_DMACC,
    MO_FUMO,
    MO_SCOMO,
    MO_SIMULATOR_EXT,
    SCOMO_ALERT_TYPE,
    DeviceProfile,
    FumoScript,
    ScomoScript,
    build_device_tree,
    find_dm_account,
    read_app_auth,
    store_nonce,
)
from dmwsi.sim.tree import TNDS_NAMESPACE, TreeConfig

SERVER = "dmwsi"
PROFILE = {
    "dev_id": "IMEI:350000000000001",
    "man": "Acme",
    "mod": "Phone1",
    "fwv": "1.0",
    "swv": "1.0",
    "hwv": "A",
    "lang": "en-US",
    "dmv": "1.2",
    "server_id": SERVER,
    "server_password": "server-secret",
    "client_user": "device-user",
    "client_password": "client-secret",
    "auth_scheme": "md5",
    "server_address": "https://dm.example.com:8443/dm",
    "components": [{"id": "Maps", "name": "Maps", "version": "2.1", "active": True}],
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def device(clock):
    return build_device_tree(PROFILE, clock=clock)


def value_of(device, uri: str, server_id: str = SERVER):
    status, result = device.tree.get(uri, server_id)
    assert status == 200, (uri, status)
    return result.items[0].value


# --------------------------------------------------------------------------- profile and discovery


def test_profile_maps_auth_scheme_and_rejects_unknown():
    assert DeviceProfile.from_dict(PROFILE).aauth_type == "DIGEST"
    assert DeviceProfile.from_dict({**PROFILE, "auth_scheme": "basic"}).aauth_type == "BASIC"
    with pytest.raises(ValueError):
        DeviceProfile.from_dict({**PROFILE, "auth_scheme": "kerberos"})


def test_supported_objects_are_found_by_type(device):
    assert device.supported_objects() == [
        (MO_DEVINFO, "./DevInfo"),
        (MO_DEVDETAIL, "./DevDetail"),
        (MO_DMACC, "./DMAcc/dmwsi"),
        (MO_FUMO, "./FUMO/pkg1"),
        (MO_SCOMO, "./SCOMO"),
        (MO_DIAGMON, "./DiagMon"),
        (MO_SIMULATOR_EXT, "./Ext"),
    ]


def test_whole_tree_serializes_as_tnds(device):
    status, result = device.tree.get(".?list=TNDS", SERVER)
    assert status == 200
    document = etree.fromstring(result.items[0].value.encode())
    names = document.xpath("//t:NodeName/text()", namespaces={"t": TNDS_NAMESPACE})
    assert {"DevInfo", "DevDetail", "DMAcc", "FUMO", "SCOMO", "DiagMon", "Ext"} <= set(names)
    assert "AAuthSecret" not in names and "Private" not in names


# --------------------------------------------------------------------------- DevInfo, DevDetail


def test_devinfo_is_readable_by_any_server_and_read_only(device):
    assert value_of(device, "./DevInfo/DevId", "another-server") == "IMEI:350000000000001"
    assert value_of(device, "./DevInfo") == "DevId/Man/Mod/DmV/Lang/Ext"
    assert value_of(device, "./DevInfo/Lang") == "en-US"
    assert device.tree.replace("./DevInfo/Man", "Evil", None, None, SERVER) == 425
    assert device.tree.delete("./DevInfo/Man", SERVER) == 425


def test_devdetail_reports_the_enforced_uri_limits(clock):
    device = build_device_tree(PROFILE, clock=clock, config=TreeConfig(max_depth=7))
    assert value_of(device, "./DevDetail/URI/MaxDepth") == "7"
    assert value_of(device, "./DevDetail/URI/MaxTotLen") == "0"
    assert value_of(device, "./DevDetail/FwV") == "1.0"
    assert value_of(device, "./DevDetail/LrgObj?prop=Format") == "bool"
    assert device.tree.get("./SCOMO/Inventory/Deployed/Maps/Operations/Activate/X", SERVER)[0] == 404
    assert device.tree.get("./SCOMO/Inventory/Deployed/Maps/Operations/Activate/X/Y", SERVER)[0] == 414


def test_permanent_objects_cannot_be_deleted(device):
    assert device.tree.delete("./FUMO/pkg1", SERVER) == 405
    assert device.tree.delete("./DevDetail/FwV", SERVER) == 405


# --------------------------------------------------------------------------- DMAcc


def test_dmacc_layout(device):
    account = find_dm_account(device.tree, SERVER)
    assert account == device.dm_account_uri == "./DMAcc/dmwsi"
    assert value_of(device, f"{account}/AppID") == "w7"
    assert value_of(device, f"{account}/ServerID") == SERVER
    assert value_of(device, f"{account}/AppAddr/1/Addr") == "https://dm.example.com:8443/dm"
    assert value_of(device, f"{account}/AppAddr/1/Port/1/PortNbr") == "8443"
    assert value_of(device, f"{account}/AAuthPref") == "DIGEST"
    assert value_of(device, f"{account}/AppAuth") == "CLCRED/SRVCRED"
    assert value_of(device, f"{account}/AppAuth/CLCRED/AAuthName") == "device-user"
    assert find_dm_account(device.tree, "unknown") is None


def test_dmacc_secrets_and_nonces_are_not_readable(device):
    account = device.dm_account_uri
    assert device.tree.get(f"{account}/AppAuth/CLCRED/AAuthSecret", SERVER)[0] == 405
    assert device.tree.get(f"{account}/AppAuth/SRVCRED/AAuthData", SERVER)[0] == 405
    assert device.tree.replace(f"{account}/AppAuth/CLCRED/AAuthSecret", "new-secret", None, None, SERVER) == 200
    assert read_app_auth(device.tree, account, "CLCRED").secret == "new-secret"


def test_app_auth_credentials_and_nonce_storage(device):
    account = device.dm_account_uri
    client = read_app_auth(device.tree, account, "CLCRED")
    assert (client.auth_type, client.name, client.secret, client.nonce) == (
        "DIGEST", "device-user", "client-secret", b"")
    store_nonce(device.tree, account, "SRVCRED", b"\x00raw-nonce")
    server = read_app_auth(device.tree, account, "SRVCRED")
    assert (server.name, server.secret, server.nonce) == (SERVER, "server-secret", b"\x00raw-nonce")
    assert read_app_auth(device.tree, account, "CLCRED").nonce == b""
    with pytest.raises(KeyError):
        read_app_auth(device.tree, account, "HTTP")


# --------------------------------------------------------------------------- Ext


def test_ext_values_are_updated_by_the_simulator(device, clock):
    assert value_of(device, "./Ext/Battery/Level") == "100"
    clock.now += 30
    device.tree.set_value("./Ext/Battery/Level", "42")
    assert value_of(device, "./Ext/Battery/Level") == "42"
    assert value_of(device, "./Ext/Battery/Level?prop=VerNo") == "1"
    assert value_of(device, "./Ext/Radio/Signal") == "-70"
    assert value_of(device, "./Ext/Memory/Free?prop=Format") == "int"


def test_ext_private_is_get_denied_to_the_dm_server(device):
    assert device.tree.get("./Ext/Private", SERVER)[0] == 425
    assert device.tree.get("./Ext/Private/Location", SERVER)[0] == 425
    assert device.tree.replace("./Ext/Private/Location", "52.5,13.4", None, None, SERVER) == 200
    assert device.tree.get("./Ext?list=Struct", SERVER)[0] == 200
    assert "./Ext/Private" not in [item.uri for item in device.tree.get("./Ext?list=Struct", SERVER)[1].items]


# --------------------------------------------------------------------------- FUMO

FUMO = "./FUMO/pkg1"


def test_fumo_download_and_update_state_sequence_and_alert(clock):
    device = build_device_tree(PROFILE, clock=clock, fumo_script=FumoScript(
        download_seconds=5, update_seconds=20, new_firmware_version="1.1"))
    tree = device.tree
    assert tree.replace(f"{FUMO}/DownloadAndUpdate/PkgURL", "http://dl.example.com/fw.bin", None, None,
                        SERVER) == 200
    assert tree.exec(f"{FUMO}/DownloadAndUpdate", None, "job-42", SERVER) == 202
    assert value_of(device, f"{FUMO}/State") == "30"
    assert device.poll() == []
    clock.now += 5
    assert device.poll() == []
    assert value_of(device, f"{FUMO}/State") == "60"
    clock.now += 19
    assert device.poll() == []
    clock.now += 1
    assert device.poll() == [{
        "type": "org.openmobilealliance.dm.firmwareupdate.downloadandupdate",
        "source": f"{FUMO}/DownloadAndUpdate",
        "target": None,
        "format": "int",
        "mark": "informational",
        "data": "200",
        "correlator": "job-42",
    }]
    assert device.fumo.history == [10, 30, 40, 50, 60, 100]
    assert value_of(device, f"{FUMO}/State") == "100"
    assert value_of(device, "./DevDetail/FwV") == "1.1"
    assert device.poll() == []


def test_fumo_exec_while_busy_is_not_allowed(device, clock):
    device.tree.replace(f"{FUMO}/Download/PkgURL", "http://dl.example.com/fw.bin", None, None, SERVER)
    assert device.tree.exec(f"{FUMO}/Download", None, None, SERVER) == 202
    assert device.tree.exec(f"{FUMO}/DownloadAndUpdate", None, None, SERVER) == 405
    assert device.tree.exec(f"{FUMO}/Update", None, None, SERVER) == 405


def test_fumo_download_then_update(clock):
    device = build_device_tree(PROFILE, clock=clock, fumo_script=FumoScript(alert_source="mo"))
    device.tree.replace(f"{FUMO}/Download/PkgURL", "http://dl.example.com/fw.bin", None, None, SERVER)
    assert device.tree.exec(f"{FUMO}/Update", None, None, SERVER) == 405  # nothing downloaded yet
    assert device.tree.exec(f"{FUMO}/Download", None, None, SERVER) == 202
    clock.now += 5
    (download_alert,) = device.poll()
    assert download_alert["type"] == "org.openmobilealliance.dm.firmwareupdate.download"
    assert download_alert["source"] == FUMO
    assert download_alert["correlator"] is None
    assert value_of(device, f"{FUMO}/State") == "40"
    assert device.tree.exec(f"{FUMO}/Update", None, "u-1", SERVER) == 202
    clock.now += 10
    (update_alert,) = device.poll()
    assert (update_alert["type"], update_alert["data"], update_alert["correlator"]) == (
        "org.openmobilealliance.dm.firmwareupdate.update", "200", "u-1")
    assert device.fumo.history == [10, 30, 40, 50, 60, 100]


def test_fumo_update_failure_reports_result_code(clock):
    device = build_device_tree(PROFILE, clock=clock, fumo_script=FumoScript(update_result=410))
    device.tree.replace(f"{FUMO}/DownloadAndUpdate/PkgURL", "http://dl.example.com/fw.bin", None, None, SERVER)
    device.tree.exec(f"{FUMO}/DownloadAndUpdate", None, None, SERVER)
    clock.now += 60
    (alert,) = device.poll()
    assert (alert["data"], alert["mark"]) == ("410", "critical")
    assert device.fumo.history == [10, 30, 40, 50, 60, 80]
    assert value_of(device, "./DevDetail/FwV") == "1.0"


def test_fumo_update_failure_keeping_package(clock):
    device = build_device_tree(PROFILE, clock=clock,
                               fumo_script=FumoScript(update_result=402, keep_package_after_update=True))
    assert device.tree.replace(f"{FUMO}/Update/PkgData", "cGtn", "b64", None, SERVER) == 200
    assert device.tree.exec(f"{FUMO}/Update", None, None, SERVER) == 202
    clock.now += 10
    assert device.poll()[0]["data"] == "402"
    assert device.fumo.history == [10, 50, 60, 70]
    assert device.tree.read_value(f"{FUMO}/Update/PkgData") == b"pkg"


def test_fumo_download_without_url_fails_with_411(device, clock):
    assert device.tree.exec(f"{FUMO}/Download", None, None, SERVER) == 202
    clock.now += 5
    (alert,) = device.poll()
    assert alert["data"] == "411"
    assert device.fumo.history == [10, 30, 20]


def test_fumo_download_failure_from_script(clock):
    device = build_device_tree(PROFILE, clock=clock, fumo_script=FumoScript(download_result=503))
    device.tree.replace(f"{FUMO}/DownloadAndUpdate/PkgURL", "http://dl.example.com/fw.bin", None, None, SERVER)
    device.tree.exec(f"{FUMO}/DownloadAndUpdate", None, None, SERVER)
    clock.now += 5
    (alert,) = device.poll()
    assert (alert["type"], alert["data"]) == ("org.openmobilealliance.dm.firmwareupdate.downloadandupdate", "503")
    assert device.fumo.history == [10, 30, 20]


# --------------------------------------------------------------------------- SCOMO


def add_download_package(device, name: str = "App1") -> str:
    base = f"./SCOMO/Download/{name}"
    tree = device.tree
    assert tree.add(base, None, "node", None, SERVER) == 200
    assert tree.add(f"{base}/PkgID", f"com.example.{name.lower()}", "chr", None, SERVER) == 200
    assert tree.add(f"{base}/Name", f"{name} Suite", "chr", None, SERVER) == 200
    assert tree.add(f"{base}/PkgURL", f"http://dl.example.com/{name}.apk", "chr", None, SERVER) == 200
    return base


def test_scomo_download_entry_gets_status_and_operations(device):
    base = add_download_package(device)
    assert value_of(device, f"{base}/Status") == "10"
    assert value_of(device, f"{base}/Operations") == "Download/DownloadInstall/DownloadInstallInactive"
    assert device.tree.add(f"{base}/Operations/Extra", None, "node", None, SERVER) == 405


def test_scomo_download_install_puts_component_in_inventory(clock):
    device = build_device_tree(PROFILE, clock=clock, scomo_script=ScomoScript(
        download_seconds=3, install_seconds=4, installed_version="3.2"))
    base = add_download_package(device)
    assert device.tree.exec(f"{base}/Operations/DownloadInstall", None, "sw-7", SERVER) == 202
    assert value_of(device, f"{base}/Status") == "30"
    clock.now += 3
    assert device.poll() == []
    assert value_of(device, f"{base}/Status") == "50"
    clock.now += 4
    assert device.poll() == [{
        "type": SCOMO_ALERT_TYPE,
        "source": f"{base}/Operations/DownloadInstall",
        "target": "./SCOMO/Inventory/Deployed/App1",
        "format": "xml",
        "mark": "informational",
        "data": "<ResultCode>1200</ResultCode><Identifier>App1</Identifier>",
        "correlator": "sw-7",
    }]
    deployed = "./SCOMO/Inventory/Deployed/App1"
    assert value_of(device, "./SCOMO/Inventory/Deployed") == "Maps/App1"
    assert value_of(device, f"{deployed}/ID") == "App1"
    assert value_of(device, f"{deployed}/PkgIDRef") == "com.example.app1"
    assert value_of(device, f"{deployed}/Name") == "App1 Suite"
    assert value_of(device, f"{deployed}/Version") == "3.2"
    assert value_of(device, f"{deployed}/State") == "20"
    assert value_of(device, f"{deployed}/Status") == "10"
    assert value_of(device, f"{deployed}/Operations") == "Activate/Deactivate/Remove"
    assert value_of(device, f"{base}/Status") == "10"


def test_scomo_download_install_inactive(device, clock):
    base = add_download_package(device)
    device.tree.exec(f"{base}/Operations/DownloadInstallInactive", None, None, SERVER)
    clock.now += 60
    assert len(device.poll()) == 1
    assert value_of(device, "./SCOMO/Inventory/Deployed/App1/State") == "10"


def test_scomo_download_then_install_from_delivered(device, clock):
    base = add_download_package(device)
    assert device.tree.exec(f"{base}/Operations/Download", None, None, SERVER) == 202
    clock.now += 5
    (download_alert,) = device.poll()
    delivered = "./SCOMO/Inventory/Delivered/App1"
    assert download_alert["target"] == delivered
    assert value_of(device, f"{base}/Status") == "40"
    assert value_of(device, f"{delivered}/State") == "10"
    assert value_of(device, f"{delivered}/PkgID") == "com.example.app1"
    assert device.tree.exec(f"{delivered}/Operations/Install", None, None, SERVER) == 202
    assert value_of(device, f"{delivered}/Status") == "40"
    clock.now += 5
    (install_alert,) = device.poll()
    assert install_alert["source"] == f"{delivered}/Operations/Install"
    assert install_alert["target"] == "./SCOMO/Inventory/Deployed/App1"
    assert value_of(device, f"{delivered}/State") == "20"
    assert value_of(device, "./SCOMO/Inventory/Deployed/App1/State") == "20"


def test_scomo_pushed_delivered_package(device, clock):
    delivered = "./SCOMO/Inventory/Delivered/Pushed"
    assert device.tree.add(delivered, None, "node", None, SERVER) == 200
    assert device.tree.replace(f"{delivered}/Data", "UEsDBA==", "b64", None, SERVER) == 200
    assert device.tree.exec(f"{delivered}/Operations/InstallInactive", None, None, SERVER) == 202
    clock.now += 5
    (alert,) = device.poll()
    assert alert["data"] == "<ResultCode>1200</ResultCode><Identifier>Pushed</Identifier>"
    assert value_of(device, "./SCOMO/Inventory/Deployed/Pushed/State") == "10"


def test_scomo_activate_deactivate_remove(device, clock):
    component = "./SCOMO/Inventory/Deployed/Maps"
    assert value_of(device, f"{component}/Version") == "2.1"
    assert device.tree.exec(f"{component}/Operations/Deactivate", None, None, SERVER) == 202
    assert value_of(device, f"{component}/Status") == "70"
    assert device.tree.exec(f"{component}/Operations/Remove", None, None, SERVER) == 405  # busy
    clock.now += 1
    assert device.poll()[0]["target"] == component
    assert value_of(device, f"{component}/State") == "10"
    device.tree.exec(f"{component}/Operations/Activate", None, None, SERVER)
    clock.now += 1
    device.poll()
    assert value_of(device, f"{component}/State") == "20"
    assert device.tree.exec(f"{component}/Operations/Remove", None, "rm", SERVER) == 202
    assert value_of(device, f"{component}/Status") == "30"
    clock.now += 1
    (alert,) = device.poll()
    assert (alert["target"], alert["correlator"]) == (component, "rm")
    assert not device.tree.exists(component)


def test_scomo_scripted_failures(clock):
    device = build_device_tree(PROFILE, clock=clock, scomo_script=ScomoScript(
        results={"DownloadInstall": 1405, "Download": 1402, "Activate": 1409}))
    install_base = add_download_package(device, "App1")
    download_base = add_download_package(device, "App2")
    device.tree.exec(f"{install_base}/Operations/DownloadInstall", None, None, SERVER)
    device.tree.exec(f"{download_base}/Operations/Download", None, None, SERVER)
    device.tree.exec("./SCOMO/Inventory/Deployed/Maps/Operations/Activate", None, None, SERVER)
    clock.now += 60
    alerts = device.poll()
    results = sorted((alert["source"].split("/")[3], alert["data"], alert["mark"]) for alert in alerts)
    assert results == [
        ("App1", "<ResultCode>1405</ResultCode><Identifier>App1</Identifier>", "critical"),
        ("App2", "<ResultCode>1402</ResultCode><Identifier>App2</Identifier>", "critical"),
        ("Deployed", "<ResultCode>1409</ResultCode><Identifier>Maps</Identifier>", "critical"),
    ]
    assert value_of(device, f"{install_base}/Status") == "70"
    assert value_of(device, f"{download_base}/Status") == "20"
    assert value_of(device, "./SCOMO/Inventory/Deployed/Maps/Status") == "40"
    assert not device.tree.exists("./SCOMO/Inventory/Deployed/App1")
    assert not device.tree.exists("./SCOMO/Inventory/Delivered/App2")


def test_scomo_download_entry_is_deletable_by_the_server(device):
    base = add_download_package(device)
    assert device.tree.delete(base, SERVER) == 200
    assert device.tree.delete("./SCOMO/Inventory/Deployed/Maps", SERVER) == 405


# --------------------------------------------------------------------------- DiagMon


def test_diagmon_collect_reports_current_values(device, clock):
    device.tree.set_value("./Ext/Radio/Signal", "-95")
    assert device.tree.exec("./DiagMon/RadioStats/Operations/Collect", None, "d-1", SERVER) == 202
    (alert,) = device.poll()
    assert (alert["type"], alert["format"], alert["correlator"]) == (DIAGMON_ALERT_TYPE, "xml", "d-1")
    assert alert["data"] == '<ResultCode>200</ResultCode><Values><Value uri="./Ext/Radio/Signal">-95</Value></Values>'
    assert value_of(device, "./DiagMon/RadioStats/Data") == '<Values><Value uri="./Ext/Radio/Signal">-95</Value></Values>'


def test_diagmon_start_collects_after_duration_and_stop_cancels(device, clock):
    function = "./DiagMon/BatteryLog"
    assert device.tree.replace(f"{function}/Config/Duration", "30", None, None, SERVER) == 200
    assert device.tree.exec(f"{function}/Operations/Start", None, None, SERVER) == 202
    assert device.tree.exec(f"{function}/Operations/Start", None, None, SERVER) == 405
    assert value_of(device, f"{function}/Status") == "20"
    clock.now += 29
    assert device.poll() == []
    clock.now += 1
    (alert,) = device.poll()
    assert alert["source"] == f"{function}/Operations/Start"
    assert value_of(device, f"{function}/Status") == "10"
    device.tree.exec(f"{function}/Operations/Start", None, None, SERVER)
    assert device.tree.exec(f"{function}/Operations/Stop", None, None, SERVER) == 200
    clock.now += 100
    assert device.poll() == []
    assert value_of(device, f"{function}/Status") == "10"


def test_diagmon_trap_enable_disable(device):
    trap = "./DiagMon/Trap/LowBattery"
    assert device.tree.exec(f"{trap}/Operations/Enable", None, None, SERVER) == 200
    assert value_of(device, f"{trap}/Enabled") == "true"
    assert device.tree.exec(f"{trap}/Operations/Disable", None, None, SERVER) == 200
    assert value_of(device, f"{trap}/Enabled") == "false"
