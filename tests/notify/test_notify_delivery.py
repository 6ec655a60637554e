"""PushSender against the reference consumer on loopback, on a real SQLite
store: content, order, retries, backoff, abandonment, de-duplication."""
import logging
from datetime import datetime, timezone

import pytest
import zeep
from twisted.internet.threads import blockingCallFromThread

from dmwsi.jobs import outbox

from .conftest import delivered, finish, make_job, wait_until

T = datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)


def run_job(store, job, devices, **fields):
    """Every device finishes, then the job completes: the delivery ids in order."""
    ids = [finish(store, job, d, **fields)[1] for d in devices]
    return ids + outbox.job_completed(store, job)


def test_each_mode_pushes_arrive_with_their_content_and_sequence(store, consumer, senders):
    job = make_job(store, consumer.url)
    other = make_job(store, consumer.url, devices=["x1"])
    items = [{"uri": "./DevInfo/Man", "value": "Acme", "format": "chr"}, {"uri": "./DevInfo/Mod", "value": "P1"}]
    ids = run_job(store, job, ["d1", "d2", "d3"], statusCode=200, completedAt=T, items=items)
    other_ids = run_job(store, other, ["x1"])
    sender = senders()
    sender.kick()
    wait_until(lambda: delivered(store, *ids, *other_ids), what="all pushes delivered")

    got = consumer.pushes_of(job.job_id)
    assert sorted((p["sequence"], p["operation"]) for p in got) == [
        (1, "DeviceResult"), (2, "DeviceResult"), (3, "DeviceResult"), (4, "JobCompleted")]
    by_device = {p["result"]["deviceId"]: p for p in got if p["operation"] == "DeviceResult"}
    assert [by_device[d]["sequence"] for d in ("d1", "d2", "d3")] == [1, 2, 3]   # production order
    assert by_device["d2"] == {
        "operation": "DeviceResult", "jobId": job.job_id, "deliveryId": ids[1], "sequence": 2,
        "result": {"jobId": job.job_id, "deviceId": "d2", "state": "succeeded", "statusCode": 200,
                   "completedAt": T, "items": items}}
    completed = got[-1] if got[-1]["operation"] == "JobCompleted" else None
    assert completed is not None, "JobCompleted is delivered last"
    assert completed["job"]["counts"]["succeeded"] == 3 and completed["job"]["state"] == "completed"
    assert completed["job"]["delivery"] == {"mode": "each", "callbackUrl": consumer.url}
    # Another job's pushes are numbered on their own.
    assert [p["sequence"] for p in consumer.pushes_of(other.job_id)] == [1, 2]
    assert consumer.duplicates == 0 and len(consumer.attempts) == 6
    push = store.get_push(ids[0])
    assert (push.attempts, push.last_error, push.next_attempt_at) == (1, None, None)


def test_collated_mode_sends_results_available_and_job_completed_once(store, consumer, senders):
    job = make_job(store, consumer.url, mode="collated")
    for d in ("d1", "d2", "d3"):
        assert finish(store, job, d, state="failed" if d == "d2" else "succeeded")[1] is None
    ids = outbox.job_completed(store, job)
    assert outbox.job_completed(store, job) == ids   # the job code calling twice changes nothing
    senders().kick()
    wait_until(lambda: delivered(store, *ids), what="collated pushes delivered")
    got = consumer.pushes_of(job.job_id)
    assert [(p["operation"], p["sequence"]) for p in got] == [("ResultsAvailable", 1), ("JobCompleted", 2)]
    assert got[0]["state"] == "completed"
    assert got[0]["counts"] == {"total": 3, "pending": 0, "inSession": 0, "succeeded": 2, "failed": 1,
                                "refused": 0, "timedOut": 0, "cancelled": 0}
    assert [a.operation for a in consumer.attempts] == ["ResultsAvailable", "JobCompleted"]


def test_consumer_down_then_back_loses_nothing(store, consumer, senders):
    consumer.stop()
    job = make_job(store, consumer.url, devices=[f"d{i}" for i in range(8)])
    ids = run_job(store, job, [f"d{i}" for i in range(8)])
    senders(max_backoff=0.3).kick()
    # While it is down it is probed with one push at a time, at its own backoff.
    wait_until(lambda: sum(store.get_push(i).attempts for i in ids) >= 4, what="failed attempts")
    assert consumer.attempts == [] and not any(store.get_push(i).delivered_at for i in ids)
    assert "ConnectionError" in store.get_push(ids[0]).last_error
    consumer.start()
    wait_until(lambda: delivered(store, *ids), what="delivery after the consumer came back")
    assert sorted(p["deliveryId"] for p in consumer.pushes) == sorted(ids)
    assert sorted(p["sequence"] for p in consumer.pushes) == list(range(1, 10))


