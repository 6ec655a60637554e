"""The publisher: what each mode enqueues, sequences, idempotence, and the
transactional outbox (a push commits with its result or not at all)."""
from datetime import datetime, timezone

import pytest

from dmwsi.jobs import outbox
from dmwsi.jobs.outbox import PayloadError, PushPublisher, job_stream, subscription_stream
from dmwsi.store import NotFound
from dmwsi.records import DeviceResult, ResultItem, Subscription

from .conftest import make_job

CB = "http://127.0.0.1:9/callback"
T = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)


def finish(store, job, device, state="succeeded", **push):
    """What the job code does: record a device's result and its push in one transaction."""
    with store.transaction():
        completed = store.set_target_state(job.job_id, device, state, status_code=200)
        delivery_id = outbox.device_result_pushed(store, job, {"deviceId": device, "state": state, **push})
    return completed, delivery_id


def pushes(store, ids):
    return [store.get_push(i) for i in ids]


def test_each_mode_numbers_the_job_pushes_in_order(store):
    job = make_job(store, CB)
    other = make_job(store, CB, devices=["d1"])
    ids = [finish(store, job, "d1")[1], finish(store, other, "d1")[1], finish(store, job, "d2")[1]]
    completed, last = finish(store, job, "d3", items=[{"uri": "./DevInfo/Man", "value": "Acme"}])
    assert completed
    ids += [last] + outbox.job_completed(store, job)
    got = pushes(store, ids)
    assert [(p.operation, p.job_id, p.payload["sequence"]) for p in got] == [
        ("DeviceResult", job.job_id, 1), ("DeviceResult", other.job_id, 1), ("DeviceResult", job.job_id, 2),
        ("DeviceResult", job.job_id, 3), ("JobCompleted", job.job_id, 4)]
    for p in got:   # stored numbering = payload numbering; payload carries its own ids
        assert (p.stream, p.sequence) == (job_stream(p.job_id), p.payload["sequence"])
        assert (p.payload["jobId"], p.payload["deliveryId"]) == (p.job_id, p.delivery_id)
        assert (p.principal, p.callback_url) == ("op", CB)
    assert got[3].payload["result"] == {"jobId": job.job_id, "deviceId": "d3", "state": "succeeded",
                                        "items": [{"uri": "./DevInfo/Man", "value": "Acme"}]}
    info = got[4].payload["job"]
    assert (info["state"], info["counts"]) == ("completed", {
        "total": 3, "pending": 0, "inSession": 0, "succeeded": 3, "failed": 0, "refused": 0, "timedOut": 0,
        "cancelled": 0})
    assert info["delivery"] == {"mode": "each", "callbackUrl": CB}
    assert info["completedAt"] == info["updatedAt"] and isinstance(info["createdAt"], str)


def test_collated_mode_pushes_results_available_then_job_completed_once(store):
    job = make_job(store, CB, devices=["d1", "d2"], mode="collated")
    assert finish(store, job, "d1") == (False, None)             # nothing per device
    with pytest.raises(ValueError, match="not in a final state"):
        outbox.job_completed(store, job)
    completed, _ = finish(store, job, "d2", state="failed")
    ids = outbox.job_completed(store, job)
    assert completed and outbox.job_completed(store, job.job_id) == ids   # a second call adds nothing
    ra, jc = pushes(store, ids)
    assert (ra.operation, ra.sequence, jc.operation, jc.sequence) == ("ResultsAvailable", 1, "JobCompleted", 2)
    assert ra.payload["state"] == "completed"
    assert ra.payload["counts"] == jc.payload["job"]["counts"] and ra.payload["counts"]["failed"] == 1
    assert len(store.due_pushes(limit=100)) == 2


def test_pull_mode_and_jobs_without_callback_push_nothing(store):
    for job in (make_job(store, None, devices=["d1"], mode="pull"), make_job(store, None, devices=["d1"])):
        assert finish(store, job, "d1") == (True, None)
        assert outbox.job_completed(store, job) == []
        assert outbox.diagnostics_report(store, job, {"function": "battery", "collectedAt": T}) is None
    assert store.due_pushes(limit=10) == []


