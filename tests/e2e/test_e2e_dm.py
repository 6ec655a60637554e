"""Issue 3 acceptance: jobs in the store reach simulated devices through
package 0 and real DM sessions; every per-device result lands in the store."""
import dataclasses

import pytest

from dmwsi.dm import codes
from tests.e2e.conftest import device_class


def items_by_uri(result):
    return {i.uri: i for i in result.items if i.format is not None}


def statuses(result):
    return {i.command_seq: i.status_code for i in result.items if i.format is None}


@pytest.mark.parametrize("scheme,encoding", [("md5", "xml"), ("md5", "wbxml"), ("hmac", "xml"),
                                             ("hmac", "wbxml"), ("basic", "xml")])
def test_get_reaches_devices_by_package0(make_fleet, scheme, encoding):
    h = make_fleet(3, [device_class(auth_scheme=scheme, encoding=encoding)])
    h.register()
    job = h.submit([{"action": "Get", "uri": "./DevInfo/Mod"}, {"action": "Get", "uri": "./DevDetail/FwV"}])
    counts = h.wait_job(job.job_id)
    assert counts["succeeded"] == 3
    for device_id, result in h.results(job.job_id).items():
        values = items_by_uri(result)
        assert values["./DevInfo/Mod"].value == "P1"
        assert values["./DevDetail/FwV"].value == "1.0"
        assert statuses(result) == {1: 200, 2: 200}
        assert h.fleet.devices[device_id].stats.notifications_rejected == 0


def test_every_command_kind(make_fleet):
    h = make_fleet(1)
    h.register()
    device = h.fleet.devices[h.ids[0]]
    job = h.submit([
        {"action": "Add", "uri": "./Ext/Test", "format": "node"},
        {"action": "Add", "uri": "./Ext/Test/Leaf", "value": "v1"},
        {"action": "Replace", "uri": "./Ext/Test/Leaf", "value": "v2"},
        {"action": "Copy", "uri": "./Ext/Test/Copy", "source_uri": "./Ext/Test/Leaf"},
        {"action": "Get", "uri": "./Ext/Test/Copy"},
        {"action": "Delete", "uri": "./Ext/Test/Leaf"},
        {"action": "Get", "uri": "./Ext/Test/Leaf"},
    ])
    h.wait_job(job.job_id)
    result = h.results(job.job_id)[h.ids[0]]
    assert statuses(result) == {1: 200, 2: 200, 3: 200, 4: 200, 5: 200, 6: 200, 7: 404}
    assert items_by_uri(result)["./Ext/Test/Copy"].value == "v2"
    assert result.state == "failed" and result.status_code == 404      # one command failed
    assert device.tree.exists("./Ext/Test/Copy") and not device.tree.exists("./Ext/Test/Leaf")


def test_permission_denied_is_the_device_status(make_fleet):
    h = make_fleet(1)
    h.register()
    job = h.submit([{"action": "Get", "uri": "./Ext/Private"}])
    h.wait_job(job.job_id)
    result = h.results(job.job_id)[h.ids[0]]
    assert statuses(result) == {1: codes.StatusCode.PERMISSION_DENIED}
    assert result.state == "failed"


def test_atomic_rolls_back(make_fleet):
    h = make_fleet(1)
    h.register()
    device = h.fleet.devices[h.ids[0]]
    job = h.submit([{"action": "Add", "uri": "./Ext/Atomic", "value": "a"},
                    {"action": "Delete", "uri": "./DevInfo"}], atomic=True)
    h.wait_job(job.job_id)
    result = h.results(job.job_id)[h.ids[0]]
    assert result.state == "failed"
    seq = statuses(result)
    assert seq[1] == codes.StatusCode.ATOMIC_ROLLBACK_OK and seq[2] >= 400
    assert not device.tree.exists("./Ext/Atomic")