def test_lost_acknowledgements_cause_duplicates_the_consumer_removes(store, consumer, senders):
    job = make_job(store, consumer.url, devices=["d1", "d2"])
    ids = run_job(store, job, ["d1", "d2"])
    consumer.fail("lost-ack", times=2, operations=["DeviceResult"])
    senders().kick()
    wait_until(lambda: delivered(store, *ids), what="delivery")
    assert consumer.duplicates == 2
    assert [a.outcome for a in consumer.attempts if a.operation == "DeviceResult"].count("lost-ack") == 2
    assert sorted(p["deliveryId"] for p in consumer.pushes) == sorted(ids)    # each once
    assert all(store.get_push(i).attempts == 2 for i in ids[:2])


def test_faults_are_retried_with_growing_backoff(store, consumer, senders):
    job = make_job(store, consumer.url, devices=["d1"])
    _, delivery_id = finish(store, job, "d1")
    consumer.fail("fault", times=3)
    senders(initial_backoff=0.1, max_backoff=1.0).kick()
    wait_until(lambda: delivered(store, delivery_id), what="delivery after faults")
    attempts = consumer.attempts_of(delivery_id)
    assert [a.outcome for a in attempts] == ["fault", "fault", "fault", "accepted"]
    gaps = [b.received_at - a.received_at for a, b in zip(attempts, attempts[1:])]
    # No attempt before its backoff ended: 0.1, 0.2, 0.4 s (no jitter in tests).
    assert [g >= d for g, d in zip(gaps, (0.1, 0.2, 0.4))] == [True, True, True], gaps
    push = store.get_push(delivery_id)
    assert push.attempts == 4 and "ServiceUnavailable" in push.last_error


def test_http_errors_and_timeouts_are_retried(store, consumer, senders):
    job = make_job(store, consumer.url, devices=["d1", "d2"])
    _, first = finish(store, job, "d1")
    consumer.fail("http", times=2)
    sender = senders(timeout=0.3)
    sender.kick()
    wait_until(lambda: delivered(store, first), what="delivery after HTTP errors")
    assert [a.outcome for a in consumer.attempts_of(first)] == ["http", "http", "accepted"]
    assert store.get_push(first).last_error.startswith("HTTP 503")

    consumer.delay = 1.0        # slower than the sender waits
    _, second = finish(store, job, "d2")
    sender.kick()
    wait_until(lambda: "Timeout" in (store.get_push(second).last_error or ""), what="a timed-out attempt")
    consumer.delay = 0
    wait_until(lambda: delivered(store, second), what="delivery after the timeout")
    # The timed-out attempt was processed late: its retry is a duplicate the consumer removes.
    wait_until(lambda: consumer.duplicates >= 1, what="the late first attempt to be seen")
    assert [p["deliveryId"] for p in consumer.pushes].count(second) == 1


def test_max_attempts_parks_and_logs_and_the_job_still_completes(store, consumer, senders, caplog):
    caplog.set_level(logging.WARNING, logger="dmwsi.push.sender")
    job = make_job(store, consumer.url, devices=["d1", "d2"])
    _, bad = finish(store, job, "d1")
    consumer.fail("fault", operations=["DeviceResult"])        # until told otherwise
    senders(max_attempts=3).kick()
    wait_until(lambda: store.get_push(bad).next_attempt_at is None, what="parking")
    push = store.get_push(bad)
    assert (push.attempts, push.delivered_at) == (3, None) and "ServiceUnavailable" in push.last_error
    assert [a.outcome for a in consumer.attempts_of(bad)] == ["fault"] * 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and bad in r.getMessage()]
    assert len(errors) == 1 and "parked after 3 attempt(s)" in errors[0].getMessage()
    # An abandoned push does not hold back the push that closes its job.
    consumer.recover()
    ids = run_job(store, job, ["d2"])
    wait_until(lambda: delivered(store, *ids), what="the rest of the job")
    assert [p["sequence"] for p in consumer.pushes_of(job.job_id)] == [2, 3]
    assert store.get_push(bad).delivered_at is None


def test_a_failing_consumer_does_not_block_others(store, consumers, senders):
    bad, good = consumers(), consumers()
    bad.fail("fault")
    slow = consumers()
    slow.delay = 5.0            # never answers within the timeout
    stuck = [finish(store, make_job(store, c.url, devices=["d1"]), "d1")[1] for c in (bad, slow)]
    ok = [finish(store, make_job(store, good.url, devices=["d1"]), "d1")[1] for _ in range(6)]
    senders(max_in_flight=2, timeout=0.5).kick()
    wait_until(lambda: delivered(store, *ok), what="the good consumer's pushes")
    assert len(good.pushes) == 6
    wait_until(lambda: all(store.get_push(i).attempts >= 1 for i in stuck), what="failed attempts")
    assert not any(store.get_push(i).delivered_at for i in stuck)
    slow.delay = 0


