"""The domain side of push delivery (OES4): enqueue pushes in the outbox.

Each function writes its push(es) inside ``store.transaction()``, which
nests: called inside the caller's transaction that records a result, the
push commits with the result or not at all (the transactional outbox).
Called outside one, it is its own transaction. They never send anything;
:class:`dmwsi.push.sender.PushSender` delivers what is committed (call
``services.pusher.kick()`` after the commit to deliver without waiting for
the next poll).

Every push carries ``jobId``, ``deliveryId`` (stable across retries: the
consumer de-duplicates on it) and ``sequence``, a counter per job from 1 in
the order the pushes were enqueued (read and taken in the same transaction:
:meth:`Store.next_push_sequence`). The payload is the callback operation's
request fields, checked against the callback contract (a malformed push
raises :class:`PayloadError`, so the caller's transaction rolls back).

Which pushes a job gets, by its ``delivery_mode``:

* ``pull``: none;
* ``each``: a DeviceResult per device and DiagnosticsReports as they
  arrive, then JobCompleted when the job reaches a final state;
* ``collated``: ResultsAvailable, then JobCompleted, when it reaches a
  final state.

Job pushes have deterministic delivery ids (job, operation, device), so a
repeated call (a retried session, a cancelled job whose last target settles
later) enqueues nothing new and returns the existing id.
"""
import uuid

from dmwsi.contract.payload import PayloadError, encode
from dmwsi.jobs.results import device_result
from dmwsi.store.base import NotFound
from dmwsi.records import (DELIVERY_COLLATED, DELIVERY_EACH, JOB_TERMINAL_STATES, TARGET_STATES,
                                 DeviceResult, Job)

__all__ = ["PushPublisher", "PayloadError", "device_result_pushed", "job_completed", "event_occurred",
           "diagnostics_report", "job_stream", "subscription_stream"]

_DELIVERY_NS = uuid.UUID("6f1d3c52-2f7e-4d8a-9a57-0c2b7e4b9d11")


def job_stream(job_id):
    """The outbox stream (sequence counter) of a job's pushes."""
    return f"job:{job_id}"


def subscription_stream(subscription_id):
    """The stream of event pushes that belong to no job (counted per subscription)."""
    return f"subscription:{subscription_id}"


def device_result_pushed(store, job, result, *, now=None):
    """Enqueue the DeviceResult push of one device (mode ``each``).

    ``job``: a Job or a job id. ``result``: the contract DeviceResult as a
    dict (``jobId``, ``deviceId``, ``state``, ``items``..., datetimes as
    timezone-aware ``datetime`` or ISO text), or a store DeviceResult
    (shaped as GetJobResults shapes it).
    Returns the delivery id, or None when the job's mode is not ``each``."""
    with store.transaction():
        job = _job(store, job)
        if job.delivery_mode != DELIVERY_EACH or not job.callback_url:
            return None
        result = _device_result_dict(job, result)
        if result.setdefault("jobId", job.job_id) != job.job_id:
            raise PayloadError(f"result of job {result['jobId']!r} pushed for job {job.job_id!r}")
        device = result.get("deviceId") or result.get("alias")
        delivery_id = _job_delivery_id(job.job_id, "DeviceResult", device) if device else None
        return _enqueue(store, job.principal, job.callback_url, "DeviceResult", job_stream(job.job_id),
                        job.job_id, {"result": result}, delivery_id=delivery_id, job_id=job.job_id, now=now)


def job_completed(store, job, counts=None, *, now=None):
    """Enqueue the pushes of a job that reached a final state.

    ``collated``: ResultsAvailable then JobCompleted; ``each``: JobCompleted;
    ``pull``: nothing. ``counts``: targets per state (``store.job_counts``
    form; ``total`` is added when missing); read from the store when None.
    Returns the delivery ids (already enqueued ones included), in order.
    ValueError if the job is not in a final state."""
    with store.transaction():
        job = _job(store, job)
        if job.delivery_mode not in (DELIVERY_EACH, DELIVERY_COLLATED) or not job.callback_url:
            return []
        if job.state not in JOB_TERMINAL_STATES:
            raise ValueError(f"job {job.job_id} is {job.state}, not in a final state")
        counts = dict(store.job_counts(job.job_id) if counts is None else counts)
        counts.setdefault("total", sum(counts.get(state, 0) for state in TARGET_STATES))
        stream = job_stream(job.job_id)
        ids = []
        if job.delivery_mode == DELIVERY_COLLATED:
            ids.append(_enqueue(store, job.principal, job.callback_url, "ResultsAvailable", stream, job.job_id,
                                {"state": job.state, "counts": counts},
                                delivery_id=_job_delivery_id(job.job_id, "ResultsAvailable"),
                                job_id=job.job_id, now=now))
        ids.append(_enqueue(store, job.principal, job.callback_url, "JobCompleted", stream, job.job_id,
                            {"job": _job_info(job, counts)},
                            delivery_id=_job_delivery_id(job.job_id, "JobCompleted"), job_id=job.job_id, now=now))
        return ids


