"""Creating jobs: the one path every device-reaching operation takes.

A handler describes what it wants (operation, target devices, commands,
options); ``submit`` applies idempotency on the caller's jobId, refuses
unknown devices per device (they appear in the results with the reason),
writes the job in one transaction and wakes the devices. ``wait`` gives the
optional synchronous answer for single-device calls (OES10).
"""
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from dmwsi.dm.uri import BadUri, canonical
from dmwsi.jobs import announce
from dmwsi.store.base import DuplicateJob
from dmwsi.records import (DELIVERY_EACH, DELIVERY_PULL, TARGET_OPEN_STATES, TARGET_REFUSED, Command, Job,
                                 JobTarget)
from dmwsi.errors import OperationError

UNKNOWN_DEVICE = "unknown device"
OUT_OF_SCOPE = "outside the caller's device scope"
WAIT_POLL_SECONDS = 0.05


@dataclass
class JobRequest:
    principal: str
    operation: str
    devices: list                       # device ids, in the caller's order
    commands: list = field(default_factory=list)      # store Command records
    per_device: dict = field(default_factory=dict)    # device id -> [Command] overriding ``commands``
    refused: dict = field(default_factory=dict)       # device id -> reason (policy, unknown...)
    client_job_id: str | None = None
    delivery_mode: str = DELIVERY_PULL
    callback_url: str | None = None
    not_before: datetime | None = None
    not_after: datetime | None = None
    concurrency: int | None = None
    atomic: bool = False
    customer_care: bool = False
    params: dict = field(default_factory=dict)        # what the handler needs to shape results
    roles: tuple | None = None      # the caller's roles; None: trusted internal caller
    bulk: bool = False              # out-of-scope devices are refused one by one, not the request


def submit(services, request: JobRequest):
    """Create the job (or return the caller's existing one); returns the Job."""
    store = services.store
    if request.client_job_id:
        existing = store.find_job_by_client_id(request.principal, request.client_job_id)
        if existing is not None:
            return _same_request_or_fault(existing, request)
    if request.concurrency is not None and request.concurrency < 1:
        raise OperationError("InvalidArgument", "concurrency must be at least 1", element="concurrency")
    if request.not_before and request.not_after and request.not_after <= request.not_before:
        raise OperationError("InvalidArgument", "schedule notAfter must be later than notBefore", element="schedule")
    if not request.devices:
        raise OperationError("InvalidArgument", "the request names no device", element="device")
    if request.roles is not None:
        authorize(services, request)

    known = store.known_device_ids(request.devices)
    targets, seen = [], set()
    for device_id in request.devices:
        if device_id in seen:
            continue
        seen.add(device_id)
        reason = request.refused.get(device_id) or (None if device_id in known else UNKNOWN_DEVICE)
        own = request.per_device.get(device_id)
        if reason is None and own is None:
            targets.append(device_id)           # a bare id: the store's fast path for big batches
        else:
            targets.append(JobTarget(device_id=device_id, state=TARGET_REFUSED if reason else "pending",
                                     refused_reason=reason, commands=own))
    # Work not done by notAfter (or within the default expiry) times out.
    start = max(datetime.now(timezone.utc), request.not_before or datetime.min.replace(tzinfo=timezone.utc))
    expires_at = request.not_after or start + timedelta(seconds=services.config["jobs"]["default_expiry"])
    job = Job(
        principal=request.principal, operation=request.operation, client_job_id=request.client_job_id,
        not_before=request.not_before, not_after=request.not_after,
        expires_at=expires_at,
        concurrency=request.concurrency, atomic=request.atomic, delivery_mode=request.delivery_mode,
        callback_url=request.callback_url, customer_care=request.customer_care,
        params={"request": request.params, "devices": len(targets)},
    )
    try:
        with store.transaction():
            job = store.create_job(job, request.commands, targets)
            if job.delivery_mode == DELIVERY_EACH:   # refused devices are results too (UC 5.2)
                for target in targets:
                    if isinstance(target, JobTarget) and target.state == TARGET_REFUSED:
                        announce.target_finished(store, job.job_id, target.device_id, False,
                                                 services.result_view)
            if job.state == "completed":            # every device refused: nothing to wait for
                announce.jobs_completed(store, [job.job_id], services.result_view)
    except DuplicateJob as e:        # a concurrent retry won the race
        return _same_request_or_fault(store.get_job(e.job_id), request)
    services.work_queued()
    services.pushes_queued()
    return job


