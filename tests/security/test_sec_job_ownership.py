"""Job ownership (issue 8 item 2): a job is visible to its owner and to roles
granting ``all-jobs``; to anyone else it answers exactly as a job that does
not exist. The attacker's requests are raw SOAP bytes over http.client
(UsernameToken digests), the owner and the all-jobs operator use zeep."""
import http.client
import re
import uuid
from urllib.parse import urlsplit

import pytest
import zeep
from lxml import etree
from zeep.exceptions import Fault
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from dmwsi.config import PROJECT_ROOT
from dmwsi.records import Device
from tests.conftest import fault_code
from tests.security.conftest import NS, SOAP, envelope, username_token_server

IN_SCOPE, OUT_OF_SCOPE = "IMEI:owned-in-scope", "IMEI:owned-out-of-scope"
# Two principals of the same role (secondary-dm: no all-jobs), an operator
# (all-jobs, cancel-any-job) and an auditor (all-jobs only).
PRINCIPALS = {"dm-a": "secondary-dm", "dm-b": "secondary-dm", "ops": "operator", "audit": "auditor"}
AUDITOR = """[roles.auditor]
operations = ["GetJobStatus", "GetJobResults", "AcknowledgeResults", "CancelJob", "ListJobs"]
devices = "all"
permissions = ["all-jobs"]
"""


def policy_text():
    lines = [f'[principals.{name}]\nroles = ["{role}"]\nusername = "{name}"\npassword = "{name}-pw"\n'
             for name, role in PRINCIPALS.items()]
    shipped = (PROJECT_ROOT / "conf" / "policy.toml").read_text()
    return "\n".join(lines) + "\n" + AUDITOR + "\n" + shipped[shipped.index("[roles.operator]"):]


@pytest.fixture(scope="module")
def server(running_reactor, tmp_path_factory, tls_pair):
    factory, srv = username_token_server(running_reactor, tmp_path_factory, tls_pair, "ownership", policy_text())
    for device_id in (IN_SCOPE, OUT_OF_SCOPE):
        # Nothing listens on the notification address: in-scope targets stay pending.
        srv.store.upsert_device(Device(device_id=device_id, man="Acme", client_password="c",
                                       server_password="s", notification_url="http://127.0.0.1:9/none"))
    srv.store.define_group("delegated-to-secondary", "test", members=[IN_SCOPE])
    yield srv
    factory.stop_all()


_clients = {}


def client(server, name):
    if name not in _clients:
        _clients[name] = zeep.Client(server.soap_url + "?wsdl", transport=Transport(timeout=30),
                                     wsse=UsernameToken(name, f"{name}-pw", use_digest=True))
    return _clients[name]


def a_job(server, owner="dm-a"):
    """A job of ``owner``: one target pending (no device answers), one
    refused (out of scope), i.e. a finished result that can be acknowledged."""
    answer = client(server, owner).service.SubmitBulkOperation(
        deviceIds=[IN_SCOPE, OUT_OF_SCOPE], commands=[{"action": "Get", "uri": "./DevInfo/Man"}])
    assert (answer.accepted, answer.refused) == (1, 1)
    return answer.jobId


