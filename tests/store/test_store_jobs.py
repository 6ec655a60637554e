"""Jobs: creation, work claiming, state, results, paging, cancel, expiry."""

import sqlite3

import pytest

from dmwsi.store import ConflictError, DuplicateJob, IllegalTransition, InvalidCursor, NotFound
from dmwsi.records import (
    TARGET_STATES,
    Command,
    Job,
    JobTarget,
    ResultItem,
)

from .conftest import T0, at


def make_job(store, targets=("dev-a", "dev-b"), now=T0, **kw):
    kw.setdefault("principal", "op")
    kw.setdefault("operation", "GetDeviceData")
    return store.create_job(
        Job(**kw), [Command("Get", "./DevInfo/Man"), Command("Get", "./DevInfo/Mod")], list(targets), now=now
    )


def table_counts(store):
    conn = store._conn
    return {
        t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        for t in ("jobs", "job_commands", "job_targets", "results")
    }


# --- creation -------------------------------------------------------------------


def test_create_job_fills_ids_times_and_state(store):
    job = store.create_job(
        Job("op", "ExecuteCommands", client_job_id="c-1", not_before=at(1), not_after=at(60),
            expires_at=at(120), concurrency=5, atomic=True, delivery_mode="each",
            callback_url="https://cb", params={"depth": 2}, customer_care=True),
        [Command("Replace", "./A", "1", format="int"), Command("Exec", "./B", correlator="c9"),
         Command("Copy", "./C", source_uri="./D")],
        ["dev-b", JobTarget("dev-a", params={"pin": "1234"})],
        now=T0,
    )
    assert job.job_id and job.state == "pending" and job.created_at == job.updated_at == T0
    assert store.get_job(job.job_id) == job
    assert (job.not_before, job.concurrency, job.atomic, job.customer_care, job.params) == (at(1), 5, True, True, {"depth": 2})
    cmds = store.job_commands(job.job_id)
    assert [(c.seq, c.action, c.uri, c.value, c.format, c.correlator, c.source_uri) for c in cmds] == [
        (1, "Replace", "./A", "1", "int", None, None),
        (2, "Exec", "./B", None, None, "c9", None),
        (3, "Copy", "./C", None, None, None, "./D"),
    ]
    assert store.get_target(job.job_id, "dev-a").params == {"pin": "1234"}
    assert store.get_target(job.job_id, "dev-b").state == "pending"
    assert store.job_counts(job.job_id) == {**dict.fromkeys(TARGET_STATES, 0), "pending": 2}


def test_binary_command_values_survive(store):
    job = store.create_job(Job("op", "DeliverContainer"), [Command("Replace", "./X", b"\x00\xffbin")], ["d"])
    assert store.job_commands(job.job_id)[0].value == b"\x00\xffbin"


def test_client_job_id_is_unique_per_principal(store):
    first = make_job(store, client_job_id="mine")
    with pytest.raises(DuplicateJob) as e:
        make_job(store, client_job_id="mine")
    assert e.value.job_id == first.job_id
    other = make_job(store, principal="someone-else", client_job_id="mine")
    assert store.find_job_by_client_id("op", "mine") == first
    assert store.find_job_by_client_id("someone-else", "mine") == other
    assert store.find_job_by_client_id("op", "nope") is None
    assert table_counts(store)["jobs"] == 2


def test_job_whose_targets_are_all_refused_is_completed_at_once(store):
    job = store.create_job(
        Job("secondary", "SubmitBulkOperation"), [],
        [JobTarget("dev-x", state="refused", refused_reason="policy"), JobTarget("ghost", state="refused", error_code="UnknownDevice")],
        now=T0,
    )
    assert job.state == "completed"
    t = store.get_target(job.job_id, "ghost")
    assert (t.state, t.error_code, t.finished_at) == ("refused", "UnknownDevice", T0)


def test_new_target_cannot_start_in_progress(store):
    with pytest.raises(ValueError):
        store.create_job(Job("op", "x"), [], [JobTarget("d", state="inSession")])
    assert table_counts(store)["jobs"] == 0