def test_device_result_push_is_idempotent_per_device_and_takes_store_records(store):
    job = make_job(store, CB, devices=["d1", "d2"])
    record = DeviceResult(job.job_id, "d1", "failed", status_code=500, message="boom", finished_at=T,
                          items=[ResultItem(uri="./x", value=b"\xff\x00", status_code=500)])
    first = outbox.device_result_pushed(store, job, record)
    assert outbox.device_result_pushed(store, job, record) == first
    result = store.get_push(first).payload["result"]
    # The GetJobResults form: bytes as text, finished_at as completedAt.
    assert result == {"jobId": job.job_id, "deviceId": "d1", "state": "failed", "statusCode": 500,
                      "message": "boom", "completedAt": "2024-05-01T12:00:00+00:00",
                      "items": [{"uri": "./x", "value": "\ufffd\x00"}]}
    with pytest.raises(PayloadError, match="pushed for job"):
        outbox.device_result_pushed(store, job, {"jobId": "other", "deviceId": "d2", "state": "failed"})
    with pytest.raises(NotFound):
        outbox.device_result_pushed(store, "no-such-job", {"deviceId": "d2", "state": "failed"})


def test_rolled_back_transaction_leaves_no_push_and_no_gap(store):
    job = make_job(store, CB, devices=["d1", "d2"])
    with pytest.raises(RuntimeError), store.transaction():
        store.set_target_state(job.job_id, "d1", "succeeded")
        outbox.device_result_pushed(store, job, {"deviceId": "d1", "state": "succeeded"})
        raise RuntimeError("crash before commit")
    assert store.get_target(job.job_id, "d1").state == "pending"
    assert store.due_pushes(limit=10) == [] and store.next_push_sequence(job_stream(job.job_id)) == 1
    # A push the contract refuses rolls back the result it announces.
    with pytest.raises(PayloadError, match="items"):
        finish(store, job, "d1", items=[{"value": "no uri"}])
    assert store.get_target(job.job_id, "d1").state == "pending" and store.due_pushes(limit=10) == []
    _, delivery_id = finish(store, job, "d1")
    assert store.get_push(delivery_id).sequence == 1


def test_events_and_diagnostics(store):
    job = make_job(store, CB, devices=["d1"])
    sub = Subscription("ops", "1226", "http://127.0.0.1:9/events", subscription_id="sub-1")
    publisher = PushPublisher(store)
    e1 = publisher.event_occurred(sub, "1226", occurred_at=T, device_id="d1", mark="critical",
                                  data=[{"uri": "./FwUpdate/State", "value": "50"}])
    e2 = publisher.event_occurred(sub, "1226", occurred_at=T, job_id=job.job_id)
    d1 = publisher.diagnostics_report(job, {"deviceId": "d1", "function": "battery", "collectedAt": T,
                                            "final": True, "items": [{"uri": "./Diag/Battery", "value": "80"}]})
    e1, e2, d1 = pushes(store, [e1, e2, d1])
    # Outside a job an event is numbered per subscription and names it as its jobId.
    assert (e1.stream, e1.sequence, e1.job_id, e1.principal, e1.callback_url) == (
        subscription_stream(sub.subscription_id), 1, None, "ops", "http://127.0.0.1:9/events")
    assert e1.payload == {"jobId": sub.subscription_id, "deliveryId": e1.delivery_id, "sequence": 1,
                          "subscriptionId": sub.subscription_id, "eventId": "1226", "deviceId": "d1",
                          "occurredAt": "2024-05-01T12:00:00+00:00", "mark": "critical",
                          "data": [{"uri": "./FwUpdate/State", "value": "50"}]}
    # Inside a job, events and reports count with the job's pushes.
    assert [(p.stream, p.sequence, p.payload["jobId"]) for p in (e2, d1)] == [
        (job_stream(job.job_id), 1, job.job_id), (job_stream(job.job_id), 2, job.job_id)]
    assert d1.payload["report"]["diagnosticsJobId"] == job.job_id
    with pytest.raises(PayloadError, match="report.function: required"):
        publisher.diagnostics_report(job, {"collectedAt": T})
