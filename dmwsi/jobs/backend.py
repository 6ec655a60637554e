"""The DM session engine's Backend, on the store: device accounts, the work
a device should do, and what it answered (dmwsi.dm.work.Backend).

Its calls are synchronous store calls; the DM server makes them on the store
thread (dmwsi.store.thread), never on the reactor. A target a device's
session finishes is announced (its pushes enqueued, the target marked
announced) in the transaction that records it (dmwsi.jobs.announce)."""
import logging
import re
from dataclasses import replace

from dmwsi.dm.work import DeviceAccount, WorkUnit
from dmwsi.jobs import announce
from dmwsi.records import (STATUS_AWAITING_ALERT, TARGET_FAILED, TARGET_OPEN_STATES,
                                 TARGET_IN_SESSION, TARGET_PENDING, TARGET_SUCCEEDED, Device, LogEntry,
                                 ResultItem)

log = logging.getLogger(__name__)

ACCEPTED = STATUS_AWAITING_ALERT
AWAITING_ALERT = "awaiting Generic Alert"
# Per-device error codes of targets failed by the server (docs/faults.rst).
SESSION_INTERRUPTED = "SessionInterrupted"  # every attempt's session ended before the work was done
ALERT_TIMEOUT = "Timeout"                   # the Generic Alert did not come within jobs.alert_window
# DevInfo leaf -> Device attribute.
DEVINFO_FIELDS = {"Man": "man", "Mod": "mod", "Lang": "lang", "DmV": "dmv"}
_CORRELATOR = re.compile(r"^(?P<job>.+):(?P<seq>\d+)$")
_RESULT_CODE = re.compile(r"<ResultCode>\s*(\d+)\s*</ResultCode>|^\s*(\d+)\s*$")


def correlator_for(job_id, seq):
    """The Correlator put on an Exec: names the job and command, so the
    device's Generic Alert finds them even in a later session."""
    return f"{job_id}:{seq}"


def alert_succeeded(data):
    """FUMO (200, 250-299) and SCOMO (1200, 1250-1299) success codes (§12.4, §13.3)."""
    match = _RESULT_CODE.search(data or "")
    if not match:
        return None, False
    code = int(match.group(1) or match.group(2))
    return code, code == 200 or 250 <= code <= 299 or code == 1200 or 1250 <= code <= 1299


