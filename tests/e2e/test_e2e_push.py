"""OES4 end to end: a bulk job on a simulated fleet with mixed outcomes,
results pushed to a real consumer (the reference consumer, generated from
the callback contract) in both modes, with the consumer down for a while."""
import os
import time
from datetime import datetime, timedelta, timezone

import pytest
from twisted.internet.threads import blockingCallFromThread

import zeep
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from dmwsi.client import soap_client
from dmwsi.config import PROJECT_ROOT
from dmwsi.wsi.consumer import ReferenceConsumer
from tests.e2e.conftest import device_class

COUNT = int(os.environ.get("DMWSI_FLEET_TEST_DEVICES", "1000"))


@pytest.fixture
def consumer(running_reactor):
    c = ReferenceConsumer(running_reactor)
    c.start()
    yield c
    c.close()


def test_bulk_job_with_mixed_outcomes_pushes_every_result_once(make_fleet, consumer, tmp_path):
    # A secondary DM server (UC 5.2) whose delegated devices are all but some:
    # those are refused by policy, device by device.
    shipped = (PROJECT_ROOT / "conf" / "policy.toml").read_text()
    policy = tmp_path / "policy.toml"
    policy.write_text('[principals.dm2]\nroles = ["secondary-dm"]\nusername = "dm2"\npassword = "pw"\n\n'
                      + shipped[shipped.index("[roles.operator]"):])
    classes = [device_class("good", share=8),
               device_class("broken", share=1, id_format="IMEI:77{index:013d}", fail_rate=1.0),
               device_class("offline", share=1, id_format="IMEI:99{index:013d}")]
    h = make_fleet(COUNT, classes, dm={"notifications_per_tick": 1000, "wakeup_interval": 0.2},
                   push={"poll_interval": 0.2, "initial_backoff": 0.2, "max_backoff": 1.0},
                   security={"policy_file": str(policy), "allow_anonymous": False,
                             "require_client_cert_for_roles": []})   # mTLS is tested in tests/security
    h.register()
    offline = [d for d in h.ids if d.startswith("IMEI:99")]
    broken = [d for d in h.ids if d.startswith("IMEI:77")]
    not_delegated = [d for d in h.ids if d.startswith("IMEI:35")][:30]
    h.store.define_group("delegated-to-secondary", "ops", members=[d for d in h.ids if d not in not_delegated])
    for d in offline:
        h.store.update_device(d, notification_url="http://127.0.0.1:9/nobody-listens")
    unknown = [f"IMEI:00{n:013d}" for n in range(25)]
    soap = zeep.Client(h.server.soap_url + "?wsdl", transport=Transport(timeout=60),
                       wsse=UsernameToken("dm2", "pw", use_digest=True))

    consumer.fail(how="http")                                   # the consumer is down at first
    answer = soap.service.SubmitBulkOperation(
        deviceIds=h.ids + unknown, commands=[{"action": "Get", "uri": "./DevInfo/Mod"}],
        schedule={"notAfter": datetime.now(timezone.utc) + timedelta(seconds=25)},
        delivery={"mode": "each", "callbackUrl": consumer.url})
    refused = unknown + not_delegated
    assert (answer.accepted, answer.refused) == (COUNT - len(not_delegated), len(refused))
    time.sleep(2)
    assert consumer.attempts and not consumer.pushes           # refused pushes were tried, and failed
    consumer.recover()                                          # back up

    counts = h.wait_job(answer.jobId, timeout=120)
    good = COUNT - len(offline) - len(broken) - len(not_delegated)
    assert counts == {"pending": 0, "inSession": 0, "succeeded": good, "failed": len(broken),
                      "refused": len(refused), "cancelled": 0, "timedOut": len(offline)}
    consumer.wait_for(lambda c: c.pushes_of(answer.jobId, "JobCompleted"), timeout=60)
    results = consumer.pushes_of(answer.jobId, "DeviceResult")
    by_device = {p["result"]["deviceId"]: p["result"] for p in results}
    assert len(results) == len(by_device) == COUNT + 25         # each device exactly once
    assert {d for d, r in by_device.items() if r["state"] == "refused"} == set(refused)
    # Unknown devices are outside the scope too: a scoped caller does not learn which devices exist.
    assert {by_device[d]["message"] for d in refused} == {"outside the caller's device scope"}
    assert {d for d, r in by_device.items() if r["state"] == "failed"} == set(broken)
    assert {d for d, r in by_device.items() if r["state"] == "timedOut"} == set(offline)
    good_result = by_device[next(d for d in h.ids if d.startswith("IMEI:35") and d not in not_delegated)]
    assert [i["value"] for i in good_result["items"]] == ["P1"]
    sequences = [p["sequence"] for p in consumer.pushes_of(answer.jobId)]
    assert sorted(sequences) == list(range(1, len(sequences) + 1))          # no gap, no repeat
    assert consumer.pushes_of(answer.jobId)[-1]["operation"] == "JobCompleted"

    # Pull agrees with push.
    pulled, cursor = {}, None
    while True:
        page = soap.service.GetJobResults(jobId=answer.jobId, pageSize=500, after=cursor)
        pulled.update({r.deviceId: r.state for r in page.results})
        cursor = page.nextCursor
        if cursor is None:
            break
    assert pulled == {d: r["state"] for d, r in by_device.items()}


def test_collated_mode_sends_results_available_once(make_fleet, consumer):
    h = make_fleet(20, dm={"wakeup_interval": 0.2}, push={"poll_interval": 0.2})
    h.register()
    soap = soap_client(h.server.soap_url)
    answer = soap.service.SubmitBulkOperation(deviceIds=h.ids, commands=[{"action": "Get", "uri": "./DevInfo/Man"}],
                                              delivery={"mode": "collated", "callbackUrl": consumer.url})
    h.wait_job(answer.jobId)
    consumer.wait_for(lambda c: c.pushes_of(answer.jobId, "JobCompleted"), timeout=30)
    ops = [p["operation"] for p in consumer.pushes_of(answer.jobId)]
    assert ops == ["ResultsAvailable", "JobCompleted"]
    available = consumer.pushes_of(answer.jobId, "ResultsAvailable")[0]
    assert available["counts"]["succeeded"] == 20 and available["state"] == "completed"
