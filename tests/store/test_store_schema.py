"""Connection settings, schema versioning and forward migrations."""

import re
import sqlite3
from pathlib import Path

import pytest
import sqlite_utils

from dmwsi.store import SchemaError, SQLiteStore, StoreError, open_store
from dmwsi.store import migrations
from dmwsi.store.migrations import LATEST_VERSION, MIGRATIONS, Migration, migrate
from dmwsi.records import Job

from .conftest import T0

FROZEN_V1 = Path(__file__).parent / "fixtures" / "schema_v1.sql"


def schema_of(path):
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
    ).fetchall()
    conn.close()
    return [(t, n, re.sub(r"\s+", " ", s or "").strip()) for t, n, s in rows]


def make_v1_file(path):
    conn = sqlite3.connect(path)
    conn.executescript(FROZEN_V1.read_text())
    conn.executescript(
        """
        INSERT INTO subscribers VALUES ('sub1', '+441', 'Ann', 'gold', '{}', '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z');
        INSERT INTO devices (device_id, msisdn, subscriber_id, man, mod, fwv, registered_at)
            VALUES ('dev1', '+441', 'sub1', 'Acme', 'Phone1', '1.9', '2024-01-01T00:00:00.000000Z');
        INSERT INTO jobs (job_id, principal, operation, created_at, updated_at)
            VALUES ('job1', 'op', 'GetDeviceData', '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z');
        INSERT INTO job_targets (job_id, device_id, state, finished_at) VALUES ('job1', 'dev1', 'succeeded', '2024-01-01T00:00:01.000000Z');
        INSERT INTO results (job_id, device_id, seq, uri, value) VALUES ('job1', 'dev1', 1, './DevInfo/Man', 'Acme');
        INSERT INTO transaction_log (time, principal, operation, job_id, success)
            VALUES ('2024-01-01T00:00:00.000000Z', 'op', 'GetDeviceData', 'job1', 1);
        """
    )
    conn.commit()
    conn.close()


def test_new_file_is_at_latest_version_with_wal_and_foreign_keys(store, tmp_path):
    assert store.schema_version() == LATEST_VERSION == len(MIGRATIONS)
    conn = store._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == [m.version for m in MIGRATIONS]


def test_migration_versions_are_strictly_increasing():
    versions = [m.version for m in MIGRATIONS]
    assert versions == sorted(set(versions)) and versions[0] == 1


def test_migration_1_still_matches_the_frozen_v1_schema(tmp_path):
    db = sqlite_utils.Database(tmp_path / "m1.db")
    migrate(db, target=1)
    db.close()
    frozen = tmp_path / "frozen.db"
    make_v1_file(frozen)
    assert schema_of(tmp_path / "m1.db") == schema_of(frozen)


def test_v1_file_migrates_to_latest_and_keeps_data(tmp_path):
    path = tmp_path / "old.db"
    make_v1_file(path)
    store = SQLiteStore(path)
    try:
        assert store.schema_version() == LATEST_VERSION
        dev = store.get_device("dev1")
        assert (dev.man, dev.fwv, dev.subscriber_id, dev.alias) == ("Acme", "1.9", "sub1", None)
        assert [d.device_id for d in store.get_subscriber("sub1").devices] == ["dev1"]
        job = store.get_job("job1")
        assert job.customer_care is False and job.state == "pending"
        rows, _ = store.job_results("job1")
        assert rows[0].items[0].value == "Acme"
        logs, _ = store.query_log(job_id="job1")
        assert logs[0].success and logs[0].billing_units is None and logs[0].customer_care is False
        # Tables and columns added by later migrations work on the old file.
        store.update_device("dev1", alias="alias-1")
        assert store.find_device(alias="alias-1").device_id == "dev1"
        assert store.acknowledge("job1", "op", device_ids=["dev1"]) == 1
        store.enqueue_push("op", "http://cb", "ResultsAvailable", {"jobId": "job1"}, job_id="job1", now=T0)
        assert len(store.due_pushes(T0)) == 1
    finally:
        store.close()
    # Reopening does not re-apply anything.
    again = SQLiteStore(path)
    assert again._conn.execute("SELECT count(*) FROM schema_version").fetchone()[0] == LATEST_VERSION
    again.close()


def test_failed_migration_leaves_the_file_at_its_old_version(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    make_v1_file(path)

    def broken(db):
        db.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS + [Migration(LATEST_VERSION + 1, "broken", broken)])
    monkeypatch.setattr(migrations, "LATEST_VERSION", LATEST_VERSION + 1)
    with pytest.raises(RuntimeError, match="boom"):
        SQLiteStore(path)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT max(version) FROM schema_version").fetchone()[0] == 1
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "half_done" not in names and "outbox" not in names  # v2, v3 rolled back too
    conn.close()


def test_newer_file_is_refused(tmp_path):
    path = tmp_path / "new.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (?, 'future', 'x')", (LATEST_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="newer"):
        SQLiteStore(path)


def test_foreign_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE something (x)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match="not a dmwsi store"):
        SQLiteStore(path)


def test_memory_database_is_refused():
    with pytest.raises(ValueError, match="file path"):
        SQLiteStore(":memory:")


def test_open_store_returns_a_working_sqlite_store(tmp_path):
    s = open_store(tmp_path / "x.db")
    assert isinstance(s, SQLiteStore)
    s.create_job(Job("p", "op"), now=T0)
    s.close()
    with pytest.raises(StoreError, match="store is closed"):
        s.get_job("x")