def test_fumo_exec_result_arrives_by_generic_alert(make_fleet):
    h = make_fleet(1, [device_class(fumo={"download_seconds": 0.0, "update_seconds": 0.0,
                                          "new_firmware_version": "2.0"})])
    h.register()
    job = h.submit([{"action": "Replace", "uri": "./FUMO/pkg1/DownloadAndUpdate/PkgURL",
                     "value": "http://127.0.0.1/fw.bin"},
                    {"action": "Exec", "uri": "./FUMO/pkg1/DownloadAndUpdate"}])
    counts = h.wait_job(job.job_id)
    assert counts["succeeded"] == 1
    result = h.results(job.job_id)[h.ids[0]]
    assert statuses(result)[2] == 202
    alert = [i for i in result.items if i.type and "firmwareupdate" in i.type]
    assert alert and alert[0].value == "200" and alert[0].command_seq == 2
    assert h.fleet.devices[h.ids[0]].tree.read_value("./DevDetail/FwV") == "2.0"


def test_work_for_an_offline_device_runs_when_it_connects(make_fleet):
    h = make_fleet(1)
    h.register()
    device_id = h.ids[0]
    h.store.update_device(device_id, notification_url="http://127.0.0.1:9/unreachable")
    job = h.submit([{"action": "Get", "uri": "./DevInfo/Man"}])
    import time
    time.sleep(0.5)
    assert h.store.job_counts(job.job_id)["pending"] == 1            # package 0 went nowhere
    outcome = h.client_sessions([device_id])                         # the device calls in (1201)
    assert outcome == {"ok": 1}
    h.wait_job(job.job_id)
    assert items_by_uri(h.results(job.job_id)[device_id])["./DevInfo/Man"].value == "Acme"


def test_large_objects_both_ways(make_fleet):
    h = make_fleet(1, [device_class(max_msg_size=4096)])
    h.register()
    big = "x" * 20000
    job = h.submit([{"action": "Add", "uri": "./Ext/Blob", "value": big},
                    {"action": "Get", "uri": "./Ext/Blob"}])
    h.wait_job(job.job_id)
    result = h.results(job.job_id)[h.ids[0]]
    assert statuses(result) == {1: 200, 2: 200}
    assert items_by_uri(result)["./Ext/Blob"].value == big
    assert h.fleet.devices[h.ids[0]].stats.messages_sent > 6          # it took several messages


def test_many_commands_span_messages(make_fleet):
    h = make_fleet(1, [device_class(max_msg_size=2048)])
    h.register()
    job = h.submit([{"action": "Get", "uri": f"./DevInfo/{leaf}"} for leaf in ["DevId", "Man", "Mod", "DmV", "Lang"] * 12])
    h.wait_job(job.job_id)
    result = h.results(job.job_id)[h.ids[0]]
    assert len(statuses(result)) == 60 and set(statuses(result).values()) == {200}


def test_unknown_device_is_refused_and_wrong_password_fails_auth(make_fleet):
    h = make_fleet(2, [device_class(wrong_credentials=False)])
    h.register(h.ids[:1])                                           # the second is not registered
    outcome = h.client_sessions()
    assert outcome == {"ok": 1, "failed": 1}
    h.store.update_device(h.ids[0], client_password="not-the-device-password")
    assert h.client_sessions(h.ids[:1]) == {"failed": 1}


def test_dropped_session_is_retried_then_completes(make_fleet):
    h = make_fleet(1, dm={"session_timeout": 1, "wakeup_interval": 0.2})
    h.register()
    device = h.fleet.devices[h.ids[0]]
    quiet = dataclasses.replace(device.behaviour, drop_rate=1.0)
    normal, device.behaviour = device.behaviour, quiet                # goes silent mid-session
    job = h.submit([{"action": "Get", "uri": "./DevInfo/Man"}])
    import time
    deadline = time.monotonic() + 20
    while h.store.get_target(job.job_id, h.ids[0]).attempts < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    device.behaviour = normal
    # The server times the silent session out, hands the work back and wakes
    # the device again; the second attempt completes.
    counts = h.wait_job(job.job_id, timeout=30)
    assert counts["succeeded"] == 1
    assert h.store.get_target(job.job_id, h.ids[0]).attempts == 2


