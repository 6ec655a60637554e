"""Bulk and batch operations (UC 5.1, 5.2; CC7, OM1-3, MDM5): one command
list, or per-device commands, for devices named by id, subscriber, alias,
group or selector; an optional schedule window and concurrency limit."""
from dmwsi.jobs.submit import JobRequest, commands_from, device_not_reachable, submit
from dmwsi.store.base import NotFound
from dmwsi.errors import OperationError
from dmwsi.wsi.handlers.common import resolve_device, selector_clauses, store_errors
from dmwsi.wsi.handlers.jobs import job_state


def target_devices(store, request, call):
    """Every device the request names, in order, without repeats."""
    devices = list(request.get("deviceIds", []))
    authz, roles = call.services.authz, call.roles
    for subscriber_id in request.get("subscriberIds", []):
        subscriber = store.get_subscriber(subscriber_id)
        owned = [d.device_id for d in subscriber.devices] if subscriber is not None else []
        if not authz.all_devices(roles):
            # No existence oracle: to a scoped caller an unknown subscriber and
            # one with no device in its scope answer alike.
            if subscriber is None:
                raise device_not_reachable(call.principal, f"no subscriber {subscriber_id!r}", "subscriberIds")
            if not owned or authz.out_of_scope(store, roles, owned) == set(owned):
                raise device_not_reachable(call.principal, f"subscriber {subscriber_id!r}: no device in scope",
                                           "subscriberIds")
        elif subscriber is None:
            raise OperationError("UnknownSubscriber", f"no subscriber {subscriber_id!r}", element="subscriberIds")
        devices.extend(owned)
    for alias in request.get("aliases", []):
        devices.append(resolve_device(store, {"alias": alias}, element="aliases", call=call).device_id)
    if request.get("group"):
        try:
            devices.extend(store.group_members(request["group"]))
        except NotFound:
            raise OperationError("UnknownGroup", f"no device group {request['group']!r}", element="group")
    if request.get("selector"):
        with store_errors():
            devices.extend(store.select_devices(selector_clauses(request["selector"])))
    return list(dict.fromkeys(devices))


def submit_bulk_operation(call, request):
    store = call.services.store
    per_device = {}
    for entry in request.get("deviceCommands", []):
        device_id = resolve_device(store, entry["device"], element="deviceCommands", call=call).device_id
        per_device[device_id] = commands_from(entry["commands"])
    devices = list(dict.fromkeys(target_devices(store, request, call) + list(per_device)))
    commands = commands_from(request.get("commands", []))
    if not commands and any(d not in per_device for d in devices):
        raise OperationError("InvalidArgument", "give commands for every device (commands or deviceCommands)",
                         element="commands")
    schedule = request.get("schedule") or {}
    delivery = request.get("delivery") or {}
    job = submit(call.services, JobRequest(
        principal=call.principal, operation=call.operation, devices=devices, commands=commands,
        per_device=per_device, client_job_id=request.get("jobId"),
        delivery_mode=delivery.get("mode", "pull"), callback_url=delivery.get("callbackUrl"),
        not_before=schedule.get("notBefore"), not_after=schedule.get("notAfter"),
        concurrency=request.get("concurrency"), atomic=bool(request.get("atomic")),
        customer_care=call.customer_care, roles=call.roles, bulk=True))
    counts = store.job_counts(job.job_id)
    return {"jobId": job.job_id, "state": job_state(job),
            "accepted": sum(counts.values()) - counts["refused"], "refused": counts["refused"]}


HANDLERS = {"SubmitBulkOperation": submit_bulk_operation}