def test_bad_delivery_mode_and_concurrency(store):
    with pytest.raises(ValueError):
        store.create_job(Job("op", "x", delivery_mode="carrier-pigeon"))
    with pytest.raises(ValueError):
        store.create_job(Job("op", "x", concurrency=0))


def test_failure_mid_write_leaves_no_rows(store):
    """A duplicate device half-way through 20,000 targets: the job row,
    its commands and the 10,000 targets already inserted must all go."""
    targets = [f"dev{i:05d}" for i in range(20_000)]
    targets.insert(10_000, "dev00005")
    with pytest.raises(ConflictError, match="dev00005"):
        make_job(store, targets=targets)
    assert table_counts(store) == dict.fromkeys(("jobs", "job_commands", "job_targets", "results"), 0)


def test_exception_from_target_source_mid_write_leaves_no_rows(store):
    def targets():
        for i in range(5000):
            if i == 2500:
                raise RuntimeError("selector backend died")
            yield f"dev{i}"

    with pytest.raises(RuntimeError):
        store.create_job(Job("op", "x"), [Command("Get", "./A")], targets())
    assert table_counts(store)["jobs"] == 0


def test_error_inside_sqlite_after_targets_rolls_back(store, monkeypatch):
    """Force the failure after every target row is written (the final
    completion check) to prove the whole job is one transaction."""
    real = store._conn
    calls = []

    class Exploding:
        def __getattr__(self, name):
            return getattr(real, name)

        def execute(self, sql, *args):
            if "SELECT NOT EXISTS" in sql:
                calls.append(sql)
                raise sqlite3.OperationalError("disk I/O error (forced)")
            return real.execute(sql, *args)

    monkeypatch.setattr(type(store), "_conn", property(lambda self: Exploding()))
    with pytest.raises(sqlite3.OperationalError, match="forced"):
        make_job(store, targets=[f"d{i}" for i in range(1000)])
    monkeypatch.undo()
    assert calls and table_counts(store)["job_targets"] == 0 and table_counts(store)["jobs"] == 0


def test_job_with_100000_targets(store):
    targets = [f"IMEI:{350000000000000 + i}" for i in range(100_000)]
    job = make_job(store, targets=targets)
    assert store.job_counts(job.job_id)["pending"] == 100_000
    assert store.claim_targets(targets[-1], at(1))[0].job.job_id == job.job_id


def test_get_missing(store):
    assert store.get_job("nope") is None
    assert store.get_target("nope", "x") is None
    assert store.job_commands("nope") == []
    with pytest.raises(NotFound):
        store.job_counts("nope")


# --- listing ----------------------------------------------------------------------


def test_list_jobs_filters_and_pages_newest_first(store):
    ids = [make_job(store, now=at(i), principal="op" if i % 2 else "cc").job_id for i in range(7)]
    jobs, cursor = store.list_jobs(limit=3)
    assert [j.job_id for j in jobs] == ids[:-4:-1] and cursor
    jobs2, cursor2 = store.list_jobs(after=cursor, limit=3)
    jobs3, cursor3 = store.list_jobs(after=cursor2, limit=3)
    assert [j.job_id for j in jobs + jobs2 + jobs3] == ids[::-1] and cursor3 is None
    op_jobs, _ = store.list_jobs(principal="op")
    assert [j.job_id for j in op_jobs] == [ids[5], ids[3], ids[1]]
    store.cancel_job(ids[3])
    assert [j.job_id for j in store.list_jobs(principal="op", state="cancelled")[0]] == [ids[3]]
    with pytest.raises(ValueError):
        store.list_jobs(limit=0)


def test_list_jobs_paging_is_stable_under_inserts(store):
    ids = [make_job(store, now=at(i)).job_id for i in range(6)]
    page1, cursor = store.list_jobs(limit=2)
    # Jobs created while paging, including one with the same timestamp as
    # the cursor row, neither repeat nor push rows off later pages.
    make_job(store, now=at(10))
    make_job(store, now=at(4))
    rest = []
    while cursor:
        page, cursor = store.list_jobs(after=cursor, limit=2)
        rest += page
    seen = [j.job_id for j in page1 + rest]
    assert len(seen) == len(set(seen))
    assert [i for i in seen if i in ids] == ids[::-1]


