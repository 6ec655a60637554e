"""Per-device commands as rows: written by create_job, read by claiming and by
result pages (a fixed number of queries per page)."""

import sqlite_utils
import pytest

from dmwsi.records import Command, Job, JobTarget, ResultItem
from dmwsi.store import ConflictError, SQLiteStore
from dmwsi.store.migrations import migrate

from .conftest import T0, at

COMMON = [Command("Get", "./DevInfo/Man", seq=1)]


def own(value):
    return [Command("Replace", "./Vendor/Setting", value, seq=1), Command("Exec", "./Vendor/Apply", seq=2)]


def bulk_job(store, devices, per_device):
    targets = [JobTarget(d, commands=per_device[d]) if d in per_device else d for d in devices]
    return store.create_job(Job("op", "SubmitBulkOperation"), COMMON, targets, now=T0).job_id


def finish(store, job_id, device_ids):
    for d in device_ids:
        store.set_target_state(job_id, d, "succeeded", now=at(1))
        store.add_results(job_id, d, [ResultItem(uri="./Vendor/Setting", status_code=200, command_seq=1)])


def test_each_device_gets_its_own_commands_or_the_jobs(store):
    job_id = bulk_job(store, ["a", "b", "c"], {"a": own("1"), "c": own("3")})
    claimed = {d: store.claim_targets(d, at(0))[0] for d in ("a", "b", "c")}
    assert [(c.action, c.value, c.seq, c.job_id) for c in claimed["a"].commands] == [
        ("Replace", "1", 1, job_id), ("Exec", None, 2, job_id)]
    assert [c.uri for c in claimed["b"].commands] == ["./DevInfo/Man"]
    assert claimed["c"].commands[0].value == "3"
    # Nothing of it is JSON in the target any more.
    assert claimed["a"].target.params is None and store.get_target(job_id, "a").params is None

    finish(store, job_id, ["a", "b", "c"])
    rows, _ = store.job_results(job_id)
    assert [[c.value for c in r.commands] for r in rows] == [["1", None], [None], ["3", None]]


def test_bad_per_device_commands_leave_no_rows(store):
    with pytest.raises(ValueError, match="empty command list"):
        bulk_job(store, ["a"], {"a": []})
    with pytest.raises(ConflictError):
        bulk_job(store, ["a"], {"a": [Command("Get", "./A", seq=1), Command("Get", "./B", seq=1)]})
    conn = store._conn
    assert [conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("jobs", "job_targets", "device_commands")] == [0, 0, 0]


def _statements(store, call):
    statements = []
    store._conn.set_trace_callback(statements.append)
    try:
        result = call()
    finally:
        store._conn.set_trace_callback(None)
    return result, len(statements)


def test_a_results_page_costs_the_same_queries_whatever_its_size(store):
    devices = [f"d{i:04d}" for i in range(600)]
    job_id = bulk_job(store, devices, {d: own(d) for d in devices[::2]})
    finish(store, job_id, devices)
    (small, _), few = _statements(store, lambda: store.job_results(job_id, limit=5))
    (large, _), many = _statements(store, lambda: store.job_results(job_id, limit=500))
    assert len(small) == 5 and len(large) == 500
    assert few == many <= 7        # BEGIN, job, targets, commands, own commands, items, COMMIT
    assert large[498].commands[0].value == devices[498] and [c.uri for c in large[499].commands] == ["./DevInfo/Man"]
    assert all(len(r.items) == 1 for r in large)


def test_migration_8_moves_per_device_json_to_rows(tmp_path):
    path = tmp_path / "v7.db"
    db = sqlite_utils.Database(path)
    migrate(db, target=7)
    db.conn.executescript(
        """
        INSERT INTO jobs (job_id, principal, operation, created_at, updated_at)
            VALUES ('j', 'op', 'SubmitBulkOperation', '2024-01-01T00:00:00.000000Z', '2024-01-01T00:00:00.000000Z');
        INSERT INTO job_commands (job_id, seq, action, uri) VALUES ('j', 1, 'Get', './DevInfo/Man');
        INSERT INTO job_targets (job_id, device_id, params) VALUES ('j', 'own',
            '{"commands":[{"action":"Replace","uri":"./A","value":"v","seq":1},{"action":"Exec","uri":"./B","seq":2}]}');
        INSERT INTO job_targets (job_id, device_id, params) VALUES ('j', 'kept',
            '{"commands":[{"action":"Copy","uri":"./C","source_uri":"./D"}],"note":"x"}');
        INSERT INTO job_targets (job_id, device_id) VALUES ('j', 'common');
        """
    )
    db.close()
    store = SQLiteStore(path)
    try:
        rows, _ = store.job_results("j", include_unfinished=True)
        by_device = {r.device_id: [(c.seq, c.action, c.uri, c.value, c.source_uri) for c in r.commands]
                     for r in rows}
        assert by_device == {
            "common": [(1, "Get", "./DevInfo/Man", None, None)],
            "kept": [(1, "Copy", "./C", None, "./D")],       # numbered by position when it had no seq
            "own": [(1, "Replace", "./A", "v", None), (2, "Exec", "./B", None, None)],
        }
        assert store.get_target("j", "own").params is None
        assert store.get_target("j", "kept").params == {"note": "x"}
        assert [c.uri for c in store.claim_targets("own", at(0))[0].commands] == ["./A", "./B"]
    finally:
        store.close()
