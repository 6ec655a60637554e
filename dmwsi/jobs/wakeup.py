"""Wake devices that have work: package 0 to each device with pending
targets that is not already in a session and was not notified recently.
Runs on the reactor, every ``wakeup_interval`` seconds and whenever a job is
created (``kick``)."""
import logging
import random
import time

from twisted.internet import task

from dmwsi.dm import notification

log = logging.getLogger(__name__)


class WakeUp:
    def __init__(self, store, dm_server, notifier, config, reactor, clock=time.monotonic):
        self.store = store
        self.dm_server = dm_server
        self.notifier = notifier
        self.dm = config["dm"]
        self.reactor = reactor
        self.clock = clock
        self.notified = {}      # device id -> clock() of the last package 0
        self.loop = task.LoopingCall(self.tick)
        self.loop.clock = reactor
        self._kicked = False
        self._resume_after = None   # scan position: every pending device gets its turn

    def start(self):
        self.loop.start(self.dm["wakeup_interval"], now=False)

    def stop(self):
        if self.loop.running:
            self.loop.stop()

    def kick(self):
        """New work was queued: look for devices to wake soon (coalesced)."""
        if not self._kicked:
            self._kicked = True
            self.reactor.callLater(0, self.tick)

    def tick(self):
        self._kicked = False
        expired = self.store.expire_jobs()      # devices that never came: timed out per job
        if expired:
            log.info("expired %d job(s): %s", len(expired), ", ".join(expired[:10]))
        now = self.clock()
        quiet = self.dm["renotify_after"]
        budget = self.dm["notifications_per_tick"]
        page_size = budget * 4
        page = self.store.devices_with_pending_work(after=self._resume_after, limit=page_size)
        # Resume after this page next time (or start over after a short page).
        self._resume_after = page[-1] if len(page) == page_size else None
        for device_id in page:
            if budget <= 0:
                break
            self._resume_after = device_id if len(page) == page_size else None
            if self.dm_server.in_session(device_id) or now - self.notified.get(device_id, -quiet) < quiet:
                continue
            device = self.store.get_device(device_id)
            if device is None or not device.server_password:
                continue
            budget -= 1
            self.notify_device(device)

    def notify_device(self, device, ui_mode=notification.UI_NOT_SPECIFIED):
        self.notified[device.device_id] = self.clock()
        package0 = notification.build(
            self.dm["server_id"], device.server_password, device.server_nonce or b"",
            random.randint(1, 0xFFFF), ui_mode=ui_mode, version=self.dm["notification_version"])
        d = self.notifier.send(device, package0)
        d.addErrback(lambda f: log.warning("package 0 to %s failed: %s", device.device_id, f.getErrorMessage()))
        return d