def event_occurred(store, subscription, event_id, *, occurred_at, device_id=None, alias=None, mark=None,
                   data=(), job_id=None, now=None):
    """Enqueue an EventOccurred push to a subscription's callback (EI7).

    ``subscription``: the store Subscription (its principal and callback
    URL are used). ``data``: NodeItem dicts (``uri``, ``value``...). The
    push's ``jobId`` is ``job_id`` when the event belongs to a job (its
    sequence then counts with the job's pushes), else the subscription id
    (counted per subscription). Returns the delivery id."""
    if job_id is not None:
        stream, push_job_id = job_stream(job_id), job_id
    else:
        stream, push_job_id = subscription_stream(subscription.subscription_id), subscription.subscription_id
    fields = {"subscriptionId": subscription.subscription_id, "eventId": event_id, "deviceId": device_id,
              "alias": alias, "occurredAt": occurred_at, "mark": mark, "data": list(data)}
    with store.transaction():
        return _enqueue(store, subscription.principal, subscription.callback_url, "EventOccurred", stream,
                        push_job_id, fields, job_id=job_id, now=now)


def diagnostics_report(store, job, report, *, now=None):
    """Enqueue a DiagnosticsReport push (mode ``each``: reports are pushed as
    they arrive; other modes pull them). ``report``: the contract
    DiagnosticsData dict (``diagnosticsJobId`` defaults to the job id).
    Returns the delivery id, or None when the job's mode is not ``each``."""
    with store.transaction():
        job = _job(store, job)
        if job.delivery_mode != DELIVERY_EACH or not job.callback_url:
            return None
        report = dict(report)
        report.setdefault("diagnosticsJobId", job.job_id)
        return _enqueue(store, job.principal, job.callback_url, "DiagnosticsReport", job_stream(job.job_id),
                        job.job_id, {"report": report}, job_id=job.job_id, now=now)


class PushPublisher:
    """The same functions bound to one store: ``PushPublisher(store).job_completed(job)``."""

    def __init__(self, store):
        self.store = store

    def device_result_pushed(self, job, result, **kw):
        return device_result_pushed(self.store, job, result, **kw)

    def job_completed(self, job, counts=None, **kw):
        return job_completed(self.store, job, counts, **kw)

    def event_occurred(self, subscription, event_id, **kw):
        return event_occurred(self.store, subscription, event_id, **kw)

    def diagnostics_report(self, job, report, **kw):
        return diagnostics_report(self.store, job, report, **kw)


# --- helpers -------------------------------------------------------------------------

def _enqueue(store, principal, callback_url, operation, stream, push_job_id, fields, *, delivery_id=None,
             job_id=None, now=None):
    """Number and enqueue one push; the caller holds a transaction."""
    if delivery_id is not None and store.get_push(delivery_id) is not None:
        return delivery_id      # already enqueued: the same push, not a second one
    delivery_id = delivery_id or uuid.uuid4().hex
    sequence = store.next_push_sequence(stream)
    payload = encode(operation, {"jobId": push_job_id, "deliveryId": delivery_id, "sequence": sequence, **fields})
    return store.enqueue_push(principal, callback_url, operation, payload, job_id=job_id,
                              delivery_id=delivery_id, now=now, stream=stream, sequence=sequence)


def _job(store, job):
    job_id = job.job_id if isinstance(job, Job) else job
    current = store.get_job(job_id)   # the state as of this transaction, not the caller's copy
    if current is None:
        raise NotFound(f"no job {job_id!r}")
    return current


def _job_delivery_id(job_id, operation, device_id=None):
    key = "\0".join((job_id, operation) + ((device_id,) if device_id is not None else ()))
    return uuid.uuid5(_DELIVERY_NS, key).hex


def _device_result_dict(job, result):
    if isinstance(result, DeviceResult):
        return device_result(job, result)    # the GetJobResults form, exactly
    return dict(result)


def _job_info(job, counts):
    info = {
        "jobId": job.job_id, "state": job.state, "operation": job.operation, "principal": job.principal,
        "createdAt": job.created_at, "updatedAt": job.updated_at, "completedAt": job.updated_at,
        "delivery": {"mode": job.delivery_mode, "callbackUrl": job.callback_url},
        "counts": counts,
    }
    if job.not_before or job.not_after:
        info["schedule"] = {"notBefore": job.not_before, "notAfter": job.not_after}
    return info
