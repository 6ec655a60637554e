"""Discovery: what this server offers (ES7, EI6, OES11, OF6, ES8)."""
import tomllib
from datetime import datetime, timezone
from functools import lru_cache

from dmwsi.resources import CONF_DIR

INTERFACE_VERSIONS = ["1.0"]
CALLBACK_VERSIONS = ["1.0"]
MO_FILE = CONF_DIR / "management-objects.toml"


@lru_cache(maxsize=1)
def management_objects():
    """The DDF-like MO descriptions from conf/, as contract ManagementObjects."""
    with open(MO_FILE, "rb") as f:
        mos = tomllib.load(f)["mo"]
    return [{
        "moId": mo["id"], "rootUri": mo["root"], "description": mo["description"],
        "nodes": [{
            "path": n["path"], "format": n["format"],
            "accessTypes": [a.strip() for a in n["access"].split(",")],
            "occurrence": n["occurrence"], "description": n["description"],
        } for n in mo["nodes"]],
    } for mo in mos]


def get_service_info(call, request):
    services = call.services
    return {"info": {
        "interfaceVersions": INTERFACE_VERSIONS,
        "callbackVersions": CALLBACK_VERSIONS,
        "operations": services.built_operations(),
        "managementObjects": [{k: v for k, v in mo.items() if k != "nodes"} for mo in management_objects()],
        "serverCertificate": services.server_certificate_der(),
        "serverTime": datetime.now(timezone.utc),
    }}


def list_management_objects(call, request):
    wanted = set(request.get("moIds", []))
    include_nodes = request.get("includeNodes", True)
    result = []
    for mo in management_objects():
        if wanted and mo["moId"] not in wanted:
            continue
        result.append(mo if include_nodes else {k: v for k, v in mo.items() if k != "nodes"})
    return {"managementObjects": result}


def get_network_parameters(call, request):
    """The configured [network] parameter set (ES8), optionally filtered by name."""
    parameters = call.services.config.sections.get("network", {})
    names = request.get("names")
    return {"parameters": [
        {"name": name, "value": str(value)}
        for name, value in parameters.items() if not names or name in names
    ]}


HANDLERS = {
    "GetServiceInfo": get_service_info,
    "ListManagementObjects": list_management_objects,
    "GetNetworkParameters": get_network_parameters,
}
