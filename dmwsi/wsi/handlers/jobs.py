"""Jobs: status, results, acknowledging results, listing, cancelling (OES10, EI10, CC4)."""
from datetime import datetime, timezone

from dmwsi import records
from dmwsi.wsi.faults import DmwsiFault
from dmwsi.wsi.handlers.common import job_or_fault, own_job_or_fault, page_size, sees_all_jobs, store_errors
from dmwsi.jobs.results import device_result

JOB_SCHEDULED = "scheduled"    # a pending job whose window has not opened: derived, not stored


def job_state(job, now=None):
    now = now or datetime.now(timezone.utc)
    if job.state == records.JOB_PENDING and job.not_before and job.not_before > now:
        return JOB_SCHEDULED
    return job.state


def job_info(store, job):
    counts = store.job_counts(job.job_id)
    info = {
        "jobId": job.job_id, "state": job_state(job), "operation": job.operation,
        "principal": job.principal, "createdAt": job.created_at, "updatedAt": job.updated_at,
        "counts": {"total": sum(counts.values()), **counts},
    }
    if job.state in records.JOB_TERMINAL_STATES:
        info["completedAt"] = job.updated_at
    if job.not_before or job.not_after:
        info["schedule"] = {k: v for k, v in (("notBefore", job.not_before), ("notAfter", job.not_after)) if v}
    info["delivery"] = {"mode": job.delivery_mode, **({"callbackUrl": job.callback_url} if job.callback_url else {})}
    return info


def get_job_status(call, request):
    store = call.services.store
    return {"job": job_info(store, job_or_fault(call, request["jobId"]))}


def get_job_results(call, request):
    store = call.services.store
    job = job_or_fault(call, request["jobId"])
    states = request.get("states") or None
    with store_errors():
        rows, cursor = store.job_results(
            job.job_id, after=request.get("after"), limit=page_size(request), states=states,
            include_unfinished=bool(set(states or ()) & set(records.TARGET_OPEN_STATES)),
            unacknowledged_by=call.principal if request.get("unacknowledgedOnly") else None)
    # A reader sees only devices in its own scope, whoever's job it is (OES7);
    # the owner also sees its refusals (UC 5.2: it named those devices itself).
    hidden = call.services.authz.out_of_scope(store, call.roles, [r.device_id for r in rows])
    visible = call.services.visible_nodes(call.roles)
    results = [device_result(job, r, visible) for r in rows
               if r.device_id not in hidden or (r.state == records.TARGET_REFUSED and job.principal == call.principal)]
    return {"jobId": job.job_id, "state": job_state(job), "results": results,
            "nextCursor": cursor}


def acknowledge_results(call, request):
    """Results of given devices, given push deliveries, or -- neither given --
    every result finished so far; one transaction."""
    store = call.services.store
    job = own_job_or_fault(call, request["jobId"])
    device_ids = request.get("deviceIds") or None
    delivery_ids = list(dict.fromkeys(request.get("deliveryIds") or ()))
    acknowledged = 0
    with store.transaction():
        pending = [d for d in delivery_ids if _job_push(store, call, job, d).delivered_at is None]
        if device_ids is not None or not delivery_ids:
            acknowledged += store.acknowledge(job.job_id, call.principal, device_ids=device_ids)
        for delivery_id in pending:     # the consumer confirms receipt out of band: retries stop
            store.mark_delivered(delivery_id)
        acknowledged += len(pending)
    return {"jobId": job.job_id, "acknowledged": acknowledged}


def _job_push(store, call, job, delivery_id):
    push = store.get_push(delivery_id)
    if push is None or push.job_id != job.job_id or push.principal != call.principal:
        raise DmwsiFault("InvalidArgument", f"no push delivery {delivery_id!r} of job {job.job_id} for you",
                         element="deliveryIds")
    return push


def cancel_job(call, request):
    store = call.services.store
    job = own_job_or_fault(call, request["jobId"])
    if job.state in records.JOB_TERMINAL_STATES:
        raise DmwsiFault("JobNotCancellable", f"job {job.job_id} is already {job.state}", element="jobId")
    # The state change commits alone (one UPDATE however many devices); the
    # cancelled devices' pushes, then the job's closing ones, are enqueued
    # after it in short batches by the announcer (dmwsi.jobs.announce).
    cancelled, _finished = store.cancel_job(job.job_id)
    job = store.get_job(job.job_id)
    call.services.announcer.kick()
    return {"jobId": job.job_id, "state": job_state(job), "cancelled": cancelled}


def list_jobs(call, request):
    store = call.services.store
    states = request.get("states") or [None]
    if len(states) > 1:
        raise DmwsiFault("InvalidArgument", "filter on at most one state per request", element="states")
    state = states[0]
    stored_state = records.JOB_PENDING if state == JOB_SCHEDULED else state
    with store_errors():
        jobs, cursor = store.list_jobs(
            principal=None if sees_all_jobs(call) else call.principal,
            state=stored_state, after=request.get("after"), limit=page_size(request),
            operation=request.get("operation"), created_after=request.get("createdAfter"),
            created_before=request.get("createdBefore"))
    if state == JOB_SCHEDULED:
        jobs = [j for j in jobs if job_state(j) == JOB_SCHEDULED]
    return {"jobs": [job_info(store, j) for j in jobs], "nextCursor": cursor}


HANDLERS = {
    "GetJobStatus": get_job_status,
    "GetJobResults": get_job_results,
    "AcknowledgeResults": acknowledge_results,
    "CancelJob": cancel_job,
    "ListJobs": list_jobs,
}
