"""The dmwsi command: call (zeep from the served WSDL) and --follow, results,
jobs (the store)."""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import pytest

from dmwsi.cli import parse_assignments
from dmwsi.records import Command, Device, Job, ResultItem

CLI = [sys.executable, "-m", "dmwsi.cli"]
# Rich tables unwrapped; no DMWSI_* settings, profile or bootstrap credential
# of whoever runs the tests (a data directory of its own, empty).
WIDE = {**{k: v for k, v in os.environ.items() if not k.startswith("DMWSI_")}, "COLUMNS": "200",
        "XDG_CONFIG_HOME": tempfile.mkdtemp(prefix="dmwsi-cli-xdg-"),
        "DMWSI_SERVER_DATA_DIR": tempfile.mkdtemp(prefix="dmwsi-cli-data-")}


def run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, env=WIDE)


def test_parse_assignments_nests_and_repeats():
    assert parse_assignments(["a=1", "b.c=x", "b.d=y", "l=1", "l=2", 'j=[{"k": 1}]']) == {
        "a": "1", "b": {"c": "x", "d": "y"}, "l": ["1", "2"], "j": [{"k": 1}]}
    with pytest.raises(ValueError):
        parse_assignments(["novalue"])


def test_call_prints_json_and_tables(shared_server):
    out = run("call", "RegisterDevice", "device.deviceId=IMEI:cli", "device.man=Acme",
              "clientPassword=c", "serverPassword=s", "--url", shared_server.soap_url, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["deviceId"] == "IMEI:cli"
    table = run("call", "GetServiceInfo", "--url", shared_server.soap_url)
    assert table.returncode == 0 and "interfaceVersions[0]" in table.stdout and "1.0" in table.stdout


def test_call_reports_faults_with_their_code(shared_server):
    out = run("call", "GetJobStatus", "jobId=nope", "--url", shared_server.soap_url)
    assert out.returncode == 2
    assert "fault UnknownJob: no job 'nope'" in out.stderr


def test_jobs_lists_and_shows_from_the_store(dmwsi_server):
    store = dmwsi_server.store
    store.upsert_device(Device(device_id="IMEI:1", client_password="c", server_password="s"))
    job = store.create_job(Job(principal="ops", operation="GetDeviceData"), [], ["IMEI:1"])
    data_dir = str(dmwsi_server.server.config.data_dir)
    listing = run("jobs", "--data-dir", data_dir)
    assert listing.returncode == 0
    assert job.job_id in listing.stdout and "pending=1" in listing.stdout
    shown = json.loads(run("jobs", job.job_id, "--data-dir", data_dir).stdout)
    assert shown["job"]["operation"] == "GetDeviceData" and shown["counts"]["pending"] == 1
    assert run("jobs", "missing", "--data-dir", data_dir).returncode == 1


def register(store, device_ids):
    for d in device_ids:
        store.upsert_device(Device(device_id=d, client_password="c", server_password="s"))


def finish(store, job_id, device_id, state, status_code, values=()):
    store.set_target_state(job_id, device_id, "inSession")
    store.add_results(job_id, device_id, [ResultItem(uri=u, value=v, status_code=200) for u, v in values])
    store.set_target_state(job_id, device_id, state, status_code=status_code,
                           message=None if state == "succeeded" else "device said no")


@pytest.fixture
def finished_job(dmwsi_server):
    """A job of 5 devices: 4 finished (3 succeeded, 1 failed), 1 still pending."""
    store = dmwsi_server.store
    devices = [f"IMEI:{n}" for n in range(5)]
    register(store, devices)
    job = store.create_job(Job(principal="anonymous", operation="GetDeviceData"),
                           [Command(action="Get", uri="./DevInfo/Mod"), Command(action="Get", uri="./DevInfo/Man")],
                           devices)
    for n in range(3):
        finish(store, job.job_id, devices[n], "succeeded", 200,
               [("./DevInfo/Mod", f"P{n}"), ("./DevInfo/Man", "Acme")])
    finish(store, job.job_id, devices[3], "failed", 404)
    return job.job_id


def test_results_pages_through_every_result(dmwsi_server, finished_job):
    url = dmwsi_server.soap_url
    out = run("results", finished_job, "--url", url, "--json", "--page-size", "2")
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert [r["deviceId"] for r in results] == ["IMEI:0", "IMEI:1", "IMEI:2", "IMEI:3"]   # 2 pages of 2
    assert [(i["uri"], i["value"]) for i in results[1]["items"]] == [("./DevInfo/Mod", "P1"), ("./DevInfo/Man", "Acme")]
    assert (results[3]["state"], results[3]["statusCode"], results[3]["items"]) == ("failed", 404, [])
    failed = json.loads(run("results", finished_job, "--url", url, "--json", "--state", "failed").stdout)
    assert [r["deviceId"] for r in failed] == ["IMEI:3"]
    both = json.loads(run("results", finished_job, "--url", url, "--json",
                          "--state", "failed", "--state", "pending").stdout)
    assert [r["deviceId"] for r in both] == ["IMEI:3", "IMEI:4"]


def test_results_table(dmwsi_server, finished_job):
    out = run("results", finished_job, "--url", dmwsi_server.soap_url, "--page-size", "3")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert f"job {finished_job} (running): 4 results" in out.stdout
    for header in ("device", "state", "status", "message", "items"):
        assert header in lines[2]
    row = next(line for line in lines if "IMEI:2" in line)
    assert "succeeded" in row and "200" in row and "./DevInfo/Mod=P2" in row
    assert any("./DevInfo/Man=Acme" in line for line in lines)
    failed = next(line for line in lines if "IMEI:3" in line)
    assert "failed" in failed and "404" in failed and "device said no" in failed
    assert "IMEI:4" not in out.stdout        # pending: not a result yet


def test_results_of_an_unknown_job_is_a_fault(dmwsi_server):
    out = run("results", "nope", "--url", dmwsi_server.soap_url)
    assert out.returncode == 2
    assert "fault UnknownJob: no job 'nope'" in out.stderr and out.stdout == ""
    bad_state = run("results", "nope", "--url", dmwsi_server.soap_url, "--page-size", "0")
    assert bad_state.returncode == 2 and bad_state.stderr.startswith("fault ")


def _complete_when_submitted(store, devices, seen):
    """The DM side, played in the store: finish every device of the first job, slowly."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        jobs, _ = store.list_jobs()
        if jobs:
            break
        time.sleep(0.05)
    else:
        return
    job_id = seen["job"] = jobs[0].job_id
    time.sleep(1.0)     # the CLI polls the running job first
    for n, d in enumerate(devices):
        finish(store, job_id, d, "failed" if n == 0 else "succeeded", 500 if n == 0 else 200,
               [("./DevInfo/Mod", "P1")])
        time.sleep(0.2)


def test_call_follow_waits_for_the_job_and_prints_final_counts(dmwsi_server):
    store = dmwsi_server.store
    devices = ["IMEI:f1", "IMEI:f2", "IMEI:f3"]
    register(store, devices)
    seen = {}
    completer = threading.Thread(target=_complete_when_submitted, args=(store, devices, seen), daemon=True)
    completer.start()
    started = time.monotonic()
    out = run("call", "SubmitBulkOperation", *(f"deviceIds={d}" for d in devices), "deviceIds=IMEI:unknown",
              'commands=[{"action": "Get", "uri": "./DevInfo/Mod"}]', "--url", dmwsi_server.soap_url,
              "--follow")
    completer.join(5)
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started > 1.5       # it waited for the devices
    job_id = seen["job"]
    assert store.get_job(job_id).state == "completed"
    assert f"job {job_id} completed: total=4 succeeded=2 failed=1 refused=1 timedOut=0 cancelled=0 " \
           "pending=0 inSession=0" in out.stdout
    assert "accepted" in out.stdout          # the call's own answer first


def test_call_follow_json_and_nothing_to_follow(dmwsi_server, finished_job):
    store = dmwsi_server.store
    store.set_target_state(finished_job, "IMEI:4", "cancelled")
    out = run("call", "GetJobResults", f"jobId={finished_job}", "--url", dmwsi_server.soap_url,
              "--follow", "--json")
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert len(answer["response"]["results"]) == 5
    assert answer["job"]["state"] == "completed" and answer["job"]["counts"]["succeeded"] == 3
    nothing = run("call", "GetServiceInfo", "--url", dmwsi_server.soap_url, "--follow")
    assert nothing.returncode == 2 and "GetServiceInfo answered no jobId to follow" in nothing.stderr
    fault = run("call", "SubmitBulkOperation", "deviceIds=IMEI:0", "jobId=x", "--url", dmwsi_server.soap_url,
                "--follow")
    assert fault.returncode == 2 and fault.stderr.startswith("fault "), fault.stderr


def test_ctrl_c_stops_following_not_the_job(dmwsi_server):
    import signal
    store = dmwsi_server.store
    register(store, ["IMEI:c1"])
    follower = subprocess.Popen([*CLI, "call", "SubmitBulkOperation", "deviceIds=IMEI:c1",
                                 'commands=[{"action": "Get", "uri": "./DevInfo/Mod"}]',
                                 "--url", dmwsi_server.soap_url, "--follow"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=WIDE)
    try:
        deadline = time.monotonic() + 30
        while not store.list_jobs()[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)         # following now
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
    finally:
        follower.kill()
    (job,), _ = store.list_jobs()
    assert follower.returncode == 130, err
    assert f"stopped following {job.job_id}; the job goes on" in err
    assert f"job {job.job_id} pending: total=1" in out
    assert store.get_job(job.job_id).state == "pending"
