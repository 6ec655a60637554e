"""DMWSI operations through real SOAP (zeep) against simulated devices and
real DM sessions: returned values equal the simulated device's tree."""
import time
from datetime import datetime, timedelta, timezone

import pytest
from zeep.exceptions import Fault

from dmwsi.client import soap_client
from tests.conftest import fault_code as code
from tests.e2e.conftest import device_class


@pytest.fixture
def env(make_fleet):
    h = make_fleet(3, dm={"wakeup_interval": 0.2})
    h.register()
    return h, soap_client(h.server.soap_url)


def values(result):
    return {i.uri: i.value for i in result.items}


def test_get_device_data_synchronous_equals_the_tree(env):
    h, soap = env
    device = h.fleet.devices[h.ids[0]]
    answer = soap.service.GetDeviceData(device={"deviceId": h.ids[0]}, uris=["./DevInfo/Man", "./DevDetail/FwV"],
                                        synchronous=True, timeoutSeconds=20)
    assert answer.state == "completed"
    (result,) = answer.results
    assert values(result) == {"./DevInfo/Man": device.tree.read_value("./DevInfo/Man"),
                              "./DevDetail/FwV": device.tree.read_value("./DevDetail/FwV")}
    assert [(s.index, s.action, s.statusCode) for s in result.commandStatuses] == [(1, "Get", 200), (2, "Get", 200)]


def test_asynchronous_call_returns_a_job_then_results(env):
    h, soap = env
    answer = soap.service.GetDeviceData(device={"deviceId": h.ids[1]}, uris=["./DevInfo/Mod"])
    assert answer.state == "pending" and not answer.results
    h.wait_job(answer.jobId)
    results = soap.service.GetJobResults(jobId=answer.jobId)
    assert values(results.results[0]) == {"./DevInfo/Mod": "P1"}


def test_same_job_id_is_an_idempotent_retry(env):
    h, soap = env
    first = soap.service.GetDeviceData(device={"deviceId": h.ids[0]}, uris=["./DevInfo/Mod"], jobId="mine-1")
    again = soap.service.GetDeviceData(device={"deviceId": h.ids[0]}, uris=["./DevInfo/Mod"], jobId="mine-1")
    assert first.jobId == again.jobId
    with pytest.raises(Fault) as info:
        soap.service.SetDeviceData(device={"deviceId": h.ids[0]}, items=[{"uri": "./Ext/X", "value": "1"}],
                                   jobId="mine-1")
    assert code(info.value) == "DuplicateJob"


def test_set_device_data_changes_the_tree(env):
    h, soap = env
    device = h.fleet.devices[h.ids[0]]
    answer = soap.service.SetDeviceData(device={"deviceId": h.ids[0]},
                                        items=[{"uri": "./DMAcc/dmwsi/Name", "value": "Operator DM"}],
                                        synchronous=True, timeoutSeconds=20)
    assert answer.results[0].state == "succeeded"
    assert device.tree.read_value("./DMAcc/dmwsi/Name") == "Operator DM"
    refused = soap.service.SetDeviceData(device={"deviceId": h.ids[0]},
                                         items=[{"uri": "./DevInfo/Man", "value": "Evil"}],
                                         synchronous=True, timeoutSeconds=20)
    assert refused.results[0].state == "failed" and refused.results[0].commandStatuses[0].statusCode >= 400
    assert device.tree.read_value("./DevInfo/Man") == "Acme"


def test_execute_commands_atomic_failure_is_reported_with_device_codes(env):
    h, soap = env
    answer = soap.service.ExecuteCommands(
        device={"deviceId": h.ids[0]}, atomic=True, synchronous=True, timeoutSeconds=20,
        commands=[{"action": "Add", "uri": "./Ext/New", "value": "v"}, {"action": "Delete", "uri": "./DevInfo"}])
    result = answer.results[0]
    assert result.state == "failed"
    assert [s.statusCode for s in result.commandStatuses][0] == 216
    assert not h.fleet.devices[h.ids[0]].tree.exists("./Ext/New")


def test_device_profile_default_and_named(env):
    h, soap = env
    device = h.fleet.devices[h.ids[0]]
    answer = soap.service.GetDeviceProfile(device={"deviceId": h.ids[0]}, synchronous=True, timeoutSeconds=20)
    got = values(answer.results[0])
    assert got["./DevInfo/Man"] == "Acme" and got["./DevDetail/FwV"] == "1.0"
    assert got["./Ext/Battery/Level"] == str(device.tree.read_value("./Ext/Battery/Level"))
    assert "./FUMO" in got                           # the Acme-specific default profile adds FUMO
    radio = soap.service.GetDeviceProfile(device={"deviceId": h.ids[0]}, profile="radio",
                                          synchronous=True, timeoutSeconds=20)
    assert set(values(radio.results[0])) == {"./Ext/Radio/Signal", "./DevDetail/FwV"}
    with pytest.raises(Fault) as info:
        soap.service.GetDeviceProfile(device={"deviceId": h.ids[0]}, profile="nope")
    assert code(info.value) == "InvalidArgument"


def test_device_tree_with_depth(env):
    h, soap = env
    answer = soap.service.GetDeviceTree(device={"deviceId": h.ids[0]}, rootUri="./DevDetail", depth=1,
                                        synchronous=True, timeoutSeconds=20)
    uris = set(values(answer.results[0]))
    assert "./DevDetail/FwV" in uris and "./DevDetail/URI" in uris
    assert "./DevDetail/URI/MaxDepth" not in uris     # depth 2: filtered out
    full = soap.service.GetDeviceTree(device={"deviceId": h.ids[0]}, rootUri="./DevDetail",
                                      synchronous=True, timeoutSeconds=20)
    assert "./DevDetail/URI/MaxDepth" in set(values(full.results[0]))


