"""Recovery of interrupted targets on the store (issue 10.1): the job policy
of StoreBackend (retry while attempts remain, else failed SessionInterrupted /
Timeout), and a Generic Alert arriving for a target already failed over."""
from datetime import datetime, timedelta, timezone

from dmwsi.config import load_config
from dmwsi.dm.work import GenericAlert
from dmwsi.jobs.backend import StoreBackend, correlator_for
from dmwsi.records import STATUS_AWAITING_ALERT, Command, Job


def backend(store, max_attempts=2):
    config = load_config(overrides={"dm": {"max_attempts": max_attempts}}, environ={})
    return StoreBackend(store, config)


def test_start_up_recovery_retries_then_fails_held_targets(store):
    b = backend(store)
    job = store.create_job(Job("op", "x"), [Command("Get", "./A")], ["d1", "d2"])
    store.claim_targets("d1")
    store.claim_targets("d2")
    assert b.recover() == 2                                        # a crash: nobody holds them
    assert [store.get_target(job.job_id, d).state for d in ("d1", "d2")] == ["pending", "pending"]
    store.claim_targets("d1")
    assert b.recover(live=lambda device_id: device_id == "d1") == 0   # a live session keeps its target
    assert b.recover() == 1                                        # d1: second attempt used up
    store.claim_targets("d2")
    assert b.recover() == 1
    t = store.get_target(job.job_id, "d1")
    assert (t.state, t.error_code, t.attempts) == ("failed", "SessionInterrupted", 2)
    assert store.get_job(job.job_id).state == "completed"


def test_lease_and_alert_window(store):
    b = backend(store, max_attempts=1)
    now = datetime.now(timezone.utc)
    job = store.create_job(Job("op", "x"), [Command("Exec", "./FUMO/Update")], ["d1", "d2"])
    store.claim_targets("d1", now - timedelta(seconds=10))
    store.claim_targets("d2", now - timedelta(seconds=10))
    store.set_target_state(job.job_id, "d2", "inSession", now=now - timedelta(seconds=10),
                           status_code=STATUS_AWAITING_ALERT)
    assert b.recover(held_before=now - timedelta(seconds=60), accepted_before=now - timedelta(seconds=60)) == 0
    assert b.recover(held_before=now - timedelta(seconds=60), accepted_before=now) == 1
    t = store.get_target(job.job_id, "d2")
    assert (t.state, t.error_code) == ("failed", "Timeout")
    assert store.get_target(job.job_id, "d1").state == "inSession"      # its lease has not run out
    # The alert comes after all: recorded, the target stays failed.
    alert = GenericAlert(code=1226, correlator=correlator_for(job.job_id, 1), source="./FUMO/Update",
                         target=None, type="org.openmobilealliance.dm.firmwareupdate.update", format="int",
                         mark=None, data="200")
    assert b.device_alert("d2", alert) == 200
    (row,), _ = store.job_results(job.job_id, device_ids=["d2"])
    assert row.state == "failed" and [(i.value, i.status_code) for i in row.items] == [("200", 200)]
