"""The dmwsi command: call (zeep from the served WSDL), jobs (the store)."""
import json
import subprocess
import sys

import pytest

from dmwsi.cli import parse_assignments
from dmwsi.store.records import Device, Job


def run(*args):
    return subprocess.run([sys.executable, "-m", "dmwsi.cli", *args], capture_output=True, text=True, timeout=60)


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
