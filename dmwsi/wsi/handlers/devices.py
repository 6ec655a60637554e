"""Device data and customer care: operations that run DM commands on one
device (UC 5.3, 5.4; ES10, ES11, ES14, OES8-10, CC1-6, UP1, UP3).

Each handler turns its request into DM commands and hands them to
``dmwsi.jobs.submit.submit``; the answer is the jobId at once, or the
device's results when the caller asked to wait (``synchronous``).
"""
import tomllib
from functools import lru_cache

from dmwsi.resources import CONF_DIR
from dmwsi.dm import trigger
from dmwsi.jobs.submit import JobRequest, commands_from, submit, wait
from dmwsi.records import Command
from dmwsi.errors import OperationError
from dmwsi.wsi.handlers.common import resolve_device
from dmwsi.wsi.handlers.jobs import job_state
from dmwsi.jobs.results import device_result

PROFILES_FILE = CONF_DIR / "profiles.toml"
STRUCT_DATA = "?list=StructData"
UI_MODES = {"notSpecified": trigger.UI_NOT_SPECIFIED, "background": trigger.UI_BACKGROUND,
            "informative": trigger.UI_INFORMATIVE, "userInteraction": trigger.UI_USER_INTERACTION}


def run_on_device(call, request, commands, *, params=None):
    """Queue ``commands`` for the request's device; the common response."""
    if request.get("synchronous"):
        with call.services.sync_slots.hold():       # refused (Busy) before anything is queued
            return _run_on_device(call, request, commands, params)
    return _run_on_device(call, request, commands, params)


def _run_on_device(call, request, commands, params):
    services = call.services
    device = resolve_device(services.store, request["device"], call=call)
    delivery = request.get("delivery") or {}
    job = submit(services, JobRequest(
        principal=call.principal, operation=call.operation, devices=[device.device_id],
        commands=commands, client_job_id=request.get("jobId"),
        delivery_mode=delivery.get("mode", "pull"), callback_url=delivery.get("callbackUrl"),
        atomic=bool(request.get("atomic")), customer_care=call.customer_care, params=params or {},
        roles=call.roles))
    response = {"jobId": job.job_id, "state": job_state(job)}
    if request.get("synchronous"):
        timeout = request.get("timeoutSeconds", services.config["jobs"]["max_sync_wait"])
        finished = wait(services, job.job_id, device.device_id, timeout)
        job = services.store.get_job(job.job_id)
        response["state"] = job_state(job)
        if finished:
            rows, _ = services.store.job_results(job.job_id, limit=1, include_unfinished=True)
            visible = services.visible_nodes(call.roles)
            response["results"] = [device_result(job, r, visible=visible) for r in rows]
    return response


def get_device_data(call, request):
    depth = request.get("depth")
    suffix = STRUCT_DATA if depth else ""
    commands = [Command(action="Get", uri=uri + suffix, seq=n) for n, uri in enumerate(request["uris"], 1)]
    return run_on_device(call, request, commands, params={"depth": depth} if depth else None)


def set_device_data(call, request):
    """Replace each node, or Add it when it does not exist: the engine sends
    the Add when the device answers the Replace 404 (dmwsi.dm.work.WorkUnit.add_if_missing)."""
    commands = [Command(action="Replace", uri=i["uri"], value=i.get("value"), format=i.get("format"),
                        type=i.get("type"), seq=n) for n, i in enumerate(request["items"], 1)]
    return run_on_device(call, request, commands, params={"add_if_missing": True})


def execute_commands(call, request):
    return run_on_device(call, request, commands_from(request["commands"]),
                         params={"sequence": True} if request.get("sequence") else None)


def get_device_tree(call, request):
    root = request.get("rootUri") or "."
    depth = request.get("depth")
    return run_on_device(call, request, [Command(action="Get", uri=root + STRUCT_DATA, seq=1)],
                         params={"depth": depth, "root": root} if depth else {"root": root})


def get_device_profile(call, request):
    device = resolve_device(call.services.store, request["device"], call=call)
    name = request.get("profile") or "default"
    profile = choose_profile(name, device.man, device.mod)
    if profile is None:
        raise OperationError("InvalidArgument", f"no device profile {name!r} for this device", element="profile")
    commands = [Command(action="Get", uri=uri + STRUCT_DATA, seq=n) for n, uri in enumerate(profile["nodes"], 1)]
    return run_on_device(call, request, commands, params={"profile": name})


def get_inventory(call, request):
    commands = [
        Command(action="Get", uri="./DevDetail/FwV", seq=1),
        Command(action="Get", uri="./DevDetail/SwV", seq=2),
        Command(action="Get", uri="./SCOMO/Inventory/Deployed" + STRUCT_DATA, seq=3),
    ]
    return run_on_device(call, request, commands, params={"inventory": True})


def notify_device(call, request):
    """Package 0 only (CC1, CC3): the device opens a session; no commands run."""
    response = run_on_device(call, request, [])
    device = resolve_device(call.services.store, request["device"], call=call)
    ui_mode = UI_MODES[request.get("uiMode", "informative" if call.customer_care else "notSpecified")]
    call.services.notify_now(device, ui_mode)
    return response


@lru_cache(maxsize=1)
def _profiles():
    with open(PROFILES_FILE, "rb") as f:
        return tomllib.load(f)["profile"]


def choose_profile(name, man, mod):
    """The most specific profile called ``name`` that fits the make/model."""
    best, best_score = None, -1
    for profile in _profiles():
        if profile["name"] != name:
            continue
        if profile.get("man") not in (None, man) or profile.get("mod") not in (None, mod):
            continue
        score = ("man" in profile) + ("mod" in profile)
        if score > best_score:
            best, best_score = profile, score
    return best


HANDLERS = {
    "GetDeviceData": get_device_data,
    "SetDeviceData": set_device_data,
    "ExecuteCommands": execute_commands,
    "GetDeviceTree": get_device_tree,
    "GetDeviceProfile": get_device_profile,
    "GetInventory": get_inventory,
    "NotifyDevice": notify_device,
}
