"""Wake devices that have work: package 0 to each device with pending
targets that is not already in a session and was not notified recently.
Runs on the reactor, every ``wakeup_interval`` seconds and whenever a job is
created (``kick``).

Each scan also recovers targets no session will finish (crash safety): at
start-up every target left in session by the previous process, and then
targets held longer than ``jobs.session_lease`` by no live session here or
waiting longer than ``jobs.alert_window`` for a Generic Alert. They are
retried or failed by the job policy (``StoreBackend.recover``)."""
import logging
import random
import time
from datetime import datetime, timedelta, timezone

from twisted.internet import task

from dmwsi.dm import trigger
from dmwsi.jobs import announce

log = logging.getLogger(__name__)


class WakeUp:
    def __init__(self, store, dm_server, notifier, config, reactor, clock=time.monotonic, on_pushes=None,
                 view=None):
        self.store = store
        self.view = view or (lambda job: None)
        self.on_pushes = on_pushes or (lambda: None)
        self.dm_server = dm_server
        self.notifier = notifier
        self.dm = config["dm"]
        self.jobs = config["jobs"]
        self.reactor = reactor
        self.clock = clock
        self.notified = {}      # device id -> clock() of its last package 0, until it calls in
        self.waking = {}        # job id -> devices notified for it that have not called in yet
        self.loop = task.LoopingCall(self.tick)
        self.loop.clock = reactor
        self._kicked = False
        self._resume_after = None   # scan position: every pending device gets its turn
        dm_server.listeners.append(self.session_ended)

    def start(self):
        # Single node: no session of ours exists yet, so every target still in
        # session was held by a process that is gone.
        self.dm_server.backend.recover(held_before=None, accepted_before=self._accepted_before())
        self.loop.start(self.dm["wakeup_interval"], now=False)

    def _accepted_before(self):
        return datetime.now(timezone.utc) - timedelta(seconds=self.jobs["alert_window"])

    def _recover(self):
        """Targets held past the lease by no live session, or awaiting an alert past its window."""
        held_before = datetime.now(timezone.utc) - timedelta(seconds=self.jobs["session_lease"])
        self.dm_server.backend.recover(held_before=held_before, accepted_before=self._accepted_before(),
                                       live=self.dm_server.in_session)

    def stop(self):
        if self.loop.running:
            self.loop.stop()

    def kick(self):
        """New work was queued: look for devices to wake soon (coalesced)."""
        if not self._kicked:
            self._kicked = True
            self.reactor.callLater(0, self.tick)

    def session_ended(self, session):
        """The device called in: if it still has work, it may be woken again."""
        self.notified.pop(session.device_id, None)
        for devices in self.waking.values():
            devices.discard(session.device_id)

    def tick(self):
        """One scan; an error (a locked database...) is logged and the next scan tries again."""
        self._kicked = False
        try:
            self._scan()
        except Exception:
            log.exception("wake-up scan failed; retrying at the next interval")

    def _scan(self):
        self._recover()
        with self.store.transaction():
            expired = self.store.expire_jobs()      # devices that never came: timed out per job
            announce.jobs_completed(self.store, expired, self.view)
        if expired:
            log.info("expired %d job(s): %s", len(expired), ", ".join(expired[:10]))
            self.on_pushes()
        now = self.clock()
        self._forget_silent(now)
        budget = self.dm["notifications_per_tick"]
        page_size = budget * 4
        rows = self.store.wakeable_targets(after=self._resume_after, limit=page_size)
        # Resume after this page next time (or start over after a short page).
        self._resume_after = rows[-1].device_id if len(rows) == page_size else None
        customer_care = {}                       # job id -> flag, read once per scan
        for row in rows:
            if budget <= 0:
                self._resume_after = row.device_id
                break
            device_id = row.device_id
            if device_id in self.notified or self.dm_server.in_session(device_id):
                continue
            waking = self.waking.setdefault(row.job_id, set())
            if row.free_slots is not None and len(waking) >= row.free_slots:
                continue        # the job's concurrency is taken by devices in or coming to session
            device = self.store.get_device(device_id)
            if device is None or not device.server_password:
                continue
            waking.add(device_id)
            budget -= 1
            if row.job_id not in customer_care:
                job = self.store.get_job(row.job_id)
                customer_care[row.job_id] = bool(job and job.customer_care)
            # CC1: a session for customer care is marked so in package 0 (ui-mode informative).
            self.notify_device(device, trigger.UI_INFORMATIVE if customer_care[row.job_id]
                               else trigger.UI_NOT_SPECIFIED)

    def _forget_silent(self, now):
        """Devices notified long ago that never called in may be notified again."""
        quiet = self.dm["renotify_after"]
        for device_id, when in list(self.notified.items()):
            if now - when >= quiet:
                del self.notified[device_id]
                for devices in self.waking.values():
                    devices.discard(device_id)
        self.waking = {job: devices for job, devices in self.waking.items() if devices}

    def notify_device(self, device, ui_mode=trigger.UI_NOT_SPECIFIED):
        self.notified[device.device_id] = self.clock()
        package0 = trigger.build(
            self.dm["server_id"], device.server_password, device.server_nonce or b"",
            random.randint(1, 0xFFFF), ui_mode=ui_mode, version=self.dm["notification_version"])
        d = self.notifier.send(device, package0)
        d.addErrback(lambda f: log.warning("package 0 to %s failed: %s", device.device_id, f.getErrorMessage()))
        return d