def test_list_jobs_paging_with_equal_creation_times(store):
    # A bulk submitter can create many jobs within one clock tick; the
    # job_id tie-break must keep every one of them on exactly one page.
    ids = {make_job(store, now=T0).job_id for _ in range(7)}
    seen, cursor = store.list_jobs(limit=2)
    while cursor:
        page, cursor = store.list_jobs(after=cursor, limit=2)
        seen += page
    assert sorted(j.job_id for j in seen) == sorted(ids)


def test_cursors_are_checked(store):
    job = make_job(store)
    with pytest.raises(InvalidCursor):
        store.list_jobs(after="garbage!!")
    for d in ("dev-a", "dev-b"):
        store.set_target_state(job.job_id, d, "succeeded")
    _, results_cursor = store.job_results(job.job_id, limit=1)
    with pytest.raises(InvalidCursor, match="does not belong"):
        store.list_jobs(after=results_cursor)


# --- work for a device -------------------------------------------------------------


def test_due_targets_respect_window_expiry_and_job_state(store):
    early = make_job(store, ["d1"], now=at(0))
    windowed = make_job(store, ["d1"], now=at(1), not_before=at(10), not_after=at(20))
    expiring = make_job(store, ["d1"], now=at(2), expires_at=at(15))
    cancelled = make_job(store, ["d1"], now=at(3))
    store.cancel_job(cancelled.job_id)
    other = make_job(store, ["d2"], now=at(4))

    def due(minute, device="d1"):
        return {w.job_id for w in store.wakeable_targets(at(minute)) if w.device_id == device}

    assert due(5) == {early.job_id, expiring.job_id}
    assert due(10) == {early.job_id, windowed.job_id, expiring.job_id}
    assert due(15) == {early.job_id, windowed.job_id}
    assert due(20) == {early.job_id}
    assert store.get_target(early.job_id, "d1").state == "pending"  # read-only
    assert due(5, "d2") == {other.job_id}
    # Claiming takes the same due targets, oldest job first.
    claimed = store.claim_targets("d1", at(10))
    assert [w.job.job_id for w in claimed] == [early.job_id, windowed.job_id, expiring.job_id]
    item = claimed[1]
    assert item.target.device_id == "d1" and [c.uri for c in item.commands] == ["./DevInfo/Man", "./DevInfo/Mod"]


def test_claim_moves_targets_to_in_progress_once(store):
    j1 = make_job(store, ["d1", "d2"], now=at(0))
    j2 = make_job(store, ["d1"], now=at(1))
    claimed = store.claim_targets("d1", at(5))
    assert [(w.job.job_id, w.target.state, w.target.attempts, w.target.started_at) for w in claimed] == [
        (j1.job_id, "inSession", 1, at(5)),
        (j2.job_id, "inSession", 1, at(5)),
    ]
    assert claimed[0].job.state == "running"
    assert store.claim_targets("d1", at(6)) == []
    assert store.get_job(j1.job_id).state == "running"


def test_claim_limit(store):
    make_job(store, ["d1"], now=at(0))
    j2 = make_job(store, ["d1"], now=at(1))
    assert len(store.claim_targets("d1", at(2), limit=1)) == 1
    assert [w.job.job_id for w in store.claim_targets("d1", at(2))] == [j2.job_id]


def test_claim_respects_job_concurrency(store):
    job = make_job(store, ["d1", "d2", "d3"], concurrency=2)
    assert len(store.claim_targets("d1", at(1))) == 1
    assert len(store.claim_targets("d2", at(1))) == 1
    assert store.claim_targets("d3", at(1)) == []  # two already in progress
    store.set_target_state(job.job_id, "d1", "succeeded")
    assert len(store.claim_targets("d3", at(2))) == 1


