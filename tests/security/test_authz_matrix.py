"""OES7 authorization, generated from the shipped policy: every role ×
every operation, and for device work in-scope / out-of-scope devices ×
allowed / denied nodes. Callers authenticate with UsernameToken digests."""
import tomllib

import pytest
import zeep
from zeep.exceptions import Fault
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from dmwsi.config import PROJECT_ROOT
from dmwsi.store.records import Device
from dmwsi.wsi.contract import load_contract
from dmwsi.wsi.handlers import HANDLERS
from tests.conftest import fault_code
from tests.wsi.test_wsi_operations import minimal

POLICY = tomllib.loads((PROJECT_ROOT / "conf" / "policy.toml").read_text())
ROLES = sorted(POLICY["roles"])
# Expectations are read straight from the policy data, not through
# dmwsi.authz (which the server uses), so a wrong Authorizer cannot agree
# with itself.


def may_call(role, operation):
    ops = POLICY["roles"][role].get("operations", [])
    return "*" in ops or operation in ops


def in_scope(role, device):
    """By construction of the fixture: IN_SCOPE is in every group a role names."""
    devices = POLICY["roles"][role].get("devices", {})
    return devices == "all" or (device == IN_SCOPE and bool(devices.get("groups")))


def everywhere(role, action):
    return any(r["path"] == "**" and action in r["actions"] for r in POLICY["roles"][role].get("nodes", []))
CONTRACT = load_contract()
IN_SCOPE, OUT_OF_SCOPE = "IMEI:in-scope", "IMEI:out-of-scope"


def policy_text():
    """The shipped roles, one principal per role (password = role name)."""
    lines = [f'[principals.{r}-user]\nroles = ["{r}"]\nusername = "{r}-user"\npassword = "{r}-pw"\n' for r in ROLES]
    shipped = (PROJECT_ROOT / "conf" / "policy.toml").read_text()
    return "\n".join(lines) + "\n" + shipped[shipped.index("[roles.operator]"):]


@pytest.fixture(scope="module")
def server(running_reactor, tmp_path_factory, tls_pair):
    from tests.conftest import ServerFactory
    directory = tmp_path_factory.mktemp("authz")
    policy = directory / "policy.toml"
    policy.write_text(policy_text())
    factory = ServerFactory(running_reactor, directory, tls_pair)
    # mTLS for secondary-dm is tested in test_sec_mtls.py; here every role uses UsernameToken.
    srv = factory(security={"policy_file": str(policy), "allow_anonymous": False,
                            "require_client_cert_for_roles": []})
    store = srv.store
    for device_id in (IN_SCOPE, OUT_OF_SCOPE):
        store.upsert_device(Device(device_id=device_id, man="Acme", client_password="c", server_password="s",
                                   notification_url="http://127.0.0.1:9/none"))
    for group in ("delegated-to-secondary", "external-partner"):
        store.define_group(group, "test", members=[IN_SCOPE])
    yield srv
    factory.stop_all()


_clients = {}


def client_for(server, role):
    if role not in _clients:
        transport = Transport(timeout=30)
        _clients[role] = zeep.Client(server.soap_url + "?wsdl", transport=transport,
                                     wsse=UsernameToken(f"{role}-user", f"{role}-pw", use_digest=True))
    return _clients[role]


def outcome(call):
    try:
        call()
        return "ok"
    except Fault as fault:
        return fault_code(fault)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("operation", sorted(set(CONTRACT.operations) & set(HANDLERS)))
def test_operation_matrix(server, role, operation):
    request = minimal(CONTRACT.elements[CONTRACT.operations[operation].input])
    got = outcome(lambda: getattr(client_for(server, role).service, operation)(**request))
    if may_call(role, operation):
        assert got != "NotAuthorized", f"{role} should be allowed {operation}"
    else:
        assert got == "NotAuthorized", f"{role} must be refused {operation}, got {got}"


def node_cases(role):
    """(uri, action, allowed) cases from the role's own rules, plus denied ones."""
    cases = []
    for rule in POLICY["roles"][role].get("nodes", []):
        uri = rule["path"].replace("**", "X").replace("*", "X")
        uri = uri if uri.startswith(".") else "./" + uri
        for action in rule["actions"]:
            cases.append((uri, action, True))
    for uri, action in (("./DMAcc/dmwsi/AppAuth/CLCRED/AAuthSecret", "Replace"), ("./DevInfo/DevId", "Delete")):
        cases.append((uri, action, everywhere(role, action)))   # no narrower rule covers these
    return cases


DEVICE_CASES = [(role, uri, action, allowed, device)
                for role in ROLES if may_call(role, "ExecuteCommands") or may_call(role, "SubmitBulkOperation")
                for uri, action, allowed in node_cases(role)
                for device in (IN_SCOPE, OUT_OF_SCOPE)]


@pytest.mark.parametrize("role,uri,action,allowed,device", DEVICE_CASES)
def test_device_and_node_matrix(server, role, uri, action, allowed, device):
    soap = client_for(server, role)
    command = {"action": action, "uri": uri, **({"value": "v"} if action in ("Replace", "Add") else {})}
    scoped = in_scope(role, device)
    if may_call(role, "ExecuteCommands"):
        got = outcome(lambda: soap.service.ExecuteCommands(device={"deviceId": device}, commands=[command]))
        assert got == ("ok" if allowed and scoped else "NotAuthorized"), (role, uri, action, device)
    else:   # bulk-only roles: out-of-scope devices are refused one by one
        try:
            answer = soap.service.SubmitBulkOperation(deviceIds=[device], commands=[command])
        except Fault as fault:
            assert not allowed and fault_code(fault) == "NotAuthorized"
            return
        assert allowed
        assert (answer.accepted, answer.refused) == ((1, 0) if scoped else (0, 1))
        if not scoped:
            results = soap.service.GetJobResults(jobId=answer.jobId).results
            assert results[0].state == "refused" and "scope" in results[0].message


def test_secondary_dm_batch_over_its_limit_is_refused_whole(server):
    soap = client_for(server, "secondary-dm")
    devices = [IN_SCOPE] * 1 + [f"IMEI:{n}" for n in range(POLICY["roles"]["secondary-dm"]["max_batch"])]
    with pytest.raises(Fault) as info:
        soap.service.SubmitBulkOperation(deviceIds=devices, commands=[{"action": "Get", "uri": "./DevInfo/Man"}])
    assert fault_code(info.value) == "PolicyRefused"


def test_replace_without_get_oes7(server):
    soap = client_for(server, "external")
    ok = soap.service.SetDeviceData(device={"deviceId": IN_SCOPE},
                                    items=[{"uri": "./Browser/Favorites/Home", "value": "https://example.net"}])
    assert ok.jobId
    with pytest.raises(Fault) as info:
        soap.service.GetDeviceData(device={"deviceId": IN_SCOPE}, uris=["./Browser/Favorites/Home"])
    assert fault_code(info.value) == "NotAuthorized"


def test_transaction_log_shows_a_principal_only_its_own_rows(server):
    dm2, operator = client_for(server, "secondary-dm"), client_for(server, "operator")
    dm2.service.GetServiceInfo()
    operator.service.GetServiceInfo()
    own = {e.principal for e in dm2.service.GetTransactionLog(pageSize=1000).entries}
    assert own == {"secondary-dm-user"}
    with pytest.raises(Fault) as info:
        dm2.service.GetTransactionLog(principal="operator-user")
    assert fault_code(info.value) == "NotAuthorized"
    everyone = {e.principal for e in operator.service.GetTransactionLog(pageSize=1000).entries}
    assert {"secondary-dm-user", "operator-user"} <= everyone
