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
from dmwsi.records import Device, Subscriber
from dmwsi.contract import load_contract
from dmwsi.wsi.handlers import HANDLERS
from tests.conftest import fault_code
from tests.security.conftest import username_token_server
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
IN_SCOPE_MSISDN, OUT_OF_SCOPE_MSISDN = "+4917000000001", "+4917000000002"
OUT_OF_SCOPE_SUBSCRIBER = "SUB-out-of-scope"


def policy_text():
    """The shipped roles, one principal per role (password = role name)."""
    lines = [f'[principals.{r}-user]\nroles = ["{r}"]\nusername = "{r}-user"\npassword = "{r}-pw"\n' for r in ROLES]
    shipped = (PROJECT_ROOT / "conf" / "policy.toml").read_text()
    return "\n".join(lines) + "\n" + shipped[shipped.index("[roles.operator]"):]


@pytest.fixture(scope="module")
def server(running_reactor, tmp_path_factory, tls_pair):
    factory, srv = username_token_server(running_reactor, tmp_path_factory, tls_pair, "authz", policy_text())
    store = srv.store
    store.upsert_subscriber(Subscriber(subscriber_id=OUT_OF_SCOPE_SUBSCRIBER))
    for device_id, msisdn in ((IN_SCOPE, IN_SCOPE_MSISDN), (OUT_OF_SCOPE, OUT_OF_SCOPE_MSISDN)):
        store.upsert_device(Device(device_id=device_id, man="Acme", client_password="c", server_password="s",
                                   notification_url="http://127.0.0.1:9/none", msisdn=msisdn,
                                   subscriber_id=OUT_OF_SCOPE_SUBSCRIBER if device_id == OUT_OF_SCOPE else None))
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


# --- Issue 8: attacks sent as raw bytes (a client library would not send them as written) ---

