"""GetJobStatus, GetJobResults (keyset-paged), ListJobs, CancelJob on jobs
written straight into the real store (OES10, EI10, CC4)."""
from datetime import datetime, timedelta, timezone

import pytest
from zeep.exceptions import Fault

from dmwsi.records import Command, Device, Job, ResultItem
from tests.conftest import fault_code as code


@pytest.fixture
def server(dmwsi_server):
    return dmwsi_server


def make_job(store, devices, **job_fields):
    for d in devices:
        if store.get_device(d) is None:
            store.upsert_device(Device(device_id=d, client_password="c", server_password="s"))
    return store.create_job(Job(principal="anonymous", operation="GetDeviceData", **job_fields),
                            [Command(action="Get", uri="./DevInfo/Mod")], devices)


def finish(store, job_id, device_id, state, code_, value=None):
    store.set_target_state(job_id, device_id, "inSession")
    if value is not None:
        store.add_results(job_id, device_id, [ResultItem(uri="./DevInfo/Mod", value=value, status_code=code_)])
    store.set_target_state(job_id, device_id, state, status_code=code_)


def test_job_status_counts_every_state(client, server):
    store = server.store
    job = make_job(store, [f"IMEI:{n}" for n in range(6)])
    finish(store, job.job_id, "IMEI:0", "succeeded", 200, "P1")
    finish(store, job.job_id, "IMEI:1", "failed", 404)
    store.set_target_state(job.job_id, "IMEI:2", "inSession")
    status = client.service.GetJobStatus(jobId=job.job_id)
    assert (status.jobId, status.state, status.operation) == (job.job_id, "running", "GetDeviceData")
    counts = status.counts
    assert (counts.total, counts.pending, counts.inSession, counts.succeeded, counts.failed) == (6, 3, 1, 1, 1)
    assert counts.refused == counts.timedOut == counts.cancelled == 0
    assert status.delivery.mode == "pull"


def test_scheduled_job_reports_scheduled(client, server):
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    job = make_job(server.store, ["IMEI:1"], not_before=later)
    status = client.service.GetJobStatus(jobId=job.job_id)
    assert status.state == "scheduled"
    assert abs(status.schedule.notBefore - later) < timedelta(seconds=1)


def test_results_are_keyset_paged(client, server):
    store = server.store
    devices = [f"IMEI:{n:03d}" for n in range(25)]
    job = make_job(store, devices)
    for n, d in enumerate(devices):
        finish(store, job.job_id, d, "succeeded" if n % 5 else "failed", 200 if n % 5 else 500, f"M{n}")
    seen, cursor, pages = [], None, 0
    while True:
        page = client.service.GetJobResults(jobId=job.job_id, pageSize=10, after=cursor)
        pages += 1
        seen.extend(page.results)
        cursor = page.nextCursor
        if cursor is None:
            break
    assert pages == 3
    assert [r.deviceId for r in seen] == devices
    first = seen[1]
    assert (first.state, first.statusCode, first.items[0].uri, first.items[0].value) == \
        ("succeeded", 200, "./DevInfo/Mod", "M1")
    assert seen[0].state == "failed" and seen[0].statusCode == 500
    failed = client.service.GetJobResults(jobId=job.job_id, states=["failed"])
    assert [r.deviceId for r in failed.results] == devices[::5]


def test_bad_cursor_and_page_size_are_client_faults(client, server):
    job = make_job(server.store, ["IMEI:1"])
    with pytest.raises(Fault) as info:
        client.service.GetJobResults(jobId=job.job_id, after="garbage")
    assert code(info.value) == "InvalidArgument"
    with pytest.raises(Fault) as info:
        client.service.GetJobResults(jobId=job.job_id, pageSize=0)
    assert code(info.value) == "InvalidArgument"


def test_list_jobs_newest_first_and_filtered(client, server):
    store = server.store
    jobs = [make_job(store, ["IMEI:1"]) for _ in range(3)]
    store.create_job(Job(principal="anonymous", operation="SetDeviceData"), [], ["IMEI:1"])
    listed = client.service.ListJobs(operation="GetDeviceData", pageSize=2)
    assert [j.jobId for j in listed.jobs] == [jobs[2].job_id, jobs[1].job_id]
    rest = client.service.ListJobs(operation="GetDeviceData", pageSize=2, after=listed.nextCursor)
    assert [j.jobId for j in rest.jobs] == [jobs[0].job_id]
    pending = client.service.ListJobs(states=["pending"])
    assert len(pending.jobs) == 4


def test_cancel_job_stops_pending_devices(client, server):
    store = server.store
    job = make_job(store, ["IMEI:1", "IMEI:2", "IMEI:3"])
    finish(store, job.job_id, "IMEI:1", "succeeded", 200)
    answer = client.service.CancelJob(jobId=job.job_id)
    assert (answer.state, answer.cancelled) == ("cancelled", 2)
    counts = client.service.GetJobStatus(jobId=job.job_id).counts
    assert (counts.cancelled, counts.succeeded) == (2, 1)
    with pytest.raises(Fault) as info:
        client.service.CancelJob(jobId=job.job_id)
    assert code(info.value) == "JobNotCancellable"