def test_a_delivery_is_never_in_flight_twice(store, consumer, senders):
    consumer.delay = 0.4        # every send stays in flight over many polls and kicks
    job = make_job(store, consumer.url, devices=["d1", "d2", "d3"])
    ids = [finish(store, job, d)[1] for d in ("d1", "d2", "d3")]
    sender = senders(poll_interval=0.01)
    for _ in range(20):
        sender.kick()
    wait_until(lambda: delivered(store, *ids), what="delivery")
    assert sorted(a.delivery_id for a in consumer.attempts) == sorted(ids)   # one attempt each
    assert consumer.duplicates == 0


def test_job_completed_waits_for_the_jobs_earlier_pushes(store, consumer, senders):
    job = make_job(store, consumer.url, devices=["d1", "d2"])
    ids = run_job(store, job, ["d1", "d2"])
    consumer.fail("fault", times=4, operations=["DeviceResult"])
    senders(max_in_flight=4).kick()
    wait_until(lambda: delivered(store, *ids), what="delivery")
    last_result = max(a.received_at for a in consumer.attempts if a.operation == "DeviceResult")
    completed = [a for a in consumer.attempts if a.operation == "JobCompleted"]
    assert len(completed) == 1 and completed[0].received_at > last_result
    assert store.get_push(ids[-1]).attempts == 1     # held back is not a failed attempt


def test_stop_waits_for_in_flight_sends(running_reactor, store, consumer, senders):
    consumer.delay = 0.3
    job = make_job(store, consumer.url, devices=["d1"])
    _, delivery_id = finish(store, job, "d1")
    sender = senders()
    sender.kick()
    wait_until(lambda: consumer.attempts, what="the send to start")
    blockingCallFromThread(running_reactor, sender.stop)
    assert delivered(store, delivery_id) and sender.in_flight == {}
    # Stopped: a new push stays in the outbox.
    _, later = finish(store, make_job(store, consumer.url, devices=["d1"]), "d1")
    sender.kick()
    sender.poll()
    assert not delivered(store, later) and len(consumer.attempts) == 1


def test_plugins_see_every_push_before_it_is_sent(store, consumer, senders):
    """The seam for signing: zeep plugins given to the sender."""
    seen = []

    class Recorder(zeep.Plugin):
        def egress(self, envelope, http_headers, operation, binding_options):
            seen.append((operation.name, envelope.findtext(".//{*}deliveryId")))
            http_headers["X-Test-Signature"] = "signed"
            return envelope, http_headers

    job = make_job(store, consumer.url, devices=["d1"])
    ids = run_job(store, job, ["d1"])
    senders(plugins=[Recorder()]).kick()
    wait_until(lambda: delivered(store, *ids), what="delivery")
    assert sorted(seen) == sorted([("DeviceResult", ids[0]), ("JobCompleted", ids[1])])


def test_a_push_the_contract_cannot_carry_is_abandoned_at_once(store, consumer, senders, caplog):
    caplog.set_level(logging.ERROR, logger="dmwsi.push.sender")
    broken = store.enqueue_push("op", consumer.url, "DeviceResult", {"jobId": "J", "deliveryId": "x"})
    unknown = store.enqueue_push("op", consumer.url, "NoSuchOperation", {})
    senders().kick()
    wait_until(lambda: all(store.get_push(i).next_attempt_at is None for i in (broken, unknown)),
               what="parking")
    assert "sequence: required" in store.get_push(broken).last_error
    assert "not a callback operation" in store.get_push(unknown).last_error
    assert consumer.attempts == [] and len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2


def test_a_held_back_push_goes_as_soon_as_its_predecessors_settle(store, consumer, senders):
    """Not at the next poll: with a poll interval of a minute, only the release can send it in time."""
    job = make_job(store, consumer.url, devices=["d1"], mode="each")
    ids = run_job(store, job, ["d1"])
    consumer.fail("fault", times=2, operations=["DeviceResult"])
    senders(poll_interval=60.0).kick()
    wait_until(lambda: delivered(store, *ids), timeout=5, what="delivery well before the next poll")
    completed = [a for a in consumer.attempts if a.operation == "JobCompleted"]
    assert [a.outcome for a in completed] == ["accepted"]
    assert completed[0].received_at > consumer.attempts_of(ids[0])[-1].received_at
