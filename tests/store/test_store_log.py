"""The append-only transaction log."""

import sqlite3

import pytest

from dmwsi.store import Store, SQLiteStore
from dmwsi.records import LogEntry

from .conftest import T0, at


def test_append_and_read_back_every_field(store):
    entry = LogEntry(
        "SubmitBulkOperation", True, principal="op", job_id="j1", device_id="d1", subscriber_id="s1",
        summary="Replace ./X on 3 devices", device_count=3, error_code=None, customer_care=True,
        billing_account="acct-9", billing_units=3, time=T0,
    )
    log_id = store.append_log(entry)
    (row,), cursor = store.query_log()
    assert row == LogEntry(**{**entry.__dict__, "id": log_id}) and cursor is None


def test_time_defaults_to_now_and_ids_increase(store):
    a = store.append_log(LogEntry("GetDeviceData", False, error_code="DeviceUnreachable"))
    b = store.append_log(LogEntry("GetDeviceData", True))
    assert b > a
    rows, _ = store.query_log()
    assert rows[0].time is not None and rows[0].time.tzinfo is not None and rows[0].success is False


def test_query_filters_and_paging(store):
    for i in range(10):
        store.append_log(LogEntry("Op", i % 3 != 0, principal="p1" if i % 2 else "p2",
                                  job_id=f"j{i % 2}", device_id=f"d{i % 5}", time=at(i)))
    assert [r.time for r in store.query_log(job_id="j1")[0]] == [at(1), at(3), at(5), at(7), at(9)]
    assert [r.time for r in store.query_log(device_id="d2")[0]] == [at(2), at(7)]
    assert len(store.query_log(principal="p2")[0]) == 5
    assert [r.time for r in store.query_log(since=at(3), until=at(6))[0]] == [at(3), at(4), at(5)]
    assert [r.time for r in store.query_log(principal="p1", since=at(4))[0]] == [at(5), at(7), at(9)]
    page, cursor = store.query_log(limit=4)
    seen = list(page)
    store.append_log(LogEntry("Late", True, time=at(20)))  # appended while paging: shows up at the end
    while cursor:
        page, cursor = store.query_log(after=cursor, limit=4)
        seen += page
    assert [r.operation for r in seen] == ["Op"] * 10 + ["Late"]
    assert len({r.id for r in seen}) == 11


def test_query_by_operation_success_and_subscriber(store):
    store.append_log(LogEntry("GetDeviceData", True, subscriber_id="s1", time=at(0)))
    store.append_log(LogEntry("GetDeviceData", False, subscriber_id="s2", time=at(1)))
    store.append_log(LogEntry("SetDeviceData", False, subscriber_id="s1", time=at(2)))
    assert [r.time for r in store.query_log(operation="GetDeviceData")[0]] == [at(0), at(1)]
    assert [r.time for r in store.query_log(success=False)[0]] == [at(1), at(2)]
    assert [r.time for r in store.query_log(success=True)[0]] == [at(0)]
    assert [r.time for r in store.query_log(subscriber_id="s1", success=False)[0]] == [at(2)]


def test_store_api_has_no_way_to_change_the_log():
    for cls in (Store, SQLiteStore):
        names = [n for n in dir(cls) if "log" in n.lower() and not n.startswith("_")]
        assert sorted(names) == ["append_log", "query_log"]


def test_database_refuses_update_and_delete(store, tmp_path):
    store.append_log(LogEntry("Op", True))
    conn = sqlite3.connect(tmp_path / "store.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE transaction_log SET success = 0")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM transaction_log")
    conn.close()
    assert store.query_log()[0][0].success is True