def test_inventory_lists_deployed_components(make_fleet):
    h = make_fleet(1, [device_class(components=[{"id": "App1", "name": "Mail", "version": "2.1"}])])
    h.register()
    soap = soap_client(h.server.soap_url)
    answer = soap.service.GetInventory(device={"deviceId": h.ids[0]}, synchronous=True, timeoutSeconds=20)
    inv = answer.results[0].inventory
    assert inv.firmwareVersion == "1.0"
    assert [(c.componentId, c.name, c.version) for c in inv.components] == [("App1", "Mail", "2.1")]


def test_notify_device_sends_package0_and_the_device_calls_in(env):
    h, soap = env
    device = h.fleet.devices[h.ids[2]]
    before = device.stats.notifications_accepted
    answer = soap.service.NotifyDevice(device={"deviceId": h.ids[2]}, synchronous=True, timeoutSeconds=20)
    assert answer.state == "completed" and answer.results[0].state == "succeeded"
    assert device.stats.notifications_accepted > before


def test_unknown_device_reference_is_a_client_fault(env):
    _, soap = env
    with pytest.raises(Fault) as info:
        soap.service.GetDeviceData(device={"msisdn": "+0000"}, uris=["./DevInfo/Man"])
    assert code(info.value) == "UnknownDevice"


def test_bulk_by_ids_group_and_selector_with_refusals(env):
    h, soap = env
    soap.service.DefineDeviceGroup(name="first-two", members=h.ids[:2])
    answer = soap.service.SubmitBulkOperation(
        deviceIds=[h.ids[2], "IMEI:not-registered"], group="first-two",
        commands=[{"action": "Get", "uri": "./DevInfo/Mod"}])
    assert (answer.accepted, answer.refused) == (3, 1)
    h.wait_job(answer.jobId)
    results = {r.deviceId: r for r in soap.service.GetJobResults(jobId=answer.jobId).results}
    assert results["IMEI:not-registered"].state == "refused"
    assert results["IMEI:not-registered"].message == "unknown device"
    assert all(values(results[d]) == {"./DevInfo/Mod": "P1"} for d in h.ids)
    by_selector = soap.service.SubmitBulkOperation(
        selector={"clauses": [{"field": "Man", "operator": "eq", "value": "Acme"}]},
        commands=[{"action": "Get", "uri": "./DevInfo/Man"}])
    assert by_selector.accepted == 3


def test_bulk_per_device_parameters(env):
    h, soap = env
    answer = soap.service.SubmitBulkOperation(deviceCommands=[
        {"device": {"deviceId": d}, "commands": [{"action": "Replace", "uri": "./DMAcc/dmwsi/Name",
                                                  "value": f"server for device {n}"}]}
        for n, d in enumerate(h.ids)])
    h.wait_job(answer.jobId)
    assert [h.fleet.devices[d].tree.read_value("./DMAcc/dmwsi/Name") for d in h.ids] == [
        "server for device 0", "server for device 1", "server for device 2"]


def test_scheduled_job_waits_for_its_window(env):
    h, soap = env
    start = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    answer = soap.service.SubmitBulkOperation(deviceIds=h.ids, schedule={"notBefore": start},
                                              commands=[{"action": "Get", "uri": "./DevInfo/Mod"}])
    assert answer.state == "scheduled"
    time.sleep(0.8)
    assert soap.service.GetJobStatus(jobId=answer.jobId).counts.pending == 3
    h.wait_job(answer.jobId, timeout=20)
    started = [h.store.get_target(answer.jobId, d).started_at for d in h.ids]
    assert min(started) >= start


def test_concurrency_limit_is_never_exceeded(make_fleet):
    h = make_fleet(12, [device_class(latency=0.05)], dm={"wakeup_interval": 0.1})
    h.register()
    soap = soap_client(h.server.soap_url)
    answer = soap.service.SubmitBulkOperation(deviceIds=h.ids, concurrency=3,
                                              commands=[{"action": "Get", "uri": "./DevInfo/Mod"}])
    peak, deadline = 0, time.monotonic() + 60
    while h.store.get_job(answer.jobId).state != "completed" and time.monotonic() < deadline:
        peak = max(peak, h.store.job_counts(answer.jobId)["inSession"])
        time.sleep(0.005)
    assert h.store.job_counts(answer.jobId)["succeeded"] == 12
    assert 1 <= peak <= 3
    # Measured from the stored session times as well: never more than 3 overlap.
    spans = [(t.started_at, t.finished_at) for t in (h.store.get_target(answer.jobId, d) for d in h.ids)]
    overlap = max(sum(1 for s, f in spans if s <= moment < f) for moment, _ in spans)
    assert overlap <= 3


def test_cancel_reports_what_already_ran(env):
    h, soap = env
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    answer = soap.service.SubmitBulkOperation(deviceIds=h.ids, schedule={"notBefore": later},
                                              commands=[{"action": "Get", "uri": "./DevInfo/Mod"}])
    cancelled = soap.service.CancelJob(jobId=answer.jobId)
    assert (cancelled.state, cancelled.cancelled) == ("cancelled", 3)
