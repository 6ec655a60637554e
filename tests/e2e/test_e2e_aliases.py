"""OES6: a principal without see-identity works with aliases only; no
response or push it receives contains an MSISDN, IMEI or real device id
(checked by scanning every byte it received)."""
import zeep
from lxml import etree
from zeep import Plugin
from zeep.transports import Transport
from zeep.wsse.username import UsernameToken

from dmwsi.config import PROJECT_ROOT
from dmwsi.wsi.consumer import ReferenceConsumer


class Recorder(Plugin):
    def __init__(self):
        self.received = []

    def ingress(self, envelope, http_headers, operation):
        self.received.append(etree.tostring(envelope))
        return envelope, http_headers


def test_alias_only_principal_never_sees_identities(make_fleet, tmp_path, running_reactor):
    shipped = (PROJECT_ROOT / "conf" / "policy.toml").read_text()
    policy = tmp_path / "policy.toml"
    policy.write_text('[principals.partner]\nroles = ["external"]\nusername = "partner"\npassword = "pw"\n\n'
                      '[principals.ops]\nroles = ["operator"]\nusername = "ops"\npassword = "ops"\n\n'
                      + shipped[shipped.index("[roles.operator]"):])
    h = make_fleet(2, dm={"wakeup_interval": 0.2}, push={"poll_interval": 0.2},
                   security={"policy_file": str(policy), "allow_anonymous": False})
    h.register()
    msisdns = {d: f"+1555000{n}" for n, d in enumerate(h.ids)}
    for d, msisdn in msisdns.items():
        h.store.update_device(d, msisdn=msisdn)
    h.store.define_group("external-partner", "ops", members=h.ids)
    recorder = Recorder()
    partner = zeep.Client(h.server.soap_url + "?wsdl", transport=Transport(timeout=30), plugins=[recorder],
                          wsse=UsernameToken("partner", "pw", use_digest=True))
    ops = zeep.Client(h.server.soap_url + "?wsdl", transport=Transport(timeout=30),
                      wsse=UsernameToken("ops", "ops", use_digest=True))
    consumer = ReferenceConsumer(running_reactor)
    consumer.start()
    try:
        # The partner knows the device by MSISDN only (the anonymised request of OES6 comes next).
        first = partner.service.GetDeviceData(device={"msisdn": msisdns[h.ids[0]]}, uris=["./DevInfo/Mod"],
                                              synchronous=True, timeoutSeconds=20,
                                              delivery={"mode": "each", "callbackUrl": consumer.url})
        alias = first.results[0].deviceId
        assert alias.startswith("A") and alias not in h.ids
        assert [i.value for i in first.results[0].items] == ["P1"]
        # From now on it addresses the device by its alias.
        again = partner.service.SetDeviceData(device={"alias": alias}, synchronous=True, timeoutSeconds=20,
                                              items=[{"uri": "./Browser/Favorites/Home", "value": "x"}])
        assert again.results[0].deviceId == alias
        partner.service.GetJobStatus(jobId=again.jobId)
        partner.service.GetJobResults(jobId=first.jobId)
        consumer.wait_for(lambda c: c.pushes_of(first.jobId, "JobCompleted"), timeout=20)
        # An operator sees the real identity of the same device.
        real = ops.service.GetJobResults(jobId=first.jobId).results[0]
        assert real.deviceId == h.ids[0]
    finally:
        consumer.close()
    forbidden = [*h.ids, *msisdns.values(), *(d.split(":", 1)[1] for d in h.ids)]
    received = recorder.received + [repr(p).encode() for p in consumer.pushes]
    assert len(recorder.received) >= 4 and consumer.pushes
    for blob in received:
        for secret in forbidden:
            assert secret.encode() not in blob, f"{secret} leaked to the alias-only principal"
