"""Telling consumers about results (OES4): when a device's part of a job
ends, and when a whole job ends, enqueue the pushes its delivery mode asks
for, in the caller's store transaction (transactional outbox). Job pushes
have fixed delivery ids, so announcing the same thing twice adds nothing."""
from dmwsi.jobs import outbox
from dmwsi.jobs.results import device_result
from dmwsi.records import DELIVERY_EACH, TARGET_CANCELLED, TARGET_TIMED_OUT


def target_finished(store, job_id, device_id, job_completed, view):
    """A device ended its part of the job (``job_completed``: it was the last).
    ``view(job)``: how results are shown to the job's principal (a
    ``dmwsi.runtime.ResultView``; None: unfiltered)."""
    job = store.get_job(job_id)
    if job.delivery_mode == DELIVERY_EACH:      # pull and collated jobs push nothing per device
        rows, _ = store.job_results(job_id, include_unfinished=True, device_ids=[device_id])
        if rows:
            _push_result(store, job, rows[0], view)
    if job_completed:
        job_ended(store, job, view)


def _push_result(store, job, row, view):
    """Push one device's result of an ``each`` job, as its principal may see it."""
    reader = view(job)
    if reader is None:
        result = device_result(store, job, row)
    else:
        result = reader.present(device_result(store, job, row, visible=reader.visible))
    outbox.device_result_pushed(store, job, result)


def closed_by_server(store, job, view):
    """Devices whose part the server ended (cancelled, timed out) are results too."""
    if job.delivery_mode != DELIVERY_EACH:
        return
    cursor = None
    while True:
        rows, cursor = store.job_results(job.job_id, after=cursor, limit=500,
                                         states=[TARGET_CANCELLED, TARGET_TIMED_OUT])
        for row in rows:
            _push_result(store, job, row, view)
        if cursor is None:
            return


def job_ended(store, job, view):
    closed_by_server(store, job, view)
    outbox.job_completed(store, job)


def jobs_completed(store, job_ids, view):
    """Jobs ended by the server: expired, or refused whole."""
    for job_id in job_ids:
        job_ended(store, store.get_job(job_id), view)
