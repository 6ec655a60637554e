"""Helpers shared by the operation handlers: device references, paging,
translating store errors into faults, records into contract dicts."""
from contextlib import contextmanager

from dmwsi.authz import ALL_JOBS, CANCEL_ANY_JOB
from dmwsi.jobs.submit import device_not_reachable
from dmwsi.selector import SelectorError, validate_clauses
from dmwsi.store.base import AmbiguousMatch, InvalidCursor, UnknownDevices
from dmwsi.errors import OperationError

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000

# Contract SelectorOperator names -> selector operators.
SELECTOR_OPERATORS = {"eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "like": "like"}


def page_size(request):
    size = request.get("pageSize", DEFAULT_PAGE_SIZE)
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise OperationError("InvalidArgument", f"pageSize must be between 1 and {MAX_PAGE_SIZE}, got {size}",
                         element="pageSize")
    return size


@contextmanager
def store_errors():
    """Store exceptions that mean 'the caller asked for something wrong'."""
    try:
        yield
    except InvalidCursor:
        raise OperationError("InvalidArgument", "the paging cursor is not valid for this request", element="after")
    except UnknownDevices as e:
        raise OperationError("UnknownDevice", str(e))
    except SelectorError as e:
        raise OperationError("InvalidArgument", f"selector: {e}", element="selector")


def resolve_device(store, ref, element="device", call=None):
    """A DeviceRef (deviceId | subscriberId | msisdn | alias) -> the Device.
    With ``call``, an alias the caller was given (OES6) works as either id."""
    given = {k: v for k, v in (ref or {}).items() if v}
    if len(given) != 1:
        raise OperationError("InvalidArgument",
                         "give exactly one of deviceId, subscriberId, msisdn, alias", element=element)
    (kind, value), = given.items()
    if call is not None and kind in ("deviceId", "alias"):
        aliased = call.services.aliases.device(call.principal, value)
        if aliased is not None:
            kind, value = "deviceId", aliased
    try:
        if kind == "deviceId":
            device = store.get_device(value)
        else:
            key = {"subscriberId": "subscriber_id", "msisdn": "msisdn", "alias": "alias"}[kind]
            device = store.find_device(**{key: value})
    except AmbiguousMatch:
        raise OperationError("InvalidArgument", f"{kind} {value!r} matches several devices; use deviceId",
                         element=element)
    if device is None:
        if call is not None and not call.services.authz.all_devices(call.roles):
            raise device_not_reachable(call.principal, f"no registered device with {kind} {value!r}", element)
        raise OperationError("UnknownDevice", f"no registered device with {kind} {value!r}", element=element)
    return device


def selector_clauses(selector, element="selector"):
    """A contract Selector -> validated selector clauses."""
    try:
        return validate_clauses(
            (c["field"], SELECTOR_OPERATORS[c["operator"]], c["value"]) for c in selector.get("clauses", []))
    except SelectorError as e:
        raise OperationError("InvalidArgument", f"selector: {e}", element=element)


def job_or_fault(call, job_id):
    """The job, if the caller may see it: its owner may, and so may a role
    granting ``all-jobs``. Someone else's job answers exactly as a job that
    does not exist, so job ids cannot be probed (issue 8)."""
    job = call.services.store.get_job(job_id)
    if job is None or not (job.principal == call.principal or sees_all_jobs(call)):
        raise OperationError("UnknownJob", f"no job {job_id!r}", element="jobId")
    return job


def sees_all_jobs(call):
    return call.services.authz.has(call.roles, ALL_JOBS)


def own_job_or_fault(call, job_id):
    """A job the caller may change (cancel, acknowledge): its own, or any
    it may see when a role grants ``cancel-any-job``."""
    job = job_or_fault(call, job_id)
    if job.principal != call.principal and not call.services.authz.has(call.roles, CANCEL_ANY_JOB):
        raise OperationError("NotAuthorized", f"{call.principal} may not change job {job_id!r} of another principal",
                         element="jobId")
    return job