def raw_call(server, role, operation, **request):
    """Send ``operation`` as raw SOAP bytes over http.client, authenticated as
    the role's principal; (faultcode or "ok", fault message or None, response root)."""
    import http.client
    from urllib.parse import urlsplit
    from lxml import etree
    client = client_for(server, role)
    body = etree.tostring(client.create_message(client.service, operation, **request))
    url = urlsplit(server.soap_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    connection.request("POST", url.path, body=body, headers={"Content-Type": "text/xml; charset=utf-8",
                                                             "SOAPAction": f'"{operation}"'})
    response = connection.getresponse()
    root = etree.fromstring(response.read())
    connection.close()
    detail = root.find("{*}Body/{*}Fault/detail/{*}FaultDetail")
    if detail is None:
        assert response.status == 200
        return "ok", None, root
    assert response.status == 500
    return detail.findtext("{*}code"), detail.findtext("{*}message"), root


def has_permission(role, permission):
    return permission in POLICY["roles"][role].get("permissions", [])


@pytest.fixture(scope="module")
def jobs(server):
    """One job per job-submitting principal, each on both devices."""
    made = {}
    for role in ("operator", "secondary-dm", "customer-care"):
        answer = client_for(server, role).service.SubmitBulkOperation(
            deviceIds=[IN_SCOPE, OUT_OF_SCOPE], commands=[{"action": "Get", "uri": "./DevInfo/Mod"}])
        made[role] = answer.jobId
    return made


UNKNOWN_JOB_ID = "0" * 32


JOB_READ_CASES = [(reader, owner, op) for reader in ROLES for owner in ("operator", "secondary-dm", "customer-care")
                  for op in ("GetJobStatus", "GetJobResults", "AcknowledgeResults", "CancelJob")
                  if may_call(reader, op)]


@pytest.mark.parametrize("reader,owner,operation", JOB_READ_CASES)
def test_job_ownership_matrix(server, jobs, reader, owner, operation):
    """A job is visible to its owner and to all-jobs; someone else's job
    answers exactly like a job that does not exist (no oracle). Cancel and
    acknowledge of another's job also need cancel-any-job."""
    job_id = jobs[owner]
    if operation == "CancelJob" and reader == owner:
        return     # cancelling its own job is covered by test_owner_and_cancel_any_job_may_cancel
    got, message, _ = raw_call(server, reader, operation, jobId=job_id)
    sees = reader == owner or has_permission(reader, "all-jobs")
    changes = operation in ("CancelJob", "AcknowledgeResults")
    if not sees:
        unknown, unknown_message, _ = raw_call(server, reader, operation, jobId=UNKNOWN_JOB_ID)
        assert (got, message.replace(job_id, "<id>")) == (unknown, unknown_message.replace(UNKNOWN_JOB_ID, "<id>"))
        assert got == "UnknownJob"
    elif changes and reader != owner and not has_permission(reader, "cancel-any-job"):
        assert got == "NotAuthorized"
    else:
        assert got == "ok", (reader, owner, operation, message)


def test_owner_and_cancel_any_job_may_cancel(server):
    dm2, operator = client_for(server, "secondary-dm"), client_for(server, "operator")
    own = dm2.service.SubmitBulkOperation(deviceIds=[IN_SCOPE], commands=[{"action": "Get", "uri": "./DevInfo/Mod"}])
    assert dm2.service.CancelJob(jobId=own.jobId).state in ("cancelled", "cancelling")
    other = dm2.service.SubmitBulkOperation(deviceIds=[IN_SCOPE], commands=[{"action": "Get", "uri": "./DevInfo/Mod"}])
    assert has_permission("operator", "cancel-any-job")
    assert operator.service.CancelJob(jobId=other.jobId).state in ("cancelled", "cancelling")


@pytest.mark.parametrize("role", [r for r in ROLES if may_call(r, "ListJobs")])
def test_list_jobs_shows_own_jobs_unless_all_jobs(server, jobs, role):
    _, _, root = raw_call(server, role, "ListJobs", pageSize=1000)
    owners = {e.text for e in root.iter("{*}principal")}
    listed = {e.text for e in root.iter("{*}jobId")}
    if has_permission(role, "all-jobs"):
        assert set(jobs.values()) <= listed
    else:
        assert owners <= {f"{role}-user"}
        assert listed & set(jobs.values()) == ({jobs[role]} if role in jobs else set())


def test_results_of_a_bulk_job_show_the_owner_its_refusals(server, jobs):
    """secondary-dm's own job: the device outside its scope appears, as refused (UC 5.2)."""
    _, _, root = raw_call(server, "secondary-dm", "GetJobResults", jobId=jobs["secondary-dm"])
    rows = {r.findtext("{*}deviceId"): r.findtext("{*}state") for r in root.iter("{*}results")}
    assert rows[OUT_OF_SCOPE] == "refused" and IN_SCOPE in rows


BAD_URIS = ["./Browser/Favorites/../../DMAcc/dmwsi/AppAddr", "./Browser/Favorites/./X", "./Browser/Favorites//X",
            "./Browser/Favorites/%2e%2e/%2E%2E/DMAcc", "./Browser/Favorites/X/", "./Browser/Favorites/X?acl=Get",
            "/Browser/Favorites/X", "./Browser/Favorites/X?list=Struct?prop=ACL"]


@pytest.mark.parametrize("uri", BAD_URIS)
@pytest.mark.parametrize("role,operation,request_for", [
    ("external", "SetDeviceData", lambda uri: {"device": {"deviceId": IN_SCOPE}, "items": [{"uri": uri, "value": "v"}]}),
    ("external", "GetDeviceData", lambda uri: {"device": {"deviceId": IN_SCOPE}, "uris": [uri]}),
    ("operator", "ExecuteCommands", lambda uri: {"device": {"deviceId": IN_SCOPE},
                                                 "commands": [{"action": "Replace", "uri": uri, "value": "v"}]}),
    ("operator", "ExecuteCommands", lambda uri: {"device": {"deviceId": IN_SCOPE},
                                                 "commands": [{"action": "Copy", "uri": "./A", "sourceUri": uri}]}),
    ("secondary-dm", "SubmitBulkOperation", lambda uri: {"deviceIds": [IN_SCOPE],
                                                         "commands": [{"action": "Get", "uri": uri}]}),
])
def test_non_canonical_uri_is_refused_before_authorization(server, uri, role, operation, request_for):
    """Issue 8: `..` let a ./Browser/Favorites/* principal reach ./DMAcc. Every
    non-canonical URI is a Client fault (even for the operator, whose rules
    allow everything), and no job is written."""
    before = len(server.store.list_jobs(limit=100000)[0])
    got, message, _ = raw_call(server, role, operation, **request_for(uri))
    assert got == "InvalidArgument", message
    assert len(server.store.list_jobs(limit=100000)[0]) == before


@pytest.mark.parametrize("uri", ["./Browser/Favorites/X", "Browser/Favorites/X"])
def test_canonical_uris_still_pass(server, uri):
    got, message, _ = raw_call(server, "external", "SetDeviceData", device={"deviceId": IN_SCOPE},
                               items=[{"uri": uri, "value": "v"}])
    assert got == "ok", message


@pytest.mark.parametrize("role", [r for r in ROLES if may_call(r, "SetDeviceData") or may_call(r, "GetDeviceData")])
def test_unknown_and_out_of_scope_devices_answer_alike(server, role):
    """Issue 8 existence oracle: unknown device / MSISDN and one outside the
    caller's scope give the same code and message; the log keeps the reason."""
    operation = "GetDeviceData" if may_call(role, "GetDeviceData") else "SetDeviceData"

    def attempt(ref):
        request = {"device": ref, **({"uris": ["./DevInfo/Mod"]} if operation == "GetDeviceData"
                                     else {"items": [{"uri": "./Browser/Favorites/X", "value": "v"}]})}
        return raw_call(server, role, operation, **request)[:2]

    answers = {kind: attempt(ref) for kind, ref in (
        ("unknown id", {"deviceId": "IMEI:nobody"}), ("unknown msisdn", {"msisdn": "+4917099999999"}),
        ("foreign id", {"deviceId": OUT_OF_SCOPE}), ("foreign msisdn", {"msisdn": OUT_OF_SCOPE_MSISDN}))}
    if POLICY["roles"][role].get("devices") == "all":
        assert answers["unknown id"][0] == answers["unknown msisdn"][0] == "UnknownDevice"
        return
    assert len(set(answers.values())) == 1, answers
    assert answers["unknown id"][0] == "NotAuthorized"
    reasons = [e.summary for e in server.store.query_log(principal=f"{role}-user", limit=1000)[0]
               if e.error_code == "NotAuthorized"]
    assert any("no registered device" in r for r in reasons) and any("scope" in r for r in reasons)


@pytest.mark.parametrize("role", [r for r in ROLES if may_call(r, "SubmitBulkOperation")
                                  and POLICY["roles"][r].get("devices") != "all"])
def test_bulk_unknown_and_foreign_subscribers_answer_alike(server, role):
    """Issue 8 existence oracle in bulk targets: to a scoped caller an unknown
    subscriber and one whose devices are all outside its scope answer alike,
    and no job is written."""
    jobs_before = len(server.store.list_jobs(limit=1000)[0])
    answers = {sub: raw_call(server, role, "SubmitBulkOperation", subscriberIds=[sub],
                             commands=[{"action": "Get", "uri": "./DevInfo/Mod"}])[:2]
               for sub in ("SUB-nobody", OUT_OF_SCOPE_SUBSCRIBER)}
    assert len(set(answers.values())) == 1, answers
    assert answers["SUB-nobody"][0] == "NotAuthorized"
    assert len(server.store.list_jobs(limit=1000)[0]) == jobs_before
