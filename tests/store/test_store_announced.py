"""The durable "announced" marker on final targets, and busy_timeout."""

import sqlite3
import threading
import time

import pytest

from dmwsi.records import TARGET_TERMINAL_STATES, Job, JobTarget
from dmwsi.store import SQLiteStore, open_store
from dmwsi.store import migrations
from dmwsi.store.migrations import FINAL_STATES_SQL, migrate

from .conftest import T0, at


def _job(store, devices, **kw):
    return store.create_job(Job("op", "GetDeviceData", **kw), targets=devices, now=T0).job_id


def test_final_targets_are_unannounced_until_marked(store):
    job_id = _job(store, ["d3", "d1", "d2", "d4", JobTarget("d0", state="refused", refused_reason="policy")])
    # Refused at creation is final, so it waits for its announcement too.
    assert store.unannounced_targets(job_id, 10) == ["d0"]
    store.claim_targets("d1", now=at(1))
    store.set_target_state(job_id, "d1", "succeeded", now=at(2))
    store.set_target_state(job_id, "d3", "failed", now=at(2))
    assert store.unannounced_targets(job_id, 10) == ["d0", "d1", "d3"]
    assert store.unannounced_targets(job_id, 2) == ["d0", "d1"]
    assert store.jobs_with_unannounced_targets() == [job_id]

    store.mark_announced(job_id, ["d0", "d1"], now=at(3))
    assert store.unannounced_targets(job_id, 10) == ["d3"]
    store.mark_announced(job_id, ["d3"])
    assert store.unannounced_targets(job_id, 10) == []
    assert store.jobs_with_unannounced_targets() == []


def test_cancel_and_expiry_leave_their_targets_to_announce(store):
    cancelled = _job(store, ["a", "b"])
    expired = _job(store, ["c"], expires_at=at(5))
    store.cancel_job(cancelled, now=at(1))
    store.expire_jobs(now=at(10))
    assert store.jobs_with_unannounced_targets() == sorted([cancelled, expired])
    assert store.unannounced_targets(cancelled, 10) == ["a", "b"]
    assert store.unannounced_targets(expired, 10) == ["c"]


def test_mark_announced_ignores_open_unknown_and_already_announced_targets(store):
    job_id = _job(store, ["open", "done"])
    store.set_target_state(job_id, "done", "succeeded", now=at(1))
    store.mark_announced(job_id, ["done"], now=at(2))
    # An open target is not announced by marking it: when it finishes it
    # must still be announced.  A second mark keeps the first time.
    store.mark_announced(job_id, ["open", "done", "nobody"], now=at(3))
    store.set_target_state(job_id, "open", "failed", now=at(4))
    assert store.unannounced_targets(job_id, 10) == ["open"]
    announced = store._conn.execute(
        "SELECT announced_at FROM job_targets WHERE job_id = ? AND device_id = 'done'", (job_id,)
    ).fetchone()[0]
    assert announced == "2024-05-01T12:02:00.000000Z"


def test_mark_announced_is_undone_with_its_transaction(store):
    job_id = _job(store, ["a"])
    store.set_target_state(job_id, "a", "succeeded", now=at(1))
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.mark_announced(job_id, ["a"])
            raise RuntimeError("the pushes could not be enqueued")
    assert store.unannounced_targets(job_id, 10) == ["a"]


def test_unannounced_lookup_reads_only_the_backlog_of_a_big_job(store):
    job_id = _job(store, [f"dev{i:06d}" for i in range(100_000)])
    store.cancel_job(job_id, now=at(1))
    store.mark_announced(job_id, [f"dev{i:06d}" for i in range(99_990)])
    started = time.perf_counter()
    assert store.unannounced_targets(job_id, 500) == [f"dev{i:06d}" for i in range(99_990, 100_000)]
    assert store.jobs_with_unannounced_targets() == [job_id]
    assert time.perf_counter() - started < 0.05
    # The query reads the partial index (INDEXED BY would fail, not fall
    # back to a scan of the job's 100,000 rows, if its terms stopped matching).
    statements = []
    store._conn.set_trace_callback(statements.append)
    store.unannounced_targets(job_id, 10)
    store._conn.set_trace_callback(None)
    (sql,) = statements
    plan = " ".join(r[-1] for r in store._conn.execute("EXPLAIN QUERY PLAN " + sql))
    assert "job_targets_unannounced" in plan


def test_frozen_final_states_of_migration_7_are_the_final_states():
    assert FINAL_STATES_SQL == "(" + ", ".join(f"'{s}'" for s in TARGET_TERMINAL_STATES) + ")"


def test_migration_7_marks_targets_the_old_code_announced(tmp_path):
    path = tmp_path / "v6.db"
    store = SQLiteStore(path)
    store.close()
    # Rebuild the file at version 6, as the previous release left it.
    path.unlink()
    import sqlite_utils
    db = sqlite_utils.Database(path)
    migrate(db, target=6)
    db.conn.executescript(
        """
        INSERT INTO jobs (job_id, principal, operation, created_at, updated_at)
            VALUES ('j', 'op', 'GetDeviceData', '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z');
        INSERT INTO job_targets (job_id, device_id, state, finished_at)
            VALUES ('j', 'done', 'succeeded', '2024-01-01T00:00:01.000000Z');
        INSERT INTO job_targets (job_id, device_id, state) VALUES ('j', 'refused', 'refused');
        INSERT INTO job_targets (job_id, device_id, state) VALUES ('j', 'open', 'pending');
        """
    )
    db.close()
    store = SQLiteStore(path)
    try:
        assert store.schema_version() == migrations.LATEST_VERSION
        rows = dict(store._conn.execute("SELECT device_id, announced_at FROM job_targets").fetchall())
        assert rows["done"] == "2024-01-01T00:00:01.000000Z"
        assert rows["refused"] is not None and rows["open"] is None
        assert store.jobs_with_unannounced_targets() == []
        store.set_target_state("j", "open", "succeeded")
        assert store.unannounced_targets("j", 10) == ["open"]
    finally:
        store.close()


def test_busy_timeout_is_configurable_in_seconds(tmp_path):
    quick = open_store(tmp_path / "s.db", busy_timeout=0.2)
    default = SQLiteStore(tmp_path / "s.db")
    try:
        assert quick._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 200
        assert default._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
        holding, release = threading.Event(), threading.Event()

        def hold_write_lock():
            with default.transaction():
                default.create_job(Job("p", "op"), now=T0)
                holding.set()
                release.wait(5)

        writer = threading.Thread(target=hold_write_lock)
        writer.start()
        holding.wait(5)
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            quick.create_job(Job("p", "op"), now=T0)
        waited = time.monotonic() - started
        release.set()
        writer.join()
        assert 0.15 < waited < 2
    finally:
        quick.close()
        default.close()


def test_busy_timeout_must_be_a_duration(tmp_path):
    with pytest.raises(ValueError, match="busy_timeout"):
        SQLiteStore(tmp_path / "s.db", busy_timeout=-1)
