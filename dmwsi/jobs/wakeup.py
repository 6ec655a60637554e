"""Wake devices that have work: package 0 to each device with pending
targets that is not already in a session and was not notified recently.
A scan runs every ``wakeup_interval`` seconds and whenever a job is created
(``kick``).

Threads: the scan reads and writes the store, so it runs on the store
thread (dmwsi.store.thread), like the DM session engine whose session
table it asks; it returns the devices to wake, and only the package 0
sends happen on the reactor. The bookkeeping of notified devices is touched
on the store thread only (the DM server's session-ended listener runs there
too), so it needs no lock.

Each scan also recovers targets no session will finish (crash safety): at
start-up every target left in session by the previous process, and then
targets held longer than ``jobs.session_lease`` by no live session here or
waiting longer than ``jobs.alert_window`` for a Generic Alert. They are
retried or failed by the job policy (``StoreBackend.recover``).

Expiry runs only when due: the scan keeps the earliest deadline
(``expires_at``/``not_after``) of the active jobs and calls
``store.expire_jobs`` -- a write -- only once it has passed; the deadline is
read again when a job is created or expired. A job whose deadline passed
while its devices were all in session is left active by expiry (they finish
it); it is looked at again only when one of its targets goes back to
pending (``targets_requeued``). The expired devices' pushes are not written
here: the state change commits alone and the announcer
(dmwsi.jobs.announce.Announcer) enqueues them in batches afterwards.
"""
import logging
import random
import time
from datetime import datetime, timedelta, timezone

from twisted.internet import task

from dmwsi.dm import trigger
from dmwsi.records import JOB_ACTIVE_STATES

log = logging.getLogger(__name__)

_JOB_PAGE = 500