def test_target_returned_to_pending_is_retried(store):
    job = make_job(store, ["d1"])
    store.claim_targets("d1", at(1))
    store.set_target_state(job.job_id, "d1", "pending", message="session dropped")
    (item,) = store.claim_targets("d1", at(2))
    assert item.target.attempts == 2 and item.target.message == "session dropped"


# --- state, results, completion --------------------------------------------------


def test_set_target_state_completes_the_job_exactly_once(store):
    job = make_job(store, ["d1", "d2"])
    store.claim_targets("d1", at(1))
    assert store.set_target_state(job.job_id, "d1", "succeeded", now=at(2), status_code=200) is False
    t = store.get_target(job.job_id, "d1")
    assert (t.state, t.status_code, t.finished_at) == ("succeeded", 200, at(2))
    assert store.set_target_state(job.job_id, "d2", "failed", now=at(3), error_code="DeviceUnreachable",
                                  message="no answer to package 0") is True
    assert store.get_job(job.job_id).state == "completed"
    assert store.get_job(job.job_id).updated_at == at(3)
    with pytest.raises(IllegalTransition):          # final is final, even the same state again
        store.set_target_state(job.job_id, "d2", "failed")


def test_set_target_state_errors(store):
    job = make_job(store, ["d1"])
    with pytest.raises(ValueError):
        store.set_target_state(job.job_id, "d1", "exploded")
    with pytest.raises(TypeError):
        store.set_target_state(job.job_id, "d1", "failed", colour="red")
    with pytest.raises(NotFound):
        store.set_target_state(job.job_id, "ghost", "failed")
    assert store.get_target(job.job_id, "d1").state == "pending"


def test_direct_in_progress_marks_job_running(store):
    job = make_job(store, ["d1"])
    store.set_target_state(job.job_id, "d1", "inSession", now=at(1))
    assert store.get_job(job.job_id).state == "running"
    assert store.get_target(job.job_id, "d1").started_at == at(1)


def test_add_results_appends_in_order(store):
    job = make_job(store, ["d1"])
    assert store.add_results(job.job_id, "d1", [ResultItem("./A", "1", "chr", "text/plain", 200, command_seq=1)]) == 1
    assert store.add_results(job.job_id, "d1", [ResultItem("./B", b"\x01", "bin"), ResultItem("./C", None, status_code=404)]) == 2
    store.set_target_state(job.job_id, "d1", "succeeded")
    (row,), _ = store.job_results(job.job_id)
    assert [(i.seq, i.uri, i.value, i.status_code, i.command_seq) for i in row.items] == [
        (1, "./A", "1", 200, 1), (2, "./B", b"\x01", None, None), (3, "./C", None, 404, None),
    ]
    with pytest.raises(NotFound):
        store.add_results(job.job_id, "ghost", [ResultItem("./A")])


def test_job_results_pages_by_device_and_is_stable_while_devices_finish(store):
    devices = [f"d{i:02d}" for i in range(10)]
    job = make_job(store, devices)
    for d in devices[:8:2]:  # d00, d02, d04, d06 finished
        store.add_results(job.job_id, d, [ResultItem("./X", d)])
        store.set_target_state(job.job_id, d, "succeeded")
    page1, cursor = store.job_results(job.job_id, limit=2)
    assert [r.device_id for r in page1] == ["d00", "d02"] and page1[1].items[0].value == "d02"
    # Devices finishing before and after the cursor while the caller pages.
    store.set_target_state(job.job_id, "d01", "failed")
    store.set_target_state(job.job_id, "d09", "failed")
    page2, cursor = store.job_results(job.job_id, after=cursor, limit=2)
    page3, cursor = store.job_results(job.job_id, after=cursor, limit=2)
    assert [r.device_id for r in page2 + page3] == ["d04", "d06", "d09"] and cursor is None
    everything, _ = store.job_results(job.job_id, include_unfinished=True, limit=100)
    assert len(everything) == 10
    with pytest.raises(NotFound):
        store.job_results("nope")


