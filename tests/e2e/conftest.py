"""End to end: a real dmwsi server and a simulated fleet on the same reactor,
talking HTTP over loopback (package 0 one way, SyncML sessions the other)."""
import time

import pytest
from twisted.internet.threads import blockingCallFromThread

from dmwsi.jobs.submit import JobRequest, submit
from dmwsi.sim.fleet import Fleet, sim_config_from_dict
from dmwsi.records import Command, Device


def device_class(name="phone", **fields):
    base = {"name": name, "share": 1, "id_format": "IMEI:35{index:013d}", "man": "Acme", "mod": "P1",
            "fwv": "1.0", "auth_scheme": "md5", "encoding": "xml", "latency": 0.0}
    base.update(fields)
    return base


class FleetHarness:
    def __init__(self, reactor, server, fleet):
        self.reactor, self.server, self.fleet = reactor, server, fleet
        self.store = server.store

    @property
    def ids(self):
        return list(self.fleet.devices)

    def register(self, device_ids=None):
        """Straight into the store (what RegisterDevice writes), fast for big fleets."""
        for device_id in device_ids or self.ids:
            r = self.fleet.registration_request(device_id)
            info = r["device"]
            self.store.upsert_device(Device(
                device_id=device_id, man=info["man"], mod=info["mod"], fwv=info["fwV"], imei=info.get("imei"),
                auth_scheme=r["authScheme"], client_username=r["clientUsername"],
                client_password=r["clientPassword"], server_password=r["serverPassword"],
                notification_url=r["notificationUrl"]))

    def submit(self, commands, devices=None, operation="ExecuteCommands", **options):
        commands = [c if isinstance(c, Command) else Command(seq=n, **c) for n, c in enumerate(commands, 1)]
        return submit(self.server.services, JobRequest(
            principal="tester", operation=operation, devices=devices or self.ids, commands=commands, **options))

    def client_sessions(self, device_ids=None, timeout=120):
        return blockingCallFromThread(self.reactor, lambda: self.fleet.start_client_sessions(device_ids)
                                      .addCallback(lambda r: r))

    def wait_job(self, job_id, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.store.get_job(job_id).state in ("completed", "cancelled", "expired"):
                return self.store.job_counts(job_id)
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} not finished: {self.store.job_counts(job_id)}")

    def results(self, job_id):
        rows, cursor = self.store.job_results(job_id, limit=1000, include_unfinished=True)
        assert cursor is None
        return {r.device_id: r for r in rows}


@pytest.fixture
def make_fleet(running_reactor, start_server):
    fleets = []

    def make(count=3, classes=None, server=None, **server_config):
        server = server or start_server(**server_config)
        config = sim_config_from_dict({"fleet": {"server_id": "dmwsi", "max_concurrent_sessions": 100},
                                       "class": classes or [device_class()]})
        fleet = blockingCallFromThread(running_reactor, _build, running_reactor, config, count,
                                       server.url("http", "dm"))
        fleets.append(fleet)
        return FleetHarness(running_reactor, server, fleet)

    yield make
    for fleet in fleets:
        blockingCallFromThread(running_reactor, fleet.close)


def _build(reactor, config, count, dm_url):
    fleet = Fleet(config, count, dm_url, reactor=reactor)
    fleet.listen(0)
    return fleet
