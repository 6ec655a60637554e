"""Synchronous calls cannot starve the SOAP worker pool (issue 10 item 4):
at most ``jobs.sync_slots`` wait for their devices at once; one more is
refused with Busy before anything is queued, and asynchronous calls are
answered meanwhile."""
import threading
import time

import pytest
import zeep

from dmwsi.client import soap_client
from tests.conftest import fault_code


def test_a_call_beyond_the_sync_slots_is_busy_and_queues_nothing(start_server):
    server = start_server(jobs={"sync_slots": 1})
    client = soap_client(server.soap_url)
    client.service.RegisterDevice(device={"deviceId": "IMEI:silent"}, clientPassword="c",   # never opens a session
                                  serverPassword="s")
    waiting = {}

    def wait_for_silent_device():
        started = time.monotonic()
        waiting["answer"] = client.service.GetDeviceData(device={"deviceId": "IMEI:silent"}, uris=["./DevInfo/Man"],
                                                         synchronous=True, timeoutSeconds=4)
        waiting["seconds"] = time.monotonic() - started

    holder = threading.Thread(target=wait_for_silent_device)
    holder.start()
    deadline = time.monotonic() + 5
    while len(server.store.list_jobs()[0]) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    jobs_before = [j.job_id for j in server.store.list_jobs()[0]]
    assert len(jobs_before) == 1

    other = soap_client(server.soap_url)
    started = time.monotonic()
    with pytest.raises(zeep.exceptions.Fault) as busy:
        other.service.GetDeviceData(device={"deviceId": "IMEI:silent"}, uris=["./DevInfo/Mod"],
                                    synchronous=True, timeoutSeconds=4)
    assert fault_code(busy.value) == "Busy"
    assert time.monotonic() - started < 2          # refused at once, not after waiting
    assert [j.job_id for j in server.store.list_jobs()[0]] == jobs_before    # nothing queued

    queued = other.service.GetDeviceData(device={"deviceId": "IMEI:silent"}, uris=["./DevInfo/Mod"])
    assert queued.jobId and queued.jobId not in jobs_before       # asynchronous calls still served
    assert other.service.GetServiceInfo().operations

    holder.join(10)
    assert waiting["seconds"] >= 3.5 and waiting["answer"].jobId == jobs_before[0]
    assert not waiting["answer"].results                              # the device never came

    again = other.service.GetDeviceData(device={"deviceId": "IMEI:silent"}, uris=["./DevInfo/Man"],
                                        synchronous=True, timeoutSeconds=1)
    assert again.jobId                              # the slot was given back
