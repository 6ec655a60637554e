"""Pushes scheduled per consumer (issue 10 item 4): a hanging consumer (a real
TCP server that accepts and never answers) delays only itself; a consumer
down past ``park_after`` has its pushes parked, listed and re-delivered
with their own delivery ids; real pushes to the reference consumer."""
import logging
import statistics
import time

import pytest

from dmwsi.config import ConfigError
from dmwsi.jobs import outbox
from dmwsi.push.sender import DEFAULTS, check_settings

from .conftest import FAST, delivered, finish, make_job, wait_until


def parked(store, *delivery_ids):
    return all((p := store.get_push(d)).next_attempt_at is None and p.delivered_at is None for d in delivery_ids)


def job_pushes(store, consumer_url, devices):
    """A job to ``consumer_url`` whose devices all finish, then completes: its delivery ids in order."""
    job = make_job(store, consumer_url, devices=devices)
    return job, [finish(store, job, d)[1] for d in devices] + outbox.job_completed(store, job)


def test_a_hanging_consumer_delays_only_itself(store, consumer, hanging, senders, caplog):
    caplog.set_level(logging.ERROR, logger="dmwsi.push.sender")
    # Without per-consumer scheduling the hanging consumer's backlog took all
    # 8 threads for a 10 s timeout at a time: the healthy consumer waited
    # (measured 142 s median with 30 s timeouts).
    sender = senders(max_in_flight=8, consumer_in_flight=2, timeout=10.0, initial_backoff=0.5, max_backoff=2.0)
    _, stuck = job_pushes(store, hanging.url, [f"h{i}" for i in range(39)])          # 40 pushes
    sender.kick()
    wait_until(lambda: hanging.accepted >= 2, what="the hanging consumer to hold its sends")

    enqueued = {}
    for i in range(41):
        job = make_job(store, consumer.url, devices=["d1"])
        delivery_id = finish(store, job, "d1")[1]
        enqueued[delivery_id] = time.monotonic()
        sender.kick()
    wait_until(lambda: delivered(store, *enqueued), timeout=30, what="the healthy consumer's pushes")
    accepted = {a.delivery_id: a.received_at for a in consumer.attempts if a.outcome == "accepted"}
    delays = [accepted[d] - t for d, t in enqueued.items()]
    print(f"healthy push delay beside a hanging consumer: median {statistics.median(delays):.3f} s, "
          f"max {max(delays):.3f} s over {len(delays)} pushes")
    assert max(delays) < 5.0, delays        # a functional bound, far below the hanging sends' 10 s timeout
    assert len(consumer.pushes) == 41 and consumer.duplicates == 0

    # The hanging consumer got no more than its own share at once, and its pushes wait.
    assert hanging.most_open <= 2 and hanging.accepted <= 2
    assert not any(store.get_push(d).delivered_at for d in stuck)
    assert all(store.get_push(d).next_attempt_at is not None for d in stuck)
    hanging.close()     # its sends fail at once now: they are retried later, not parked (park_after is a day)
    wait_until(lambda: sum(store.get_push(d).attempts for d in stuck) >= 2, what="the dropped sends to settle")
    assert all(store.get_push(d).next_attempt_at is not None for d in stuck)
    assert store.parked_pushes(callback_url=hanging.url) == []


def test_a_timed_out_consumer_is_probed_one_push_at_a_time(store, hanging, senders):
    sender = senders(max_in_flight=4, consumer_in_flight=2, timeout=0.3, initial_backoff=0.05, max_backoff=0.1)
    _, stuck = job_pushes(store, hanging.url, [f"h{i}" for i in range(9)])
    sender.kick()
    # Two sends at first; after they time out, one probe at a time.
    wait_until(lambda: hanging.accepted >= 5, what="several probes")
    assert hanging.most_open <= 2
    opened = hanging.most_open
    wait_until(lambda: hanging.accepted >= 8, what="more probes")
    assert "Timeout" in " ".join(store.get_push(d).last_error or "" for d in stuck)
    assert hanging.most_open == opened <= 2     # later probes never opened more at once
    hanging.close()


