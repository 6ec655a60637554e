"""Crash safety (issue 10.1): `kill -9` of `dmwsi serve` at random moments of
a bulk job, restart on the same data directory; the job completes with one
final result per device and nothing left open.

The server is a subprocess on a fixed port (the devices' DM URL must survive
restarts); the fleet runs in this process on the test reactor. The seed
(DMWSI_CRASH_SEED, else random) is printed so a failure can be replayed;
DMWSI_CRASH_DEVICES scales the fleet (default 200, < 60 s on 2 cores).
"""
import os
import random
import signal
import socket
import subprocess
import sys
import time

from twisted.internet.threads import blockingCallFromThread

from dmwsi.sim.fleet import Fleet, sim_config_from_dict
from dmwsi.store import open_store
from dmwsi.records import TARGET_TERMINAL_STATES, Command, Device, Job
from tests.e2e.conftest import device_class

DEVICES = int(os.environ.get("DMWSI_CRASH_DEVICES", "200"))
KILLS = 3
MAX_ATTEMPTS = KILLS + 3        # a device in session at every kill still has attempts left


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir, port, log_path):
    env = dict(os.environ, DMWSI_DM_WAKEUP_INTERVAL="0.2", DMWSI_DM_NOTIFICATIONS_PER_TICK="1000",
               DMWSI_DM_RENOTIFY_AFTER="5", DMWSI_DM_MAX_ATTEMPTS=str(MAX_ATTEMPTS))
    with open(log_path, "a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dmwsi.cli", "-v", "serve", "--host", "127.0.0.1", "--http-port", str(port),
             "--https-port", "-1", "--data-dir", str(data_dir)],
            stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"server did not start (see {log_path})")


def poll_open_devices(reactor, fleet, store, job_id):
    """Devices with open work call in themselves, as real devices poll: a
    package 0 signed with a nonce the killed server never saved is refused
    by the device (403), and only a client-initiated session re-agrees it."""
    rows, _ = store.job_results(job_id, states=["pending"], limit=100_000)
    ids = [r.device_id for r in rows]
    reactor.callFromThread(lambda: fleet.start_client_sessions(ids))


def finished(store, job_id):
    counts = store.job_counts(job_id)
    return sum(counts[s] for s in TARGET_TERMINAL_STATES)


def test_kill_9_during_a_bulk_job_leaves_nothing_stuck(running_reactor, tmp_path):
    seed = int(os.environ.get("DMWSI_CRASH_SEED", random.randrange(1 << 30)))
    print(f"crash test seed {seed} (DMWSI_CRASH_SEED={seed} replays it), {DEVICES} devices")
    rng = random.Random(seed)
    data_dir, port = tmp_path / "data", free_port()
    config = sim_config_from_dict({"fleet": {"server_id": "dmwsi", "max_concurrent_sessions": 100},
                                   "class": [device_class(latency=0.02)]})

    def build():
        fleet = Fleet(config, DEVICES, f"http://127.0.0.1:{port}/dm", reactor=running_reactor)
        fleet.listen(0)
        return fleet
    fleet = blockingCallFromThread(running_reactor, build)
    proc = start_server(data_dir, port, tmp_path / "server.log")
    store = open_store(data_dir / "dmwsi.sqlite")     # the server's file, read beside it (WAL)
    try:
        for device_id in fleet.devices:
            r = fleet.registration_request(device_id)
            store.upsert_device(Device(
                device_id=device_id, auth_scheme=r["authScheme"], client_username=r["clientUsername"],
                client_password=r["clientPassword"], server_password=r["serverPassword"],
                notification_url=r["notificationUrl"]))
        commands = [Command("Get", "./DevInfo/Mod"), Command("Get", "./DevDetail/FwV"),
                    Command("Get", "./DevInfo/Man")]
        job = store.create_job(Job("tester", "ExecuteCommands"), commands, list(fleet.devices))
        # Kill at random points of progress, each while devices are in session.
        moments = sorted(rng.uniform(0.05, 0.85) for _ in range(KILLS))
        for fraction in moments:
            deadline = time.monotonic() + 60
            while finished(store, job.job_id) < fraction * DEVICES or not store.job_counts(job.job_id)["inSession"]:
                assert time.monotonic() < deadline, f"no progress to {fraction:.0%}: {store.job_counts(job.job_id)}"
                if store.get_job(job.job_id).state != "running" and finished(store, job.job_id) == DEVICES:
                    break
                time.sleep(rng.uniform(0.005, 0.05))
            in_session = store.job_counts(job.job_id)["inSession"]
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            print(f"killed at {finished(store, job.job_id)}/{DEVICES} finished, {in_session} in session")
            proc = start_server(data_dir, port, tmp_path / "server.log")
            poll_open_devices(running_reactor, fleet, store, job.job_id)
        deadline, next_poll = time.monotonic() + 90, 0
        while store.get_job(job.job_id).state == "running" or store.get_job(job.job_id).state == "pending":
            assert time.monotonic() < deadline, f"job stuck: {store.job_counts(job.job_id)}"
            if time.monotonic() > next_poll:
                poll_open_devices(running_reactor, fleet, store, job.job_id)
                next_poll = time.monotonic() + 3
            time.sleep(0.1)
        counts = store.job_counts(job.job_id)
        assert store.get_job(job.job_id).state == "completed"
        assert counts["pending"] == counts["inSession"] == 0
        assert counts["succeeded"] == DEVICES, counts
        rows, cursor = store.job_results(job.job_id, limit=DEVICES + 1)
        assert cursor is None and sorted(r.device_id for r in rows) == sorted(fleet.devices)
        for row in rows:
            statuses = [i.command_seq for i in row.items if i.format is None]
            assert statuses == [1, 2, 3], (row.device_id, statuses)     # one attempt's outcome, once
            assert 1 <= row.attempts <= KILLS + 1
    finally:
        print(blockingCallFromThread(running_reactor, fleet.summary_line), fleet.last_errors[-3:])
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        store.close()
        blockingCallFromThread(running_reactor, fleet.close)


def test_cancel_while_the_device_is_in_session_is_final(make_fleet):
    """Issue 11.4: CancelJob mid-session cancels the in-session target at once;
    what the session still reports is recorded but does not reopen it."""
    from dmwsi.client import soap_client

    h = make_fleet(1, [device_class(latency=0.3)], dm={"wakeup_interval": 0.2})
    h.register()
    job = h.submit([{"action": "Get", "uri": "./DevInfo/Mod"}, {"action": "Get", "uri": "./DevInfo/Man"}])
    device_id = h.ids[0]
    deadline = time.monotonic() + 20
    while h.store.get_target(job.job_id, device_id).state != "inSession":
        assert time.monotonic() < deadline, "the device never came into session"
        time.sleep(0.02)
    answer = soap_client(h.server.soap_url).service.CancelJob(jobId=job.job_id)
    assert (answer.state, answer.cancelled) == ("cancelled", 1)
    blockingCallFromThread(h.reactor, h.fleet.wait_idle)         # the session runs to its end
    target = h.store.get_target(job.job_id, device_id)
    assert target.state == "cancelled"
    assert h.store.get_job(job.job_id).state == "cancelled"
    assert h.store.job_counts(job.job_id)["pending"] == 0
