"""Push outbox."""

import pytest

from dmwsi.store import ConflictError, NotFound
from dmwsi.records import Job

from .conftest import at


def test_push_life_cycle(store):
    job = store.create_job(Job("op", "x", delivery_mode="each", callback_url="https://cb"), [], ["d1"])
    first = store.enqueue_push("op", "https://cb", "DeviceResult", {"jobId": job.job_id, "deviceId": "d1"},
                               job_id=job.job_id, now=at(0))
    second = store.enqueue_push("op", "https://cb", "JobCompleted", {"jobId": job.job_id}, job_id=job.job_id, now=at(0))
    later = store.enqueue_push("op", "https://cb", "EventOccurred", {"event": "1226"}, now=at(5))
    assert [p.delivery_id for p in store.due_pushes(at(1))] == [first, second]  # enqueue order
    p = store.get_push(first)
    assert (p.payload, p.attempts, p.created_at, p.next_attempt_at, p.job_id) == (
        {"jobId": job.job_id, "deviceId": "d1"}, 0, at(0), at(0), job.job_id)

    store.mark_failed(first, "connection refused", at(3))
    assert [p.delivery_id for p in store.due_pushes(at(1))] == [second]
    assert [p.delivery_id for p in store.due_pushes(at(5))] == [second, first, later]  # by due time
    p = store.get_push(first)
    assert (p.attempts, p.last_error) == (1, "connection refused")

    store.mark_delivered(first, now=at(6))
    store.mark_delivered(first, now=at(7))  # a duplicate acknowledgement keeps the first time
    p = store.get_push(first)
    assert (p.delivered_at, p.attempts, p.next_attempt_at) == (at(6), 2, None)
    store.mark_failed(first, "late failure report", at(9))  # ignored: already delivered
    assert store.get_push(first).last_error == "connection refused"

    store.mark_failed(second, "HTTP 500, giving up", None)  # abandoned
    assert [p.delivery_id for p in store.due_pushes(at(100))] == [later]
    assert [p.delivery_id for p in store.due_pushes(at(100), limit=1)] == [later]


def test_push_errors(store):
    with pytest.raises(NotFound):
        store.mark_delivered("nope")
    with pytest.raises(NotFound):
        store.mark_failed("nope", "x", None)
    with pytest.raises(ConflictError):
        store.enqueue_push("op", "http://cb", "DeviceResult", {}, job_id="no-such-job")
    with pytest.raises(TypeError):
        store.enqueue_push("op", "http://cb", "DeviceResult", {"x": object()})
    assert store.due_pushes(at(1000)) == []
    assert store.get_push("nope") is None


def test_result_and_push_in_one_transaction(store):
    """The transactional outbox: a result is never recorded without its push."""
    job = store.create_job(Job("op", "x", delivery_mode="each", callback_url="https://cb"), [], ["d1"])
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.set_target_state(job.job_id, "d1", "succeeded")
            store.enqueue_push("op", "https://cb", "DeviceResult", {"d": 1}, job_id=job.job_id, now=at(0))
            raise RuntimeError("crash before commit")
    assert store.get_target(job.job_id, "d1").state == "pending"
    assert store.due_pushes(at(10_000)) == []
    with store.transaction():
        completed = store.set_target_state(job.job_id, "d1", "succeeded")
        store.enqueue_push("op", "https://cb", "DeviceResult", {"d": 1}, job_id=job.job_id, now=at(0))
    assert completed and len(store.due_pushes(at(10_000))) == 1


