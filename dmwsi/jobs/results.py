"""Store results -> contract DeviceResult: command statuses, returned items,
and the shapes some operations give them (depth-limited trees, inventory)."""
STATE_SUFFIX = "?list="
DEPLOYED = "./SCOMO/Inventory/Deployed/"
COMPONENT_FIELDS = {"ID": "componentId", "Name": "name", "Version": "version", "PkgIDRef": "packageId",
                    "State": "state"}
COMPONENT_STATES = {"10": "inactive", "20": "active"}


def device_result(job, row, visible=None):
    """``row``: a store DeviceResult (its items and the commands they answer);
    ``visible(uri)``: whether the reader may see a node (OES7) - others are left out."""
    by_seq = {c.seq: c for c in row.commands}      # the device's own commands, else the job's
    statuses, items = [], []
    for item in row.items:
        if item.format is None and item.value is None:          # a command's status row
            cmd = by_seq.get(item.command_seq)
            statuses.append({"index": item.command_seq or 0, "action": cmd.action if cmd else "Get",
                             "uri": item.uri or "", "statusCode": item.status_code or 0,
                             **({"correlator": cmd.correlator} if cmd and cmd.correlator else {})})
        elif visible is None or visible(item.uri or ""):
            items.append(item)
    request = (job.params or {}).get("request", {})
    depth = request.get("depth")
    if depth:
        items = [i for i in items if _within_depth(i, by_seq.get(i.command_seq), depth)]
    out = {
        "jobId": row.job_id, "deviceId": row.device_id, "state": row.state,
        "statusCode": row.status_code, "errorCode": row.error_code,
        "message": row.message or row.refused_reason, "completedAt": row.finished_at,
        "items": [{"uri": i.uri or "", "value": _text(i.value), "format": i.format, "type": i.type}
                  for i in items],
        "commandStatuses": statuses,
    }
    if request.get("inventory"):
        out["inventory"] = inventory(items)
    return {k: v for k, v in out.items() if v is not None}


def _within_depth(item, command, depth):
    if command is None or item.uri is None:
        return True
    root = command.uri.split(STATE_SUFFIX)[0].rstrip("/")
    if not item.uri.startswith(root):
        return True
    below = item.uri[len(root):].strip("/")
    return (below.count("/") + 1 if below else 0) <= depth


def inventory(items):
    """FwV/SwV and the deployed SCOMO components from an inventory job's items."""
    inv = {"components": []}
    components = {}
    for item in items:
        uri = item.uri or ""
        if uri == "./DevDetail/FwV":
            inv["firmwareVersion"] = _text(item.value)
        elif uri == "./DevDetail/SwV":
            inv["softwareVersion"] = _text(item.value)
        elif uri.startswith(DEPLOYED):
            parts = uri[len(DEPLOYED):].split("/")
            if len(parts) == 2 and parts[1] in COMPONENT_FIELDS:
                value = _text(item.value)
                if parts[1] == "State":
                    value = COMPONENT_STATES.get(value, value)
                components.setdefault(parts[0], {"componentId": parts[0]})[COMPONENT_FIELDS[parts[1]]] = value
    inv["components"] = [components[k] for k in sorted(components)]
    return inv


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