def test_transaction_log_records_every_request(client, server):
    with pytest.raises(Fault):
        client.service.GetJobStatus(jobId="missing")
    client.service.GetServiceInfo()
    log = client.service.GetTransactionLog()
    rows = [(e.operation, e.success, e.errorCode) for e in log.entries]
    assert ("GetJobStatus", False, "UnknownJob") in rows and ("GetServiceInfo", True, None) in rows
    failures = client.service.GetTransactionLog(success=False)
    assert {e.operation for e in failures.entries} == {"GetJobStatus"}
    by_job = client.service.GetTransactionLog(jobId="missing")
    assert [e.operation for e in by_job.entries] == ["GetJobStatus"]


def unacknowledged(client, job_id):
    page = client.service.GetJobResults(jobId=job_id, unacknowledgedOnly=True)
    return [r.deviceId for r in page.results]


def test_acknowledge_results_by_device_then_everything_finished(client, server):
    store = server.store
    devices = [f"IMEI:{n}" for n in range(5)]
    job = make_job(store, devices)
    for d in devices[:3]:
        finish(store, job.job_id, d, "succeeded", 200, "P1")
    assert unacknowledged(client, job.job_id) == devices[:3]
    answer = client.service.AcknowledgeResults(jobId=job.job_id, deviceIds=["IMEI:1", "IMEI:3"])
    assert (answer.jobId, answer.acknowledged) == (job.job_id, 1)     # IMEI:3 has not finished
    assert unacknowledged(client, job.job_id) == ["IMEI:0", "IMEI:2"]
    assert client.service.AcknowledgeResults(jobId=job.job_id).acknowledged == 2
    assert unacknowledged(client, job.job_id) == []
    assert client.service.AcknowledgeResults(jobId=job.job_id).acknowledged == 0
    finish(store, job.job_id, "IMEI:3", "failed", 500)
    assert unacknowledged(client, job.job_id) == ["IMEI:3"]
    # Acknowledgements are per principal; without unacknowledgedOnly every result is there.
    assert unacknowledged_by_other(store, job.job_id) == devices[:4]
    assert len(client.service.GetJobResults(jobId=job.job_id).results) == 4


def unacknowledged_by_other(store, job_id):
    return [r.device_id for r in store.job_results(job_id, unacknowledged_by="someone-else")[0]]


def push_for(store, job, principal="anonymous"):
    return store.enqueue_push(principal, "http://127.0.0.1:9/unreachable", "JobCompleted",
                              {"jobId": job.job_id}, job_id=job.job_id,
                              now=datetime.now(timezone.utc) + timedelta(hours=1))   # not due: the sender waits


def test_acknowledge_push_deliveries_stops_their_retries(client, server):
    store = server.store
    job = make_job(store, ["IMEI:1", "IMEI:2"])
    finish(store, job.job_id, "IMEI:1", "succeeded", 200, "P1")
    first, second = push_for(store, job), push_for(store, job)
    answer = client.service.AcknowledgeResults(jobId=job.job_id, deliveryIds=[first, second, first])
    assert answer.acknowledged == 2
    for delivery_id in (first, second):
        push = store.get_push(delivery_id)
        assert push.delivered_at is not None and push.next_attempt_at is None
    # Deliveries only: the device results stay unacknowledged; a repeat counts nothing new.
    assert unacknowledged(client, job.job_id) == ["IMEI:1"]
    assert client.service.AcknowledgeResults(jobId=job.job_id, deliveryIds=[first]).acknowledged == 0
    both = client.service.AcknowledgeResults(jobId=job.job_id, deliveryIds=[second], deviceIds=["IMEI:1"])
    assert both.acknowledged == 1 and unacknowledged(client, job.job_id) == []


def test_acknowledge_rejects_foreign_deliveries_and_writes_nothing(client, server):
    store = server.store
    job, other = make_job(store, ["IMEI:1"]), make_job(store, ["IMEI:1"])
    finish(store, job.job_id, "IMEI:1", "succeeded", 200, "P1")
    mine, elsewhere, not_mine = push_for(store, job), push_for(store, other), push_for(store, job, "someone-else")
    for bad in ("no-such-delivery", elsewhere, not_mine):
        with pytest.raises(Fault) as info:
            client.service.AcknowledgeResults(jobId=job.job_id, deviceIds=["IMEI:1"], deliveryIds=[mine, bad])
        assert code(info.value) == "InvalidArgument"
        assert bad in info.value.message
    # Validated before anything is written: neither the device nor the valid delivery was acknowledged.
    assert store.get_push(mine).delivered_at is None
    assert unacknowledged(client, job.job_id) == ["IMEI:1"]
    with pytest.raises(Fault) as info:
        client.service.AcknowledgeResults(jobId="missing")
    assert code(info.value) == "UnknownJob"
