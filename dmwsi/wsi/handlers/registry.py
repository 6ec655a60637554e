"""Devices, subscribers and groups (ES9, ES12, OM1)."""
from dmwsi.store.base import ConflictError, NotFound
from dmwsi.records import Device, Subscriber
from dmwsi.errors import OperationError
from dmwsi.wsi.handlers.common import resolve_device, selector_clauses, store_errors

# Contract DeviceInfo field -> Device attribute.
DEVICE_FIELDS = {
    "deviceId": "device_id", "alias": "alias", "msisdn": "msisdn", "imsi": "imsi", "imei": "imei",
    "subscriberId": "subscriber_id", "man": "man", "mod": "mod", "fwV": "fwv", "swV": "swv",
    "hwV": "hwv", "lang": "lang", "dmV": "dmv", "devTyp": "devtyp", "oem": "oem", "lastSeen": "last_seen",
}


def device_info(device):
    """A Device -> contract DeviceInfo."""
    return {wire: getattr(device, attr) for wire, attr in DEVICE_FIELDS.items()
            if getattr(device, attr) is not None}


def register_device(call, request):
    info = request["device"]
    store = call.services.store
    existing = store.get_device(info["deviceId"])
    fields = {attr: info[wire] for wire, attr in DEVICE_FIELDS.items() if wire in info and wire != "lastSeen"}
    device = Device(**fields)
    if existing is not None:
        # Re-registration updates what is given and keeps the rest (nonces, DevInfo).
        for attr, value in vars(existing).items():
            if getattr(device, attr) is None:
                setattr(device, attr, value)
    dm = call.services.config["dm"]
    device.auth_scheme = request.get("authScheme") or device.auth_scheme or dm["default_auth_scheme"]
    device.client_username = request.get("clientUsername") or device.client_username or device.device_id
    device.client_password = request.get("clientPassword") or device.client_password
    device.server_password = request.get("serverPassword") or device.server_password
    device.notification_url = request.get("notificationUrl") or device.notification_url
    if not device.client_password or not device.server_password:
        raise OperationError("InvalidArgument",
                         "a new device needs clientPassword and serverPassword for its DM account",
                         element="clientPassword" if not device.client_password else "serverPassword")
    try:
        stored = store.upsert_device(device)
    except ConflictError as e:
        raise OperationError("InvalidArgument", str(e), element="device")
    return {"deviceId": stored.device_id, "alias": stored.alias}


def register_subscriber(call, request):
    info = request["subscriber"]
    subscriber = Subscriber(subscriber_id=info["subscriberId"], msisdn=info.get("msisdn"),
                            name=info.get("name"), plan=info.get("servicePlan"),
                            attributes={k: info[k] for k in ("imsi", "status") if k in info})
    store = call.services.store
    with store.transaction():
        stored = store.upsert_subscriber(subscriber)
        for device_id in info.get("deviceIds", []):
            try:
                store.update_device(device_id, subscriber_id=stored.subscriber_id)
            except NotFound:
                raise OperationError("UnknownDevice", f"no registered device {device_id!r}", element="deviceIds")
    return {"subscriberId": stored.subscriber_id}


def get_subscriber_info(call, request):
    ref = request["subscriber"]
    store = call.services.store
    if ref.get("subscriberId") and len([v for v in ref.values() if v]) == 1:
        subscriber_id = ref["subscriberId"]
    else:
        subscriber_id = resolve_device(store, ref, element="subscriber", call=call).subscriber_id
    subscriber = store.get_subscriber(subscriber_id) if subscriber_id else None
    if subscriber is None:
        raise OperationError("UnknownSubscriber", "no subscriber matches the given reference", element="subscriber")
    info = {"subscriberId": subscriber.subscriber_id, "msisdn": subscriber.msisdn, "name": subscriber.name,
            "servicePlan": subscriber.plan, **{k: subscriber.attributes[k] for k in ("imsi", "status")
                                               if k in subscriber.attributes},
            "deviceIds": [d.device_id for d in subscriber.devices]}
    return {"subscriber": {k: v for k, v in info.items() if v is not None},
            "devices": [device_info(d) for d in subscriber.devices]}


def define_device_group(call, request):
    members, selector = request.get("members"), request.get("selector")
    if (members is None) == (selector is None):
        raise OperationError("InvalidArgument", "give either members or a selector", element="members")
    clauses = selector_clauses(selector) if selector is not None else None
    with store_errors():
        count = call.services.store.define_group(request["name"], call.principal,
                                                 members=members, selector=clauses)
    return {"name": request["name"], "memberCount": count}


HANDLERS = {
    "RegisterDevice": register_device,
    "RegisterSubscriber": register_subscriber,
    "GetSubscriberInfo": get_subscriber_info,
    "DefineDeviceGroup": define_device_group,
}
