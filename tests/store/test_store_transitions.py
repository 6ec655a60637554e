"""Target state changes: one transition table (records.TARGET_TRANSITIONS),
checked by the store's transition function and by a database trigger that
holds every other writer to it; in-session targets listed for recovery."""

import itertools
import sqlite3

import pytest

from dmwsi.store import IllegalTransition
from dmwsi.records import (
    STATUS_AWAITING_ALERT,
    TARGET_STATES,
    TARGET_TERMINAL_STATES,
    Command,
    Job,
    JobTarget,
    transition_allowed,
)

from .conftest import at

PAIRS = list(itertools.product(TARGET_STATES, TARGET_STATES))


def job_in(store, state, device="d1"):
    """A job whose one target is in ``state`` (reached along legal steps)."""
    if state in TARGET_TERMINAL_STATES:
        target = JobTarget(device, state=state)
    else:
        target = device
    job = store.create_job(Job("op", "GetDeviceData"), [Command("Get", "./DevInfo/Man")], [target])
    if state == "inSession":
        store.claim_targets(device, at(1))
    assert store.get_target(job.job_id, device).state == state
    return job


def test_the_table_keeps_final_states_final():
    for old, new in PAIRS:
        if old in TARGET_TERMINAL_STATES or new == "refused":
            assert not transition_allowed(old, new), (old, new)
    assert transition_allowed("pending", "inSession") and transition_allowed("inSession", "pending")
    assert not transition_allowed("pending", "pending")


@pytest.mark.parametrize("old,new", PAIRS)
def test_transition_function_follows_the_table(store, old, new):
    job = job_in(store, old)
    if transition_allowed(old, new):
        store.set_target_state(job.job_id, "d1", new, message="changed")
        assert store.get_target(job.job_id, "d1").state == new
    else:
        with pytest.raises(IllegalTransition):
            store.set_target_state(job.job_id, "d1", new, message="changed")
        t = store.get_target(job.job_id, "d1")
        assert (t.state, t.message) == (old, None)     # nothing written


@pytest.mark.parametrize("old,new", PAIRS)
def test_trigger_refuses_what_the_table_refuses(store, old, new):
    """Raw SQL, as a bulk update or a future bug would write it: the database refuses too."""
    job = job_in(store, old)
    conn = store._conn
    update = "UPDATE job_targets SET state = ? WHERE job_id = ? AND device_id = 'd1'"
    if transition_allowed(old, new):
        conn.execute(update, (new, job.job_id))
        assert store.get_target(job.job_id, "d1").state == new
    else:
        with pytest.raises(sqlite3.IntegrityError, match="illegal target state change"):
            conn.execute(update, (new, job.job_id))
        assert store.get_target(job.job_id, "d1").state == old


def test_trigger_leaves_other_fields_of_final_targets_alone(store):
    job = job_in(store, "failed")
    store._conn.execute("UPDATE job_targets SET message = 'note' WHERE job_id = ?", (job.job_id,))
    assert store.get_target(job.job_id, "d1").message == "note"


def test_in_session_targets_by_age_and_kind(store):
    job = store.create_job(Job("op", "x"), [Command("Exec", "./FUMO/Update")], ["d1", "d2", "d3", "d4"])
    store.claim_targets("d1", at(1))
    store.claim_targets("d2", at(5))
    store.claim_targets("d3", at(2))
    store.set_target_state(job.job_id, "d3", "inSession", now=at(3), status_code=STATUS_AWAITING_ALERT)
    held = store.in_session_targets()
    assert [t.device_id for t in held] == ["d1", "d2"]            # oldest first, not the awaiting one
    assert [t.device_id for t in store.in_session_targets(at(5))] == ["d1"]
    assert [t.device_id for t in store.in_session_targets(awaiting_alert=True)] == ["d3"]
    assert store.in_session_targets(at(3), awaiting_alert=True) == []
    assert [t.device_id for t in store.in_session_targets(at(3.5), awaiting_alert=True)] == ["d3"]


def test_a_new_attempt_forgets_the_last_attempts_status(store):
    job = store.create_job(Job("op", "x"), [Command("Exec", "./FUMO/Update")], ["d1"])
    store.claim_targets("d1", at(1))
    store.set_target_state(job.job_id, "d1", "inSession", status_code=STATUS_AWAITING_ALERT)
    store.set_target_state(job.job_id, "d1", "pending", message="retrying: no alert")
    (item,) = store.claim_targets("d1", at(2))
    assert (item.target.attempts, item.target.status_code) == (2, None)
    assert [t.device_id for t in store.in_session_targets()] == ["d1"]      # held, not awaiting


def test_cancel_makes_in_session_targets_final(store):
    job = store.create_job(Job("op", "x"), [Command("Get", "./A")], ["d1", "d2"])
    store.claim_targets("d1", at(1))
    assert store.cancel_job(job.job_id, now=at(2)) == (2, [])
    assert store.in_session_targets() == []
    assert store.job_counts(job.job_id)["cancelled"] == 2