def test_acknowledge_by_cursor_and_by_device(store):
    devices = [f"d{i}" for i in range(6)]
    job = make_job(store, devices)
    for d in devices[:5]:
        store.set_target_state(job.job_id, d, "succeeded")
    page, cursor = store.job_results(job.job_id, limit=2)
    assert store.acknowledge(job.job_id, "op", upto_cursor=cursor) == 2
    assert store.acknowledge(job.job_id, "op", upto_cursor=cursor) == 0  # idempotent
    rows, _ = store.job_results(job.job_id, unacknowledged_by="op")
    assert [r.device_id for r in rows] == ["d2", "d3", "d4"]
    # d5 is unfinished: nothing to acknowledge yet.
    assert store.acknowledge(job.job_id, "op", device_ids=["d3", "d5", "ghost"]) == 1
    assert [r.device_id for r in store.job_results(job.job_id, unacknowledged_by="op")[0]] == ["d2", "d4"]
    assert len(store.job_results(job.job_id, unacknowledged_by="someone-else")[0]) == 5
    with pytest.raises(TypeError):
        store.acknowledge(job.job_id, "op", upto_cursor=cursor, device_ids=["d2"])
    with pytest.raises(NotFound):
        store.acknowledge("nope", "op", device_ids=["d1"])


def test_acknowledge_everything_finished_so_far(store):
    devices = [f"d{i}" for i in range(5)]
    job = make_job(store, devices)
    other = make_job(store, devices)
    for d in devices[:3]:
        store.set_target_state(job.job_id, d, "succeeded")
        store.set_target_state(other.job_id, d, "failed")
    store.set_target_state(job.job_id, "d3", "inSession")
    assert store.acknowledge(job.job_id, "op", device_ids=["d0"]) == 1
    # Neither cursor nor devices: every finished result, counting only new ones.
    assert store.acknowledge(job.job_id, "op") == 2
    assert store.acknowledge(job.job_id, "op") == 0
    assert store.job_results(job.job_id, unacknowledged_by="op")[0] == []
    # Unfinished targets stay open for a later acknowledgement; other jobs are untouched.
    store.set_target_state(job.job_id, "d3", "failed")
    assert [r.device_id for r in store.job_results(job.job_id, unacknowledged_by="op")[0]] == ["d3"]
    assert len(store.job_results(other.job_id, unacknowledged_by="op")[0]) == 3
    assert store.acknowledge(job.job_id, "op") == 1
    with pytest.raises(NotFound):
        store.acknowledge("nope", "op")


def test_cancel_job(store):
    job = make_job(store, ["d1", "d2", "d3", "d4"])
    store.set_target_state(job.job_id, "d3", "succeeded")
    store.set_target_state(job.job_id, "d1", "failed")
    store.claim_targets("d4", at(1))
    cancelled, finished = store.cancel_job(job.job_id, now=at(2))
    assert (cancelled, finished) == (2, ["d1", "d3"])
    assert store.get_job(job.job_id).state == "cancelled"
    assert store.get_target(job.job_id, "d2").state == "cancelled"
    # Cancellation is final for a target in session too (issue 11.4).
    assert (store.get_target(job.job_id, "d4").state, store.get_target(job.job_id, "d4").finished_at) == (
        "cancelled", at(2))
    assert store.claim_targets("d2", at(3)) == []
    # What the session still reports cannot reopen it.
    for late in ("succeeded", "pending", "inSession"):
        with pytest.raises(IllegalTransition):
            store.set_target_state(job.job_id, "d4", late)
    assert store.get_target(job.job_id, "d4").state == "cancelled"
    assert store.get_job(job.job_id).state == "cancelled"
    assert store.cancel_job(job.job_id) == (0, ["d1", "d2", "d3", "d4"])
    with pytest.raises(NotFound):
        store.cancel_job("nope")


