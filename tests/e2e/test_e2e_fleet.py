"""A thousand simulated devices, one server process, one Get session each
(a functional check with a generous bound; speed lives in bench/)."""
import os

from tests.e2e.conftest import device_class

COUNT = int(os.environ.get("DMWSI_FLEET_TEST_DEVICES", "1000"))


def test_thousand_devices_complete_a_get_session(make_fleet):
    classes = [device_class("md5-xml", share=2),
               device_class("hmac-wbxml", share=1, id_format="IMEI:86{index:013d}", auth_scheme="hmac",
                            encoding="wbxml", mod="M200")]
    h = make_fleet(COUNT, classes, dm={"notifications_per_tick": 1000, "wakeup_interval": 0.2})
    h.register()
    job = h.submit([{"action": "Get", "uri": "./DevInfo/Mod"}])
    counts = h.wait_job(job.job_id, timeout=240)
    assert counts["succeeded"] == COUNT, counts
    summary = h.fleet.summary()
    assert summary["timeouts"] == 0 and summary["http_errors"] == 0 and summary["failed"] == 0
    models = {r.device_id: [i.value for i in r.items if i.format] for r in h.results(job.job_id).values()}
    assert len(models) == COUNT
    assert all(v == ["M200"] if d.startswith("IMEI:86") else v == ["P1"] for d, v in models.items())
