"""Issue 11 end to end: real clients' behaviours, reproduced by simulator
device classes (dmwsi.sim DeviceBehaviour quirks), through the real server,
real DM sessions and the store; SetDeviceData through real SOAP."""
from dmwsi.client import soap_client
from dmwsi.dm import codes
from tests.e2e.conftest import device_class


def statuses(result):
    return [(i.command_seq, i.status_code) for i in result.items if i.format is None]


def test_device_that_wants_server_credentials_first_gets_each_command_once(make_fleet):
    # The server sends its Cred only when challenged; the device answers the first
    # message 407 and 215 for every command: the unit is sent again, once, whole.
    h = make_fleet(1, [device_class(require_server_auth=True, max_msg_size=2048)],
                   dm={"send_server_cred": "on-challenge"})
    h.register()
    device = h.fleet.devices[h.ids[0]]
    value = "v" * 300                                   # several messages for the unit
    commands = [{"action": "Add", "uri": "./Ext/Q", "format": "node"}]
    commands += [{"action": "Add", "uri": f"./Ext/Q/{n}", "value": value} for n in range(1, 6)]
    first = h.submit(commands)
    later = h.submit([{"action": "Get", "uri": "./Ext/Q/1"}])
    h.wait_job(first.job_id)
    h.wait_job(later.job_id)
    result = h.results(first.job_id)[h.ids[0]]
    assert result.state == "succeeded", result.message
    assert statuses(result) == [(n, 200) for n in range(1, 7)]          # no 418: nothing was added twice
    assert h.results(later.job_id)[h.ids[0]].state == "succeeded"        # after the first job's Adds
    assert [device.tree.read_value(f"./Ext/Q/{n}") for n in range(1, 6)] == [value] * 5


def test_atomic_refused_as_a_whole_is_recorded_at_once(make_fleet):
    h = make_fleet(1, [device_class(atomic_refusal=406)])
    h.register()
    device = h.fleet.devices[h.ids[0]]
    job = h.submit([{"action": "Add", "uri": "./Ext/At", "value": "a"},
                    {"action": "Replace", "uri": "./Ext/At", "value": "b"}], atomic=True)
    h.wait_job(job.job_id)
    result = h.results(job.job_id)[h.ids[0]]
    assert result.state == "failed" and result.status_code == 406
    assert statuses(result) == [(1, 406), (2, 406)]
    assert h.store.get_target(job.job_id, h.ids[0]).attempts == 1          # not retried
    assert device.stats.sessions_started == 1 and not device.tree.exists("./Ext/At")


def test_device_answering_200_to_chunks_fails_the_command_with_a_clear_error(make_fleet):
    h = make_fleet(1, [device_class(chunks_as_whole=True, max_msg_size=4096)])
    h.register()
    device = h.fleet.devices[h.ids[0]]
    big = "x" * 40000
    job = h.submit([{"action": "Add", "uri": "./Ext/Big", "value": big}])
    h.wait_job(job.job_id)
    result = h.results(job.job_id)[h.ids[0]]
    assert result.state == "failed" and result.error_code == "LargeObjectNotBuffered"
    assert "213" in result.message
    kept = device.tree.read_value("./Ext/Big")
    assert kept and len(kept) < len(big)                 # the device has a fragment, and we say so


def test_well_behaved_device_gets_large_objects_whole(make_fleet):
    h = make_fleet(1, [device_class(max_msg_size=4096)])
    h.register()
    big = "y" * 40000
    job = h.submit([{"action": "Add", "uri": "./Ext/Big", "value": big}])
    h.wait_job(job.job_id)
    assert h.results(job.job_id)[h.ids[0]].state == "succeeded"
    assert h.fleet.devices[h.ids[0]].tree.read_value("./Ext/Big") == big


def test_device_reusing_session_id_1_runs_every_session(make_fleet):
    h = make_fleet(1, [device_class(session_id_one=True)], dm={"wakeup_interval": 0.2})
    h.register()
    device = h.fleet.devices[h.ids[0]]
    for n in range(3):
        job = h.submit([{"action": "Replace", "uri": "./DMAcc/dmwsi/Name", "value": f"n{n}"}])
        h.wait_job(job.job_id)
        assert h.results(job.job_id)[h.ids[0]].state == "succeeded"
    # Each job in its own session, each session SessionID 1 / MsgID 1 (sim/test_sim_quirks.py).
    assert device.tree.read_value("./DMAcc/dmwsi/Name") == "n2" and device.stats.sessions_started >= 3


def test_set_device_data_adds_a_missing_node(make_fleet):
    h = make_fleet(1, dm={"wakeup_interval": 0.2})
    h.register()
    device = h.fleet.devices[h.ids[0]]
    assert not device.tree.exists("./Ext/New")
    soap = soap_client(h.server.soap_url)
    answer = soap.service.SetDeviceData(device={"deviceId": h.ids[0]},
                                        items=[{"uri": "./DMAcc/dmwsi/Name", "value": "Op"},
                                               {"uri": "./Ext/New", "value": "fresh"}],
                                        synchronous=True, timeoutSeconds=20)
    (result,) = answer.results
    assert result.state == "succeeded"
    assert [(s.index, s.statusCode) for s in result.commandStatuses] == [
        (1, 200), (2, codes.StatusCode.NOT_FOUND), (2, 200)]       # the Replace's 404, then the Add's 200
    assert device.tree.read_value("./Ext/New") == "fresh"