def test_expire_jobs(store):
    expiring = make_job(store, ["d1", "d2"], expires_at=at(10), now=at(0))
    window = make_job(store, ["d1"], not_after=at(5), now=at(0.1))
    running_only = make_job(store, ["d3"], expires_at=at(10), now=at(0.2))
    store.claim_targets("d3", at(1))
    keeper = make_job(store, ["d1"], expires_at=at(60), now=at(0.3))
    store.set_target_state(expiring.job_id, "d2", "succeeded")
    assert store.expire_jobs(at(4)) == []
    assert store.expire_jobs(at(10)) == [expiring.job_id, window.job_id]
    assert store.get_job(expiring.job_id).state == "expired"
    assert store.job_counts(expiring.job_id)["timedOut"] == 1
    assert store.job_counts(expiring.job_id)["succeeded"] == 1
    assert store.get_job(running_only.job_id).state == "running"  # nothing pending to expire
    assert store.get_job(keeper.job_id).state == "pending"


def devices(targets):
    return sorted({t.device_id for t in targets})


def test_wakeable_targets_page_round_the_fleet(store):
    make_job(store, ["d3", "d1", "d5"], now=at(0))
    make_job(store, ["d1", "d2"], now=at(1), not_before=at(30))  # d2 not due yet
    make_job(store, ["d4"], now=at(2), expires_at=at(3))  # d4 expired
    done = make_job(store, ["d6"], now=at(4))
    store.set_target_state(done.job_id, "d6", "succeeded")
    store.claim_targets("d5", at(5))  # in progress, nothing pending
    assert devices(store.wakeable_targets(at(10))) == ["d1", "d3"]
    assert devices(store.wakeable_targets(at(10), limit=1)) == ["d1"]
    assert devices(store.wakeable_targets(at(10), after="d1", limit=1)) == ["d3"]
    assert store.wakeable_targets(at(10), after="d3") == []
    assert devices(store.wakeable_targets(at(40))) == ["d1", "d2", "d3"]
    assert {t.free_slots for t in store.wakeable_targets(at(10))} == {None}


def test_wakeable_targets_report_free_concurrency_slots(store):
    job = make_job(store, ["a", "b", "c"], now=at(0), concurrency=2)
    assert {t.free_slots for t in store.wakeable_targets(at(1))} == {2}
    store.claim_targets("a", at(1))
    assert [(t.device_id, t.free_slots) for t in store.wakeable_targets(at(1))] == [("b", 1), ("c", 1)]
    store.claim_targets("b", at(1))
    assert [(t.device_id, t.free_slots) for t in store.wakeable_targets(at(1))] == [("c", 0)]
    assert job.concurrency == 2


def test_list_jobs_operation_and_creation_filters(store):
    a = make_job(store, now=at(0), operation="GetDeviceData")
    b = make_job(store, now=at(1), operation="SetDeviceData")
    c = make_job(store, now=at(2), operation="GetDeviceData")
    assert [j.job_id for j in store.list_jobs(operation="GetDeviceData")[0]] == [c.job_id, a.job_id]
    assert [j.job_id for j in store.list_jobs(created_after=at(1))[0]] == [c.job_id, b.job_id]
    assert [j.job_id for j in store.list_jobs(created_before=at(1))[0]] == [a.job_id]
    page, cursor = store.list_jobs(operation="GetDeviceData", limit=1)
    assert [j.job_id for j in page + store.list_jobs(operation="GetDeviceData", after=cursor)[0]] == [c.job_id, a.job_id]


def test_job_results_state_filter(store):
    job = make_job(store, ["d1", "d2", "d3", "d4"])
    store.set_target_state(job.job_id, "d1", "succeeded")
    store.set_target_state(job.job_id, "d2", "failed")
    store.claim_targets("d3", at(1))
    assert [r.device_id for r in store.job_results(job.job_id, states=["failed", "inSession"])[0]] == ["d2", "d3"]
    assert [r.device_id for r in store.job_results(job.job_id, states=["pending"])[0]] == ["d4"]
    with pytest.raises(ValueError):
        store.job_results(job.job_id, states=["bogus"])