class WakeUp:
    def __init__(self, store, dm_server, notifier, config, reactor, store_thread, announcer,
                 clock=time.monotonic):
        self.store = store
        self.store_thread = store_thread
        self.announcer = announcer
        self.dm_server = dm_server
        self.notifier = notifier
        self.dm = config["dm"]
        self.jobs = config["jobs"]
        self.reactor = reactor
        self.clock = clock
        # Store thread only:
        self.notified = {}      # device id -> clock() of its last package 0, until it calls in
        self.waking = {}        # job id -> devices notified for it that have not called in yet
        self._resume_after = None   # scan position: every pending device gets its turn
        self._deadlines_read_at = -1    # the value of _jobs_created when they were last read
        self._next_deadline = None      # earliest deadline not yet expired (None: none)
        self._expired_through = None    # when expiry last ran (None: it runs at the next scan)
        # Reactor thread only (the store thread reads _jobs_created):
        self._kicked = False
        self._jobs_created = 0          # kicks so far: deadlines read before the last one are stale
        self.loop = task.LoopingCall(self.tick)
        self.loop.clock = reactor
        dm_server.listeners.append(self.session_ended)
        dm_server.backend.on_requeued = self.targets_requeued

    def start(self):
        # Single node: no session of ours exists yet, so every target still in
        # session was held by a process that is gone. Queued before the DM
        # port opens, so it runs before any device message.
        self.store_thread.run(self.dm_server.backend.recover, held_before=None,
                              accepted_before=self._accepted_before()).addErrback(
            lambda f: log.error("recovery at start-up failed: %s", f.getTraceback()))
        self.loop.start(self.dm["wakeup_interval"], now=False)

    def stop(self):
        if self.loop.running:
            self.loop.stop()

    def kick(self):
        """New work was queued (reactor thread): look for devices to wake soon (coalesced)."""
        self._jobs_created += 1            # the new job may be the next to expire
        if not self._kicked:
            self._kicked = True
            self.reactor.callLater(0, self.tick)

    def tick(self):
        """One scan on the store thread, then its package 0s from the reactor.
        An error (a locked database...) is logged and the next scan tries again."""
        self._kicked = False
        d = self.store_thread.run(self._scan)
        d.addCallback(self._wake)
        d.addErrback(lambda f: log.error("wake-up scan failed; retrying at the next interval: %s",
                                         f.getTraceback()))
        return d

    # --- store thread ----------------------------------------------------------------

    def session_ended(self, session):
        """The device called in: if it still has work, it may be woken again."""
        self.notified.pop(session.device_id, None)
        for devices in self.waking.values():
            devices.discard(session.device_id)

    def targets_requeued(self):
        """Targets went back to pending (retry): one of them may be in a job past its deadline."""
        self._expired_through = None

    def _accepted_before(self):
        return datetime.now(timezone.utc) - timedelta(seconds=self.jobs["alert_window"])

    def _scan(self):
        """-> [(device, ui_mode)] to send package 0 to."""
        held_before = datetime.now(timezone.utc) - timedelta(seconds=self.jobs["session_lease"])
        self.dm_server.backend.recover(held_before=held_before, accepted_before=self._accepted_before(),
                                       live=self.dm_server.in_session)
        expired = self._expire_if_due()
        if expired:
            log.info("expired %d job(s): %s", len(expired), ", ".join(expired[:10]))
        # Every scan: announces what expiry just closed, and retries what failed to announce.
        self.announcer.kick()
        now = self.clock()
        self._forget_silent(now)
        budget = self.dm["notifications_per_tick"]
        page_size = budget * 4
        rows = self.store.wakeable_targets(after=self._resume_after, limit=page_size)
        # Resume after this page next time (or start over after a short page).
        self._resume_after = rows[-1].device_id if len(rows) == page_size else None
        customer_care = {}                       # job id -> flag, read once per scan
        wake = []
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
            self.notified[device_id] = now
            # CC1: a session for customer care is marked so in package 0 (ui-mode informative).
            wake.append((device, trigger.UI_INFORMATIVE if customer_care[row.job_id] else trigger.UI_NOT_SPECIFIED))
        return wake

    def _expire_if_due(self):
        """Expire jobs whose deadline passed, if one did since the last run -> their ids."""
        now = datetime.now(timezone.utc)
        created = self._jobs_created       # read first: a job created during the read is read again
        if self._deadlines_read_at != created:
            self._next_deadline = self._earliest_deadline()
            self._deadlines_read_at = created
        if self._expired_through is not None and (self._next_deadline is None or self._next_deadline > now):
            return []
        expired = self.store.expire_jobs(now)
        self._expired_through = now
        self._next_deadline = self._earliest_deadline()
        return expired

    def _earliest_deadline(self):
        """The earliest deadline of an active job that expiry has not dealt with
        yet: after the last run, or of a job created since."""
        since = self._expired_through
        earliest = None
        for state in JOB_ACTIVE_STATES:
            after = None
            while True:
                jobs, after = self.store.list_jobs(state=state, after=after, limit=_JOB_PAGE)
                for job in jobs:
                    deadlines = [d for d in (job.expires_at, job.not_after) if d is not None]
                    if not deadlines:
                        continue
                    deadline = min(deadlines)
                    if since is None or deadline > since or job.created_at >= since:
                        earliest = deadline if earliest is None else min(earliest, deadline)
                if after is None:
                    break
        return earliest

    def _forget_silent(self, now):
        """Devices notified long ago that never called in may be notified again."""
        quiet = self.dm["renotify_after"]
        for device_id, when in list(self.notified.items()):
            if now - when >= quiet:
                del self.notified[device_id]
                for devices in self.waking.values():
                    devices.discard(device_id)
        self.waking = {job: devices for job, devices in self.waking.items() if devices}

    def _mark_notified(self, device_id):
        self.notified[device_id] = self.clock()

    # --- reactor thread --------------------------------------------------------------

    def _wake(self, wake):
        for device, ui_mode in wake:
            self._send(device, ui_mode)

    def notify_device(self, device, ui_mode=trigger.UI_NOT_SPECIFIED):
        """Package 0 to one device now (a synchronous single-device call)."""
        self.store_thread.run(self._mark_notified, device.device_id)
        return self._send(device, ui_mode)

    def _send(self, device, ui_mode):
        package0 = trigger.build(
            self.dm["server_id"], device.server_password, device.server_nonce or b"",
            random.randint(1, 0xFFFF), ui_mode=ui_mode, version=self.dm["notification_version"])
        d = self.notifier.send(device, package0)
        d.addErrback(lambda f: log.warning("package 0 to %s failed: %s", device.device_id, f.getErrorMessage()))
        return d