def authorize(services, request):
    """OES7, before anything is written: every command on its node, the
    batch size, and the device scope (one device: a fault; bulk: each device
    outside the scope is refused with the reason, UC 5.2)."""
    authz, roles = services.authz, request.roles
    commands = [c for cs in [request.commands, *request.per_device.values()] for c in cs]
    for command in commands:
        refuse_non_canonical(command)
    outside = authz.out_of_scope(services.store, roles, request.devices)
    if outside and not request.bulk:      # before the node rules: the answer must not depend on the device
        raise device_not_reachable(request.principal, OUT_OF_SCOPE)
    for command in commands:
        if not command_allowed(authz, roles, command):
            raise OperationError("NotAuthorized", f"{request.principal} may not {command.action} {command.uri}",
                             element="commands")
    limit = authz.max_batch(roles)
    if limit is not None and len(request.devices) > limit:
        raise OperationError("PolicyRefused", f"a batch of {len(request.devices)} devices exceeds the "
                         f"{limit} allowed to {request.principal}")
    for device_id in outside:
        request.refused.setdefault(device_id, OUT_OF_SCOPE)


def device_not_reachable(principal, log_reason, element="device"):
    """The one answer, to a caller whose scope is not "all", for a device
    that does not exist and for one outside its scope (no existence oracle);
    the transaction log records ``log_reason``."""
    return OperationError("NotAuthorized", f"{principal} may not manage this device", element=element,
                      log_reason=f"{principal} may not manage this device: {log_reason}")


def refuse_non_canonical(command):
    """A Client fault for a node URI that is not canonical (``..``, ``//``,
    ``%2e``, trailing ``/``, unknown query): checked before any rule."""
    for element, uri in [("uri", command.uri), ("sourceUri", command.source_uri)]:
        if uri is None and element == "sourceUri":
            continue
        try:
            canonical(uri)
        except BadUri as e:
            raise OperationError("InvalidArgument", f"node URI {uri!r}: {e}", element=element) from None


def command_allowed(authz, roles, command):
    if "?list=" in command.uri:
        return command.action == "Get" and authz.may_list(roles, command.uri)
    if command.action == "Copy":
        return authz.may_touch(roles, command.uri, "Copy") or (
            authz.may_touch(roles, command.uri, "Add") and authz.may_touch(roles, command.source_uri or "", "Get"))
    return authz.may_touch(roles, command.uri, command.action)


def _same_request_or_fault(existing, request):
    """An idempotent retry returns the existing job; a different request
    reusing the jobId is the caller's mistake."""
    if existing.operation != request.operation or existing.params.get("devices") != len(set(request.devices)):
        raise OperationError("DuplicateJob", f"jobId {request.client_job_id!r} is already used by another "
                         f"{existing.operation} request", element="jobId")
    return existing


class SyncSlots:
    """How many synchronous calls may wait for their devices at once.

    A waiting call holds a SOAP worker thread for up to ``max_sync_wait``;
    without a bound, calls to silent devices take every worker and nothing
    else is answered (issue 10: 20 calls starved a 16-thread pool for 110 s).
    A call that finds no free slot is refused before its job is written."""

    def __init__(self, count):
        self.count = count
        self._free = threading.BoundedSemaphore(count) if count > 0 else None

    @contextmanager
    def hold(self):
        if self._free is None or not self._free.acquire(blocking=False):
            raise OperationError("Busy", f"all {self.count} synchronous slots are waiting for devices; "
                                         "retry later or call without synchronous")
        try:
            yield
        finally:
            self._free.release()


def wait(services, job_id, device_id, timeout):
    """Block (in a SOAP worker thread) until the device's part of the job is
    finished or ``timeout`` seconds pass; True if it finished."""
    deadline = time.monotonic() + max(0, min(timeout, services.config["jobs"]["max_sync_wait"]))
    while True:
        target = services.store.get_target(job_id, device_id)
        if target is None or target.state not in TARGET_OPEN_STATES:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(WAIT_POLL_SECONDS)


def commands_from(request_commands):
    """Contract Command dicts -> store Command records, numbered 1.."""
    return [Command(action=c["action"], uri=c["uri"], value=c.get("value"), format=c.get("format"),
                    type=c.get("type"), source_uri=c.get("sourceUri"), correlator=c.get("correlator"),
                    seq=n)
            for n, c in enumerate(request_commands, 1)]