def test_generic_alert_in_a_later_session_completes_the_job(make_fleet):
    h = make_fleet(1, [device_class(fumo={"download_seconds": 0.3, "update_seconds": 0.3})])
    h.register()
    device_id = h.ids[0]
    job = h.submit([{"action": "Replace", "uri": "./FUMO/pkg1/DownloadAndUpdate/PkgURL",
                     "value": "http://127.0.0.1/fw.bin"},
                    {"action": "Exec", "uri": "./FUMO/pkg1/DownloadAndUpdate"}])
    import time
    deadline = time.monotonic() + 20
    while h.store.get_target(job.job_id, device_id).status_code != 202 and time.monotonic() < deadline:
        time.sleep(0.05)
    target = h.store.get_target(job.job_id, device_id)
    assert (target.state, target.message) == ("inSession", "awaiting Generic Alert")
    time.sleep(1.0)                                      # the update finishes on the device
    assert h.client_sessions([device_id]) == {"ok": 1}   # its next session carries the alert
    counts = h.wait_job(job.job_id)
    assert counts["succeeded"] == 1
    assert h.store.get_target(job.job_id, device_id).status_code == 200


def test_pending_work_times_out_when_the_device_never_comes(make_fleet):
    from datetime import datetime, timedelta, timezone
    h = make_fleet(1, dm={"wakeup_interval": 0.1})
    h.register()
    h.store.update_device(h.ids[0], notification_url="http://127.0.0.1:9/unreachable")
    job = h.submit([{"action": "Get", "uri": "./DevInfo/Man"}],
                   not_after=datetime.now(timezone.utc) + timedelta(seconds=0.5))
    counts = h.wait_job(job.job_id, timeout=10)
    assert counts["timedOut"] == 1 and h.store.get_job(job.job_id).state == "expired"


def test_auto_registration_from_devinfo_when_policy_allows(make_fleet):
    h = make_fleet(1, dm={"auto_register": True, "bootstrap_client_password": "boot",
                          "bootstrap_server_password": "bootsrv"})
    device = h.fleet.devices[h.ids[0]]
    # The device holds the fleet-wide bootstrap secrets (factory provisioning).
    from dmwsi.sim.objects import find_dm_account
    account = find_dm_account(device.tree, "dmwsi")
    device.tree.set_value(f"{account}/AppAuth/CLCRED/AAuthSecret", "boot")
    assert h.client_sessions() == {"ok": 1}
    stored = h.store.get_device(h.ids[0])
    assert (stored.man, stored.mod, stored.client_password) == ("Acme", "P1", "boot")


def test_sequence_and_property_get(make_fleet):
    h = make_fleet(1)
    h.register()
    job = h.submit([{"action": "Get", "uri": "./DevInfo/Man?prop=Format"},
                    {"action": "Add", "uri": "./Ext/Seq", "value": "1"},
                    {"action": "Get", "uri": "./Ext/Seq"}],
                   params={"sequence": True})
    h.wait_job(job.job_id)
    result = h.results(job.job_id)[h.ids[0]]
    assert statuses(result) == {1: 200, 2: 200, 3: 200}
    assert items_by_uri(result)["./DevInfo/Man?prop=Format"].value == "chr"
    assert items_by_uri(result)["./Ext/Seq"].value == "1"


def test_object_larger_than_our_max_obj_size_is_refused(make_fleet):
    h = make_fleet(1, [device_class(max_msg_size=4096)], dm={"max_obj_size": 10000, "max_msg_size": 4096})
    h.register()
    device = h.fleet.devices[h.ids[0]]
    device.tree.create_leaf("./Ext/Huge", "y" * 30000)
    job = h.submit([{"action": "Get", "uri": "./Ext/Huge"}, {"action": "Get", "uri": "./DevInfo/Man"}])
    h.wait_job(job.job_id)
    result = h.results(job.job_id)[h.ids[0]]
    assert statuses(result)[1] == 416 and statuses(result)[2] == 200
    assert "./Ext/Huge" not in items_by_uri(result)