def raw_call(server, name, body_xml):
    """POST a hand-built SOAP request as ``name`` -> (status, response bytes)."""
    env = envelope(body_xml)
    UsernameToken(name, f"{name}-pw", use_digest=True).apply(env, {})
    data = etree.tostring(env)
    url = urlsplit(server.soap_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
    try:
        conn.request("POST", url.path, body=data,
                     headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


JOB_OPERATIONS = {
    "GetJobStatus": "<d:GetJobStatus xmlns:d='{ns}'><d:jobId>{job}</d:jobId></d:GetJobStatus>",
    "GetJobResults": "<d:GetJobResults xmlns:d='{ns}'><d:jobId>{job}</d:jobId></d:GetJobResults>",
    "AcknowledgeResults": "<d:AcknowledgeResults xmlns:d='{ns}'><d:jobId>{job}</d:jobId></d:AcknowledgeResults>",
    "CancelJob": "<d:CancelJob xmlns:d='{ns}'><d:jobId>{job}</d:jobId></d:CancelJob>",
}


def fault_of(status, body):
    assert status == 500, body
    root = etree.fromstring(body)
    fault = root.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert fault is not None, body
    return fault.find(f"detail/{{{NS}}}FaultDetail").findtext(f"{{{NS}}}code")


@pytest.mark.parametrize("operation", sorted(JOB_OPERATIONS))
def test_someone_elses_job_answers_as_an_unknown_job(server, operation):
    job_id, unknown = a_job(server), str(uuid.uuid4())
    template = JOB_OPERATIONS[operation]
    theirs = raw_call(server, "dm-b", template.format(ns=NS, job=job_id))
    missing = raw_call(server, "dm-b", template.format(ns=NS, job=unknown))
    assert fault_of(*theirs) == fault_of(*missing) == "UnknownJob"
    # No oracle: the whole answer is the same but for the id the caller sent.
    assert theirs[0] == missing[0]
    assert re.sub(job_id.encode(), b"ID", theirs[1]) == re.sub(unknown.encode(), b"ID", missing[1])


def test_another_principal_can_neither_cancel_nor_acknowledge(server):
    store, job_id = server.store, a_job(server)
    for operation in ("CancelJob", "AcknowledgeResults"):
        status, body = raw_call(server, "dm-b", JOB_OPERATIONS[operation].format(ns=NS, job=job_id))
        assert fault_of(status, body) == "UnknownJob"
    assert store.get_job(job_id).state not in ("cancelled", "completed")
    assert {t.state for t in store.job_results(job_id, include_unfinished=True, limit=10)[0]} \
        == {"pending", "refused"}
    for reader in ("dm-a", "dm-b"):     # nobody's acknowledgement was written
        unacked, _ = store.job_results(job_id, unacknowledged_by=reader, limit=10)
        assert [r.device_id for r in unacked] == [OUT_OF_SCOPE]
    # ... and the owner still sees its job as it was.
    status = client(server, "dm-a").service.GetJobStatus(jobId=job_id)
    assert status.state != "cancelled" and status.counts.refused == 1


def test_list_jobs_shows_own_jobs_unless_all_jobs(server):
    mine, theirs = a_job(server, "dm-a"), a_job(server, "dm-b")

    def listed(name):
        return {j.jobId for j in client(server, name).service.ListJobs(pageSize=1000).jobs or []}
    assert mine in listed("dm-a") and theirs not in listed("dm-a")
    assert theirs in listed("dm-b") and mine not in listed("dm-b")
    assert {mine, theirs} <= listed("ops")
    assert {j.principal for j in client(server, "dm-b").service.ListJobs(pageSize=1000).jobs} == {"dm-b"}


def test_an_all_jobs_principal_sees_and_cancels_other_jobs(server):
    job_id, ops = a_job(server), client(server, "ops")
    assert ops.service.GetJobStatus(jobId=job_id).principal == "dm-a"
    results = ops.service.GetJobResults(jobId=job_id).results
    assert [(r.deviceId, r.state) for r in results] == [(OUT_OF_SCOPE, "refused")]
    assert ops.service.CancelJob(jobId=job_id).cancelled == 1
    assert server.store.get_job(job_id).state == "cancelled"


def test_the_owner_acknowledges_and_cancels_its_job(server):
    job_id, owner = a_job(server), client(server, "dm-a")
    assert owner.service.AcknowledgeResults(jobId=job_id).acknowledged == 1
    assert server.store.job_results(job_id, unacknowledged_by="dm-a", limit=10)[0] == []
    answer = owner.service.CancelJob(jobId=job_id)
    assert answer.cancelled == 1 and server.store.get_job(job_id).state == "cancelled"
    with pytest.raises(Fault) as info:      # and the refusal is still designed for a finished job
        owner.service.CancelJob(jobId=job_id)
    assert fault_code(info.value) == "JobNotCancellable"


def test_seeing_all_jobs_does_not_grant_changing_them(server):
    job_id, auditor = a_job(server), client(server, "audit")
    assert auditor.service.GetJobStatus(jobId=job_id).principal == "dm-a"
    for operation in ("CancelJob", "AcknowledgeResults"):
        with pytest.raises(Fault) as info:
            getattr(auditor.service, operation)(jobId=job_id)
        assert fault_code(info.value) == "NotAuthorized", operation
    assert server.store.get_job(job_id).state not in ("cancelled", "completed")
    unacked, _ = server.store.job_results(job_id, unacknowledged_by="audit", limit=10)
    assert [r.device_id for r in unacked] == [OUT_OF_SCOPE]