def test_push_sequence_per_stream(store):
    """next_push_sequence + enqueue_push in one transaction number a stream 1, 2, ..."""
    a = store.create_job(Job("op", "x", delivery_mode="each", callback_url="https://cb"), [], ["d1"])
    assert store.next_push_sequence(a.job_id) == 1
    ids = []
    for stream in (a.job_id, "sub-1", a.job_id, a.job_id, "sub-1"):
        with store.transaction():
            seq = store.next_push_sequence(stream)
            ids.append(store.enqueue_push("op", "https://cb", "X", {"sequence": seq}, stream=stream, sequence=seq))
    assert [(p.stream, p.sequence) for p in map(store.get_push, ids)] == [
        (a.job_id, 1), ("sub-1", 1), (a.job_id, 2), (a.job_id, 3), ("sub-1", 2)]
    assert store.next_push_sequence(a.job_id) == 4 and store.next_push_sequence("other") == 1
    # A number is used once per stream; a rolled-back enqueue frees it again.
    with pytest.raises(ConflictError):
        store.enqueue_push("op", "https://cb", "X", {}, stream=a.job_id, sequence=2)
    with pytest.raises(RuntimeError), store.transaction():
        store.enqueue_push("op", "https://cb", "X", {}, stream=a.job_id, sequence=4)
        raise RuntimeError("rollback")
    assert store.next_push_sequence(a.job_id) == 4
    with pytest.raises(TypeError):
        store.enqueue_push("op", "https://cb", "X", {}, stream=a.job_id)
    with pytest.raises(ValueError):
        store.enqueue_push("op", "https://cb", "X", {}, stream=a.job_id, sequence=0)
    assert store.get_push(store.enqueue_push("op", "https://cb", "X", {})).sequence is None


def test_pending_push_count(store):
    ids = [store.enqueue_push("op", "https://cb", "X", {}, stream="s", sequence=n, now=at(0)) for n in (1, 2, 3)]
    store.enqueue_push("op", "https://cb", "X", {}, stream="t", sequence=1, now=at(0))
    assert store.pending_push_count("s") == 3
    assert store.pending_push_count("s", below_sequence=3) == 2
    store.mark_failed(ids[0], "refused", at(5))           # retrying: still pending
    assert store.pending_push_count("s", below_sequence=3) == 2
    store.mark_delivered(ids[0], now=at(6))
    store.mark_failed(ids[1], "giving up", None)          # abandoned: settled
    assert store.pending_push_count("s", below_sequence=3) == 0
    assert store.pending_push_count("s") == 1 and store.pending_push_count("nope") == 0


def test_reschedule_push_moves_a_pending_push_without_counting_an_attempt(store):
    held = store.enqueue_push("op", "https://cb", "JobCompleted", {}, now=at(0))
    other = store.enqueue_push("op", "https://cb", "DeviceResult", {}, now=at(1))
    assert store.reschedule_push(held, at(10)) is True
    assert [p.delivery_id for p in store.due_pushes(at(5))] == [other]
    p = store.get_push(held)
    assert (p.attempts, p.next_attempt_at, p.last_error) == (0, at(10), None)
    store.mark_delivered(other, now=at(6))
    assert store.reschedule_push(other, at(20)) is False  # delivered stays delivered
    assert store.get_push(other).next_attempt_at is None
    store.mark_failed(held, "giving up", None)
    assert store.reschedule_push(held, at(20)) is False  # abandoned stays abandoned
    with pytest.raises(NotFound):
        store.reschedule_push("nope", at(1))
    with pytest.raises(TypeError):
        store.reschedule_push(held, None)


def test_due_pushes_per_consumer(store):
    """Each consumer's due pushes from its own range: a backlog of one hides nothing of another's."""
    busy = [store.enqueue_push("op", "https://a/cb", "X", {}, now=at(n)) for n in range(50)]
    other = store.enqueue_push("op", "https://b/cb", "X", {}, now=at(60))
    later = store.enqueue_push("op", "https://c/cb", "X", {}, now=at(100))
    assert [p.delivery_id for p in store.due_pushes(at(70), limit=5)] == busy[:5]   # all consumers: a's only
    assert store.due_consumers(at(70)) == ["https://a/cb", "https://b/cb"]           # c's is not due yet
    assert [p.delivery_id for p in store.due_pushes(at(70), limit=5, callback_url="https://b/cb")] == [other]
    assert [p.delivery_id for p in store.due_pushes(at(70), limit=2, callback_url="https://a/cb")] == busy[:2]
    assert store.due_pushes(at(70), callback_url="https://c/cb") == []
    store.mark_failed(busy[0], "refused", at(200))              # a's earliest is now its second
    assert store.due_pushes(at(70), limit=1, callback_url="https://a/cb")[0].delivery_id == busy[1]
    for d in busy[1:]:
        store.mark_delivered(d, now=at(80))
    assert store.due_consumers(at(150)) == ["https://b/cb", "https://c/cb"]          # a's one is due at 200
    assert store.due_consumers(at(300)) == ["https://a/cb", "https://b/cb", "https://c/cb"]
    assert store.due_consumers(at(0)) == [] and later


