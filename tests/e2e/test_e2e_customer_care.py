"""Customer care (UC 5.4): the tree it retrieves never holds a node outside
its node permissions, though the device has them; its jobs are marked."""
import zeep
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from dmwsi.config import PROJECT_ROOT

ALLOWED_PREFIXES = ("./DevInfo", "./DevDetail", "./Ext/Battery", "./Ext/Memory", "./Ext/Radio", "./FUMO",
                    "./SCOMO/Inventory")      # conf/policy.toml [roles.customer-care] nodes, read independently


def test_customer_care_tree_is_filtered_and_marked(make_fleet, tmp_path):
    shipped = (PROJECT_ROOT / "conf" / "policy.toml").read_text()
    policy = tmp_path / "policy.toml"
    policy.write_text('[principals.cc-agent]\nroles = ["customer-care"]\nusername = "agent"\npassword = "pw"\n\n'
                      + shipped[shipped.index("[roles.operator]"):])
    h = make_fleet(1, dm={"wakeup_interval": 0.2},
                   security={"policy_file": str(policy), "allow_anonymous": False})
    h.register()
    soap = zeep.Client(h.server.soap_url + "?wsdl", transport=Transport(timeout=30),
                       wsse=UsernameToken("agent", "pw", use_digest=True))
    answer = soap.service.GetDeviceTree(device={"deviceId": h.ids[0]}, synchronous=True, timeoutSeconds=20)
    returned = {i.uri for i in answer.results[0].items}
    assert returned, "the tree came back empty"
    leaked = {u for u in returned if not u.startswith(ALLOWED_PREFIXES)}
    assert not leaked, f"nodes outside customer care's permissions: {sorted(leaked)[:5]}"
    on_device = {uri for uri, _ in h.fleet.devices[h.ids[0]].tree.walk()}
    assert any(u.startswith("./DMAcc") for u in on_device)                # withheld, not absent
    assert "./DevInfo/Man" in returned and "./FUMO" in {u.rsplit("/", 1)[0] for u in returned} | returned
    job = h.store.get_job(answer.jobId)
    assert job.customer_care and job.principal == "cc-agent"
    log = [e for e in h.store.query_log(job_id=answer.jobId)[0] if e.device_id == h.ids[0]]
    assert log and all(e.customer_care for e in log)


def test_customer_care_package0_is_marked_informative(make_fleet):
    from dmwsi.dm import trigger
    h = make_fleet(2, dm={"wakeup_interval": 0.1})
    h.register()
    seen = {}
    original = h.fleet.on_notification

    def spy(device_id, pkg0):
        seen[device_id] = trigger.parse(pkg0).ui_mode
        return original(device_id, pkg0)
    h.fleet.on_notification = spy
    care = h.submit([{"action": "Get", "uri": "./DevInfo/Man"}], devices=h.ids[:1], customer_care=True)
    plain = h.submit([{"action": "Get", "uri": "./DevInfo/Man"}], devices=h.ids[1:])
    h.wait_job(care.job_id)
    h.wait_job(plain.job_id)
    assert seen == {h.ids[0]: trigger.UI_INFORMATIVE, h.ids[1]: trigger.UI_NOT_SPECIFIED}
