"""Transactions and use from several threads (WSGI pool + reactor)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from dmwsi.store import ConflictError
from dmwsi.records import Device, Job, LogEntry

from .conftest import at


def run_together(n, fn):
    """Run fn(i) in n threads released at the same moment."""
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def test_each_thread_has_its_own_connection(store):
    conns = run_together(4, lambda i: id(store._conn))
    assert len(set(conns)) == 4 and id(store._conn) not in conns


def test_concurrent_writers_all_succeed(store):
    def work(i):
        job = store.create_job(Job(f"p{i}", "x", client_job_id="same"), [], [f"d{i}-{k}" for k in range(200)])
        store.append_log(LogEntry("x", True, job_id=job.job_id))
        return job.job_id

    ids = run_together(8, work)
    assert len(set(ids)) == 8
    assert len(store.list_jobs(limit=100)[0]) == 8
    assert len(store.query_log(limit=100)[0]) == 8


def test_same_client_job_id_from_racing_requests_creates_one_job(store):
    def work(i):
        try:
            return store.create_job(Job("op", "x", client_job_id="retry-1"), [], ["d1"]).job_id
        except ConflictError as e:
            return e

    results = run_together(6, work)
    created = [r for r in results if isinstance(r, str)]
    assert len(created) == 1
    assert all(r.job_id == created[0] for r in results if not isinstance(r, str))


def test_a_target_is_claimed_by_exactly_one_session(store):
    jobs = [store.create_job(Job("op", "x"), [], ["dev"], now=at(i)).job_id for i in range(20)]
    claimed = run_together(8, lambda i: [w.job.job_id for w in store.claim_targets("dev", at(30))])
    flat = [j for c in claimed for j in c]
    assert sorted(flat) == sorted(jobs)


def test_concurrency_limit_holds_under_parallel_claims(store):
    store.create_job(Job("op", "x", concurrency=3), [], [f"d{i}" for i in range(16)])
    claimed = run_together(16, lambda i: len(store.claim_targets(f"d{i}", at(1))))
    assert sum(claimed) == 3


def test_readers_are_not_blocked_by_an_open_write_and_see_committed_data_only(store):
    in_tx, release = threading.Event(), threading.Event()
    seen = {}

    def writer():
        with store.transaction():
            store.upsert_device(Device("dev-new"))
            in_tx.set()
            release.wait(10)

    def reader():
        in_tx.wait(10)
        seen["during"] = store.get_device("dev-new")
        seen["jobs"] = store.list_jobs()

    w = threading.Thread(target=writer)
    r = threading.Thread(target=reader)
    w.start()
    r.start()
    r.join(10)
    assert not r.is_alive(), "reader blocked behind the writer"
    release.set()
    w.join(10)
    assert seen["during"] is None and seen["jobs"] == ([], None)
    assert store.get_device("dev-new") is not None


def test_transaction_groups_calls_and_rolls_back_together(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.upsert_device(Device("d1"))
            store.create_job(Job("op", "x"), [], ["d1"])
            raise RuntimeError("abort")
    assert store.get_device("d1") is None and store.list_jobs() == ([], None)


def test_failed_call_inside_a_transaction_undoes_only_itself(store):
    store.create_job(Job("op", "x", client_job_id="c1"), [], ["d1"])
    with store.transaction():
        store.upsert_device(Device("d1"))
        with pytest.raises(ConflictError):
            store.create_job(Job("op", "x", client_job_id="c1"), [], ["d1", "d2"])
        store.upsert_device(Device("d2"))
    assert store.get_device("d1") and store.get_device("d2")
    assert len(store.list_jobs()[0]) == 1