class StoreBackend:
    def __init__(self, store, config, on_event=None, on_pushes=None, view=None, on_requeued=None):
        self.store = store
        #: called when targets went back to pending (the wake-up's expiry looks again)
        self.on_requeued = on_requeued or (lambda: None)
        self.view = view or (lambda job: None)           # node filter of pushed results (OES7)
        self.dm = config["dm"]
        self.on_event = on_event or (lambda device_id, alert: None)
        self.on_pushes = on_pushes or (lambda: None)     # pushes committed: send them

    def _finish_target(self, job_id, device_id, state, **fields):
        """Set a final target state and announce it (caller holds the transaction)."""
        completed = self.store.set_target_state(job_id, device_id, state, **fields)
        announce.target_finished(self.store, job_id, device_id, completed, self.view)

    def account(self, device_id):
        device = self.store.get_device(device_id)
        if device is None or not device.client_password:
            return None
        return DeviceAccount(
            device_id=device.device_id,
            auth_scheme=device.auth_scheme or self.dm["default_auth_scheme"],
            client_username=device.client_username or device.device_id,
            client_password=device.client_password,
            server_id=self.dm["server_id"],
            server_password=device.server_password or "",
            client_nonce=device.client_nonce or b"",
            server_nonce=device.server_nonce or b"",
        )

    def device_seen(self, device_id, devinfo):
        fields = {attr: devinfo[leaf] for leaf, attr in DEVINFO_FIELDS.items() if devinfo.get(leaf)}
        if self.store.get_device(device_id) is not None:
            if fields:      # a package 1 may report DevId alone: nothing to update
                self.store.update_device(device_id, **fields)
            return self.account(device_id)
        if not (self.dm["auto_register"] and self.dm["bootstrap_client_password"]):
            log.warning("unknown device %s refused (auto_register is off)", device_id)
            return None
        self.store.upsert_device(Device(
            device_id=device_id, auth_scheme=self.dm["default_auth_scheme"], client_username=device_id,
            client_password=self.dm["bootstrap_client_password"],
            server_password=self.dm["bootstrap_server_password"], **fields))
        log.info("registered new device %s from its DevInfo", device_id)
        return self.account(device_id)

    def save_nonces(self, device_id, client_nonce=None, server_nonce=None):
        fields = {k: v for k, v in (("client_nonce", client_nonce), ("server_nonce", server_nonce)) if v}
        if fields:
            self.store.update_device(device_id, **fields)

    def claim_work(self, device_id):
        units = []
        for item in self.store.claim_targets(device_id):
            source = item.commands          # the device's own (bulk), else the job's
            # As sent: text values, and an Exec's Correlator naming the job and command.
            commands = [replace(c, value=_text(c.value),
                                correlator=correlator_for(item.job.job_id, c.seq) if c.action == "Exec" else None)
                        for c in source]
            request = (item.job.params or {}).get("request", {})
            units.append(WorkUnit(job_id=item.job.job_id, commands=commands, atomic=item.job.atomic,
                                  sequence=bool(request.get("sequence")), customer_care=item.job.customer_care,
                                  add_if_missing=bool(request.get("add_if_missing"))))
        return units

    def unit_finished(self, device_id, unit, outcomes):
        by_seq = {c.seq: c for c in unit.commands}
        items = []
        for o in outcomes:
            cmd = by_seq[o.seq]
            # Earlier tries first (a Replace's 404 before its Add): each a status row of the command.
            items.extend(ResultItem(uri=cmd.uri, status_code=code, command_seq=o.seq) for _, code in o.earlier)
            items.append(ResultItem(uri=cmd.uri, status_code=o.status, command_seq=o.seq))
            # Result items always carry a Format (chr when the device left it
            # out); the per-command status rows carry none: that tells them apart.
            items.extend(replace(r, format=r.format or "chr", status_code=o.status, command_seq=o.seq)
                         for r in o.results)
        failed = [o for o in outcomes if o.failed]
        awaiting = [o for o in outcomes if o.status == ACCEPTED]
        worst = failed[0].status if failed else (awaiting[0].status if awaiting else 200)
        with self.store.transaction():
            target = self.store.get_target(unit.job_id, device_id)
            if target is None:
                return
            # What the device did is recorded even for a target already final
            # (cancelled meanwhile, failed over after a lost session): it stays final.
            self.store.add_results(unit.job_id, device_id, items)
            if target.state != TARGET_IN_SESSION:
                summary = f"{len(outcomes)} command(s), status {worst}, after the target was {target.state}"
            elif failed:
                summary = f"{len(outcomes)} command(s), status {worst}"
                first = failed[0]
                message = (f"command {first.seq} failed: {first.detail}" if first.error
                           else f"command {first.seq} failed with status {worst}")
                self._finish_target(unit.job_id, device_id, TARGET_FAILED, status_code=worst,
                                    error_code=first.error, message=message)
            elif awaiting:
                # Exec accepted: the outcome comes in a Generic Alert (§12.3), unless
                # it already came earlier in this same session (the target is final then).
                summary = f"{len(outcomes)} command(s), status {worst}"
                self.store.set_target_state(unit.job_id, device_id, TARGET_IN_SESSION,
                                            status_code=ACCEPTED, message=AWAITING_ALERT)
            else:
                summary = f"{len(outcomes)} command(s), status {worst}"
                self._finish_target(unit.job_id, device_id, TARGET_SUCCEEDED, status_code=200)
            self._log(unit.job_id, device_id, not failed, summary, unit.customer_care)
        self.on_pushes()

    def unit_interrupted(self, device_id, unit, reason):
        with self.store.transaction():
            if self._retry_or_fail(unit.job_id, device_id, f"session ended: {reason}", SESSION_INTERRUPTED):
                self._log(unit.job_id, device_id, False, f"session ended: {reason}", unit.customer_care)
        self.on_pushes()

    def _retry_or_fail(self, job_id, device_id, reason, error_code):
        """The job policy for a target whose attempt ended without an outcome:
        back to pending while attempts remain (dm.max_attempts), else failed
        with ``error_code``. A target no longer in session (cancelled, or
        finished by a Generic Alert) is left as it is; returns whether it
        was changed. The caller holds the transaction."""
        target = self.store.get_target(job_id, device_id)
        if target is None or target.state != TARGET_IN_SESSION:
            return False
        if target.attempts >= self.dm["max_attempts"]:
            self._finish_target(job_id, device_id, TARGET_FAILED, error_code=error_code,
                                message=f"{reason} (after {target.attempts} attempts)")
        else:
            self.store.set_target_state(job_id, device_id, TARGET_PENDING, message=f"retrying: {reason}")
            self.on_requeued()
        return True

    def recover(self, held_before=None, accepted_before=None, live=lambda device_id: False, batch=200):
        """Targets interrupted by a crash or lost by their session go the way
        of unit_interrupted: those in session since before ``held_before``
        (None: every one -- at start-up no session of ours is left) whose
        device is not ``live`` in a session here, and those whose accepted
        Exec has waited for its Generic Alert since before
        ``accepted_before`` (None: none of them). Returns how many changed."""
        stale = [(t, "session lost (server restart or lease expired)", SESSION_INTERRUPTED)
                 for t in self.store.in_session_targets(held_before) if not live(t.device_id)]
        if accepted_before is not None:
            stale += [(t, "no Generic Alert within the alert window", ALERT_TIMEOUT)
                      for t in self.store.in_session_targets(accepted_before, awaiting_alert=True)]
        changed = 0
        for start in range(0, len(stale), batch):       # short write transactions: others interleave
            with self.store.transaction():
                for target, reason, error_code in stale[start:start + batch]:
                    if self._retry_or_fail(target.job_id, target.device_id, reason, error_code):
                        changed += 1
                        self._log(target.job_id, target.device_id, False, reason)
        if changed:
            log.info("recovered %d interrupted target(s)", changed)
            self.on_pushes()
        return changed

    def device_alert(self, device_id, alert):
        match = _CORRELATOR.match(alert.correlator or "")
        if match and alert.code == 1226:
            job_id, seq = match.group("job"), int(match.group("seq"))
            target = self.store.get_target(job_id, device_id)
            if target is not None:
                self._record_alert(job_id, seq, device_id, alert)
        self.on_event(device_id, alert)
        return 200

    def _record_alert(self, job_id, seq, device_id, alert):
        """The result an accepted Exec reported (§12.3). It ends the target if
        still open -- also one failed back to pending after the alert window,
        whose outcome is now known; for a target already final (failed over,
        cancelled) the alert is recorded and the target stays as it is."""
        code, ok = alert_succeeded(alert.data)
        with self.store.transaction():
            target = self.store.get_target(job_id, device_id)
            self.store.add_results(job_id, device_id, [ResultItem(
                uri=alert.source, value=alert.data, format=alert.format or "chr", type=alert.type,
                status_code=code, command_seq=seq)])
            message = f"{alert.type or 'Generic Alert'} result {code}"
            if target.state in TARGET_OPEN_STATES:
                self._finish_target(job_id, device_id, TARGET_SUCCEEDED if ok else TARGET_FAILED,
                                    status_code=code, message=message)
            else:
                message += f", after the target was {target.state}"
            self._log(job_id, device_id, ok, message)
        self.on_pushes()

    def _log(self, job_id, device_id, success, summary, customer_care=None):
        """A transaction-log row; ``customer_care`` None: the job's own flag."""
        job = self.store.get_job(job_id)
        if customer_care is None:
            customer_care = bool(job and job.customer_care)
        self.store.append_log(LogEntry(
            operation=f"dm:{job.operation}" if job else "dm", success=success,
            principal=job.principal if job else None, job_id=job_id, device_id=device_id,
            summary=summary, device_count=1, customer_care=customer_care))


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value