def test_a_consumer_down_past_park_after_has_its_pushes_parked(store, consumers, senders, caplog):
    caplog.set_level(logging.ERROR, logger="dmwsi.push.sender")
    down, healthy = consumers(), consumers()
    down.stop()
    sender = senders(park_after=0.5, initial_backoff=0.05, max_backoff=0.1)
    job, ids = job_pushes(store, down.url, ["d1", "d2", "d3", "d4"])          # 5 pushes
    _, good = job_pushes(store, healthy.url, ["d1", "d2"])
    started = time.monotonic()
    sender.kick()
    wait_until(lambda: parked(store, *ids), what="the down consumer's pushes to be parked")
    assert time.monotonic() - started >= 0.5        # not before park_after
    assert delivered(store, *good) and store.parked_pushes(callback_url=healthy.url) == []

    # Visible: listed in enqueue order with the reason, by consumer and by job, page by page.
    listed = store.parked_pushes(callback_url=down.url)
    assert [p.delivery_id for p in listed] == ids
    assert all(p.last_error.startswith("parked: consumer failing since ") and "ConnectionError" in p.last_error
               for p in listed)
    assert [p.delivery_id for p in store.parked_pushes(job_id=job.job_id)] == ids
    first = store.parked_pushes(callback_url=down.url, limit=2)
    assert [p.delivery_id for p in first + store.parked_pushes(callback_url=down.url, after=first[-1].delivery_id)] \
        == ids
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(down.url in m and "parked" in m for m in errors)

    # Not retried further.
    tried = sum(store.get_push(d).attempts for d in ids)
    time.sleep(0.5)     # five backoffs of the consumer
    assert sum(store.get_push(d).attempts for d in ids) == tried

    # A push enqueued later to the consumer still down is tried at its next probe, and parked.
    sub = store.enqueue_push("op", down.url, "EventOccurred", {}, stream="subscription:s1", sequence=1)
    wait_until(lambda: parked(store, sub), what="the later push to be parked")
    assert store.get_push(sub).attempts == 1


def test_parked_pushes_are_redelivered_with_their_own_delivery_ids(store, consumer, senders):
    consumer.stop()
    sender = senders(park_after=0.3, initial_backoff=0.05, max_backoff=0.1)
    job, ids = job_pushes(store, consumer.url, ["d1", "d2", "d3"])
    sender.kick()
    wait_until(lambda: parked(store, *ids), what="parking")
    assert sender.redeliver(callback_url=consumer.url + "/other") == {}     # selects nothing
    consumer.start()                                                        # back, on the same URL
    time.sleep(0.3)
    assert consumer.attempts == []                                          # parked stays parked

    assert sender.redeliver(job_id=job.job_id) == {consumer.url: len(ids)}
    wait_until(lambda: delivered(store, *ids), what="re-delivery")
    got = consumer.pushes_of(job.job_id)
    # The ids and numbers enqueued (two at a time may arrive in either order), JobCompleted last.
    assert [(p["sequence"], p["deliveryId"]) for p in sorted(got, key=lambda p: p["sequence"])] == \
        list(enumerate(ids, 1))
    assert got[-1]["operation"] == "JobCompleted"
    assert consumer.duplicates == 0 and len(consumer.attempts) == len(ids)  # each exactly once
    assert store.parked_pushes(callback_url=consumer.url) == []
    assert all(store.get_push(d).attempts == 1 for d in ids)                # a new retry series
    assert sender.redeliver(delivery_ids=ids) == {}                         # delivered: nothing to redo


def test_a_push_received_before_parking_is_removed_as_a_duplicate(store, consumer, senders):
    """The consumer took the push but answered too late (timed out): parked,
    re-delivered, and de-duplicated by its delivery id."""
    consumer.delay = 0.6                    # beyond the sender's timeout
    sender = senders(timeout=0.2, park_after=0.3, initial_backoff=0.05, max_backoff=0.1)
    job = make_job(store, consumer.url, devices=["d1"])
    delivery_id = finish(store, job, "d1")[1]
    sender.kick()
    wait_until(lambda: parked(store, delivery_id), what="parking")
    consumer.delay = 0
    wait_until(lambda: consumer.pushes, what="the late push to be processed")
    assert sender.redeliver(delivery_ids=[delivery_id]) == {consumer.url: 1}
    wait_until(lambda: delivered(store, delivery_id), what="re-delivery")
    wait_until(lambda: consumer.duplicates >= 1, what="the re-delivery to be seen")
    assert [p["deliveryId"] for p in consumer.pushes] == [delivery_id]       # once, whatever arrived twice


def test_a_faulting_consumer_is_up_and_is_not_parked(store, consumer, senders):
    """A SOAP fault is an answer: the push fails, the consumer is not down."""
    consumer.fail("fault", times=6)
    sender = senders(park_after=0.2, initial_backoff=0.05, max_backoff=0.1)
    job = make_job(store, consumer.url, devices=["d1"])
    delivery_id = finish(store, job, "d1")[1]
    sender.kick()
    wait_until(lambda: delivered(store, delivery_id), what="delivery after faults")
    assert store.get_push(delivery_id).attempts == 7


def test_redeliver_is_not_for_the_reactor_thread(running_reactor, store, senders):
    from twisted.internet.threads import blockingCallFromThread

    sender = senders()
    with pytest.raises(RuntimeError, match="off the reactor thread"):
        blockingCallFromThread(running_reactor, sender.redeliver, callback_url="http://x")


def test_new_push_settings_have_defaults_and_are_checked():
    settings = check_settings(FAST)
    assert (settings["consumer_in_flight"], settings["park_after"]) == (DEFAULTS["consumer_in_flight"],
                                                                        DEFAULTS["park_after"]) == (2, 86400.0)
    for change in ({"consumer_in_flight": 0}, {"consumer_in_flight": 5}, {"park_after": 0},
                   {"park_after": "1"}, {"consumer_in_flight": 1.0}):
        with pytest.raises(ConfigError):
            check_settings({**FAST, **change})          # FAST has max_in_flight 4
