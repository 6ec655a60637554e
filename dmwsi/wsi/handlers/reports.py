"""The transaction log (EI1-4, MDM4, ES13)."""
from dmwsi.authz import ALL_LOGS
from dmwsi.errors import OperationError
from dmwsi.wsi.handlers.common import page_size, store_errors


def log_entry(entry):
    out = {
        "entryId": str(entry.id), "time": entry.time, "principal": entry.principal or "",
        "operation": entry.operation, "jobId": entry.job_id, "deviceId": entry.device_id,
        "subscriberId": entry.subscriber_id, "summary": entry.summary or "", "success": entry.success,
        "errorCode": entry.error_code, "deviceCount": entry.device_count,
    }
    return {k: v for k, v in out.items() if v is not None}


def get_transaction_log(call, request):
    """Principals see their own rows unless a role grants ``all-logs`` (EI1-4, MDM4)."""
    store = call.services.store
    principal = request.get("principal")
    if not call.services.authz.has(call.roles, ALL_LOGS):
        if principal not in (None, call.principal):
            raise OperationError("NotAuthorized", f"{call.principal} may read only its own transaction log",
                             element="principal")
        principal = call.principal
    with store_errors():
        rows, cursor = store.query_log(
            job_id=request.get("jobId"), device_id=request.get("deviceId"),
            principal=principal, since=request.get("fromTime"),
            until=request.get("toTime"), after=request.get("after"), limit=page_size(request),
            operation=request.get("operation"), success=request.get("success"),
            subscriber_id=request.get("subscriberId"))
    return {"entries": [log_entry(r) for r in rows], "nextCursor": cursor}


HANDLERS = {"GetTransactionLog": get_transaction_log}