def test_park_list_and_redeliver(store):
    job = store.create_job(Job("op", "x", delivery_mode="each", callback_url="https://a/cb"), [], ["d1"])
    ids = [store.enqueue_push("op", "https://a/cb", "X", {"n": n}, job_id=job.job_id if n < 3 else None,
                              now=at(n)) for n in range(5)]
    kept = store.enqueue_push("op", "https://b/cb", "X", {}, now=at(0))
    store.mark_failed(ids[0], "timeout", at(1))
    store.mark_delivered(ids[4], now=at(2))
    assert store.park_pushes("https://a/cb", "parked: down", batch=2) == 4    # in batches of 2
    assert store.due_consumers(at(100)) == ["https://b/cb"]
    assert store.get_push(kept).next_attempt_at == at(0)                    # another consumer's: untouched
    assert store.park_pushes("https://a/cb", "again") == 0
    assert store.get_push(ids[4]).delivered_at == at(2)                     # delivered: not parked
    p = store.get_push(ids[0])
    assert (p.next_attempt_at, p.delivered_at, p.last_error, p.attempts) == (None, None, "parked: down", 1)
    # A failure reported for a push parked while in flight leaves it parked.
    store.mark_failed(ids[0], "late timeout", at(50))
    assert store.get_push(ids[0]).next_attempt_at is None
    store.mark_failed(kept, "giving up", None)                               # abandoned = parked too

    assert [p.delivery_id for p in store.parked_pushes()] == ids[:4] + [kept]
    assert [p.delivery_id for p in store.parked_pushes(callback_url="https://a/cb")] == ids[:4]
    assert [p.delivery_id for p in store.parked_pushes(job_id=job.job_id)] == ids[:3]
    page = store.parked_pushes(callback_url="https://a/cb", limit=3)
    assert [p.delivery_id for p in page] == ids[:3]
    assert [p.delivery_id for p in store.parked_pushes(callback_url="https://a/cb", after=page[-1].delivery_id)] \
        == [ids[3]]
    with pytest.raises(NotFound):
        store.parked_pushes(after="nope")
    with pytest.raises(ValueError):
        store.parked_pushes(limit=0)

    # Re-delivered: due at once, attempts from 0, same id and payload.
    assert store.redeliver_pushes(delivery_ids=[ids[1], ids[1], ids[4], "nope"], now=at(60)) == {"https://a/cb": 1}
    p = store.get_push(ids[1])
    assert (p.next_attempt_at, p.attempts, p.payload, p.delivery_id) == (at(60), 0, {"n": 1}, ids[1])
    assert store.redeliver_pushes(job_id=job.job_id, now=at(61), batch=1) == {"https://a/cb": 2}
    assert store.redeliver_pushes(callback_url="https://a/cb", now=at(62)) == {"https://a/cb": 1}
    assert store.parked_pushes(callback_url="https://a/cb") == []
    assert [p.delivery_id for p in store.due_pushes(at(100), callback_url="https://a/cb")] == \
        [ids[1], ids[0], ids[2], ids[3]]                                         # by their new due time
    assert store.redeliver_pushes(callback_url="https://b/cb", job_id=job.job_id) == {}
    with pytest.raises(TypeError):
        store.redeliver_pushes()
