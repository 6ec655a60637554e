"""One simulated DM client's sessions: package 0 in, package 1 out, server messages answered.

``SimulatedDevice`` (see the package docstring) joins the parts of the
client: ``ClientAuth`` (credentials), ``CommandExecution`` (server commands
against the tree) and ``MessagePacking`` (device messages).
"""
from __future__ import annotations

import itertools
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from dmwsi.dm import auth, trigger, wbxml
from dmwsi.dm.codes import AlertCode, StatusCode
from dmwsi.dm.message import Alert, Item, Message, Meta, ProtocolError, Replace, Results, Status, SyncHdr, parse
from dmwsi.sim.client.auth import SCHEME_BY_CRED_TYPE, ClientAuth
from dmwsi.sim.client.behaviour import DeviceBehaviour
from dmwsi.sim.client.execution import CommandExecution, IncomingObject
from dmwsi.sim.client.outcomes import OUTCOME_ABORTED, OUTCOME_DROPPED, OUTCOME_FAILED, OUTCOME_OK, DeviceStats
from dmwsi.sim.client.packing import MessagePacking, OutgoingObject, Request, owed_alerts
from dmwsi.sim.objects import (DEVINFO_URI, SERVER_CREDENTIALS, SimulatedDeviceTree, build_device_tree,
                               find_dm_account, read_app_auth, store_nonce)

# Package 0 versions accepted (§10.1 [?]: 11 by the text, 12 by some senders).
NOTIFICATION_VERSIONS = range(10, 14)
_CONTINUE = object()


@dataclass
class _Session:
    session_id: str
    alert: int
    msg_ids: Any = field(default_factory=lambda: itertools.count(1))
    last_msg_id: str | None = None
    resp_uri: str | None = None
    scheme: str = "md5"
    authenticated: bool = False           # got 212: no more credentials
    auth_retries: int = 0
    server_authenticated: bool = False
    server_auth_failures: int = 0
    server_max_msg_size: int | None = None
    server_max_obj_size: int | None = None
    queue: list = field(default_factory=list)        # commands waiting for a device message
    lo_in: IncomingObject | None = None
    lo_out: OutgoingObject | None = None
    alerts_in_flight: dict = field(default_factory=dict)   # (msg id, cmd id) -> alert dict
    probe_header: SyncHdr | None = None                   # header used to measure messages
    new_server_nonce: bytes | None = None                 # issued in the Chal being sent


class SimulatedDevice(ClientAuth, CommandExecution, MessagePacking):
    """One simulated DM client (see the ``dmwsi.sim.client`` docstring)."""

    def __init__(
        self,
        profile: Mapping[str, Any],
        behaviour: DeviceBehaviour = DeviceBehaviour(),
        *,
        clock: Callable[[], float] = time.time,
        tree: SimulatedDeviceTree | None = None,
    ) -> None:
        profile = dict(profile)
        if behaviour.auth_scheme is not None:
            profile["auth_scheme"] = behaviour.auth_scheme
        self.behaviour = behaviour
        self.clock = clock
        self.sim = tree or build_device_tree(profile, clock=clock, fumo_script=behaviour.fumo_script,
                                             scomo_script=behaviour.scomo_script)
        self.tree = self.sim.tree
        self.device_id = self.sim.profile.dev_id
        self.server_id = self.sim.profile.server_id
        self.account_uri = self.sim.dm_account_uri
        self.stats = DeviceStats()
        self.pending_alerts: list[dict] = []       # Generic Alerts owed to the server
        self.deferred_session_id: str | None = None  # package 0 that arrived while busy
        self.last_outcome: str | None = None
        self.last_end_reason: str | None = None
        self._session: _Session | None = None
        self._rng = random.Random(behaviour.seed)
        self._session_counter = self._rng.randrange(1, 0x8000)

    # ------------------------------------------------------------ properties

    @property
    def in_session(self) -> bool:
        return self._session is not None

    @property
    def session_id(self) -> str | None:
        return self._session.session_id if self._session else None

    @property
    def content_type(self) -> str:
        return wbxml.DM_WBXML if self.behaviour.encoding == "wbxml" else wbxml.DM_XML

    def server_url(self) -> str:
        """DMAcc AppAddr (first address)."""
        return str(self.tree.read_value(f"{self.account_uri}/AppAddr/1/Addr"))

    def set_server_url(self, url: str) -> None:
        self.tree.set_value(f"{self.account_uri}/AppAddr/1/Addr", url)

    # ------------------------------------------------------------ package 0

    def on_notification(self, pkg0: bytes) -> str | None:
        """Verify a package 0; the hex SessionID to open a 1200 session with, or None."""
        try:
            note = trigger.parse(pkg0)
        except trigger.NotificationError:
            self.stats.notifications_rejected += 1
            return None
        account = find_dm_account(self.tree, note.server_id)
        if note.version not in NOTIFICATION_VERSIONS or account is None or not 1 <= note.session_id <= 0xFFFF:
            self.stats.notifications_rejected += 1
            return None
        srv = read_app_auth(self.tree, account, SERVER_CREDENTIALS)
        # §10.2: the stored nonce, then the resync nonces.
        for nonce in (srv.nonce, *trigger.RESYNC_NONCES):
            if trigger.verify(note, note.server_id, srv.secret, nonce, auth_name=srv.name):
                break
        else:
            self.stats.notifications_rejected += 1
            return None
        if nonce != srv.nonce:
            # Authenticate this session's server Cred with the resync nonce; a
            # fresh one goes out in the Chal of our 212.
            store_nonce(self.tree, account, SERVER_CREDENTIALS, nonce)
            self.stats.nonce_resyncs += 1
        session_id = note.session_id_hex
        if self._session is not None:
            if self._session.session_id != session_id:
                self.deferred_session_id = session_id
            return None
        self.stats.notifications_accepted += 1
        return session_id

    # ------------------------------------------------------------ package 1

    def open_session(self, alert: int = AlertCode.CLIENT_INITIATED_MGMT, session_id: str | None = None) -> Request:
        """Start a session; returns package 1. Any running session is abandoned."""
        if alert not in (AlertCode.SERVER_INITIATED_MGMT, AlertCode.CLIENT_INITIATED_MGMT):
            raise ValueError(f"package 1 alert must be 1200 or 1201, got {alert}")
        if self._session is not None:
            self._end(OUTCOME_FAILED, "superseded by a new session")
        if session_id is None:
            self._session_counter = self._session_counter % 0xFFFF + 1
            session_id = format(self._session_counter, "X")
        if session_id == self.deferred_session_id:
            self.deferred_session_id = None
        if self.behaviour.session_id_one:
            session_id = "1"        # as real clients do: a new session looks like the last one
        self._session = _Session(session_id=session_id, alert=int(alert), scheme=self._account_scheme())
        self.stats.sessions_started += 1
        self.last_outcome = self.last_end_reason = None
        self._collect_alerts()
        return self._package_one()

    def _package_one(self) -> Request:
        s = self._session
        # Alerts of a refused package 1 go out again in the new one.
        self.pending_alerts[:0] = list(s.alerts_in_flight.values()) + owed_alerts(s.queue)
        s.alerts_in_flight.clear()
        s.queue = [Alert(data=s.alert), self._devinfo_replace()]
        s.lo_in = s.lo_out = None
        return self._emit(header_status=None, server_final=True)

    def _devinfo_replace(self) -> Replace:
        items = []
        for uri, node in self.tree.walk(DEVINFO_URI):
            if not node.is_interior:
                value = node.value
                if isinstance(value, bytes):
                    items.append(Item(source=uri, meta=Meta(format="b64"), data=auth.b64encode(value)))
                else:
                    items.append(Item(source=uri, data=value or ""))
        return Replace(items=items)

    def _collect_alerts(self) -> None:
        self.pending_alerts.extend(self.sim.poll())

    # ------------------------------------------------------------ server messages

    def on_response(self, body: bytes, content_type: str | None = None,
                    headers: Mapping[str, str] | None = None) -> Request | None:
        """Process one server message; the next device message, or None when the session is over."""
        s = self._session
        if s is None:
            return None
        headers = {k.lower(): v for k, v in (headers or {}).items()}
        try:
            xml = wbxml.wbxml_to_xml(body) if _looks_wbxml(body, content_type) else body
            msg = parse(xml)
        except (ProtocolError, wbxml.WbxmlError):
            return self._end(OUTCOME_FAILED, "undecodable server message")
        hdr = msg.header
        if hdr.session_id != s.session_id:
            return self._end(OUTCOME_FAILED, f"server answered SessionID {hdr.session_id}")
        if self.behaviour.drop_rate and self._rng.random() < self.behaviour.drop_rate:
            return self._end(OUTCOME_DROPPED, "dropped mid-session")
        if hdr.resp_uri:
            s.resp_uri = hdr.resp_uri
        if hdr.meta is not None:
            if hdr.meta.max_msg_size:
                s.server_max_msg_size = hdr.meta.max_msg_size
            if hdr.meta.max_obj_size:
                s.server_max_obj_size = hdr.meta.max_obj_size

        # 1. The server's verdict on our credentials (§3.5, §9.4).
        verdict = self._header_verdict(msg)
        if verdict is not _CONTINUE:
            return verdict
        # 2. Statuses for what we sent (Generic Alert acknowledgements).
        for cmd in msg.body:
            if isinstance(cmd, Status) and cmd.cmd_ref != "0":
                self._on_status(cmd)
        # 3. Session abort.
        if any(isinstance(c, Alert) and c.data == AlertCode.SESSION_ABORT for c in msg.body):
            return self._end(OUTCOME_ABORTED, "server aborted the session")

        commands = [c for c in msg.body if not isinstance(c, (Status, Results))]
        if msg.final and not commands and not s.queue and s.lo_out is None:
            # §3.4: only Status(SyncHdr) would remain: the session is over.
            return self._end(OUTCOME_OK, "completed")
        # 4. The server's credentials.
        s.new_server_nonce = None
        code, chal = self._verify_server(msg, headers, body)
        header_status = None
        if not hdr.no_resp:
            header_status = Status(msg_ref=hdr.msg_id, cmd_ref="0", cmd="SyncHdr", target_refs=[hdr.target],
                                   source_refs=[hdr.source], chal=chal, code=int(code))
        if code in (StatusCode.INVALID_CREDENTIALS, StatusCode.MISSING_CREDENTIALS):
            s.server_auth_failures += 1
            if s.server_auth_failures > self.behaviour.max_server_auth_failures:
                return self._end(OUTCOME_FAILED, "server authentication failed")
            for cmd in commands:
                s.queue.extend(self._not_executed(cmd, hdr.msg_id))
            return self._emit(header_status, server_final=msg.final, streaming=not msg.final)

        # 5. Execute.
        asked_next = False
        for cmd in commands:
            if isinstance(cmd, Alert) and cmd.data == AlertCode.NEXT_MESSAGE:
                asked_next = True
            s.queue.extend(self._respond(cmd, hdr))

        streaming = not msg.final and not asked_next
        return self._emit(header_status, server_final=msg.final or asked_next, streaming=streaming)

    def abort_session(self, reason: str = "aborted", outcome: str = OUTCOME_FAILED) -> None:
        """End the session from outside (HTTP error, timeout); owed alerts are kept."""
        if self._session is not None:
            self._end(outcome, reason)

    # ------------------------------------------------------------ authentication

    def _header_verdict(self, msg: Message):
        """Handle the Status for our SyncHdr: ``_CONTINUE``, or the Request (a
        new package 1) / None (session over) to return at once."""
        s = self._session
        status = next((c for c in msg.body if isinstance(c, Status) and c.cmd_ref == "0"
                       and (c.msg_ref in (None, s.last_msg_id))), None)
        if status is None:
            return _CONTINUE  # lenient: a server that omits it is taken as accepting
        chal_nonce = self._chal_nonce(status.chal)
        if status.code == StatusCode.AUTH_ACCEPTED:
            s.authenticated = True
        if status.code in (StatusCode.AUTH_ACCEPTED, StatusCode.OK):
            if chal_nonce is not None:
                self._store_client_nonce(chal_nonce)
            return _CONTINUE
        if status.code in (StatusCode.INVALID_CREDENTIALS, StatusCode.MISSING_CREDENTIALS):
            if status.chal is None:
                return self._end(OUTCOME_FAILED, f"server refused credentials ({status.code}) without a challenge")
            if s.auth_retries >= self.behaviour.max_auth_retries:
                return self._end(OUTCOME_FAILED, "authentication failed")
            s.auth_retries += 1
            self.stats.auth_retries += 1
            if chal_nonce is not None:
                # Used even from an unauthenticated server: avoids a deadlock
                # when both sides hold stale nonces (§9.4).
                self._store_client_nonce(chal_nonce)
            chal_scheme = SCHEME_BY_CRED_TYPE.get((status.chal.type or "").lower())
            if chal_scheme is not None:
                s.scheme = chal_scheme
            s.authenticated = False
            return self._package_one()
        return self._end(OUTCOME_FAILED, f"server answered SyncHdr with {status.code}")


    # ------------------------------------------------------------ statuses for our commands

    def _on_status(self, status: Status) -> None:
        s = self._session
        alert = s.alerts_in_flight.pop((status.msg_ref, status.cmd_ref), None)
        if alert is None:
            return
        if 200 <= status.code < 300:
            self.stats.alerts_acknowledged += 1
        elif status.code in (StatusCode.NOT_EXECUTED, StatusCode.INVALID_CREDENTIALS,
                             StatusCode.MISSING_CREDENTIALS, StatusCode.RETRY_LATER):
            self.pending_alerts.append(alert)        # try again later
        else:
            self.stats.alerts_rejected += 1
    # ------------------------------------------------------------ ending

    def _end(self, outcome: str, reason: str) -> None:
        s = self._session
        if s is None:
            return None
        # Alerts the server never acknowledged go out again next time.
        self.pending_alerts[:0] = list(s.alerts_in_flight.values()) + owed_alerts(s.queue)
        self._session = None
        self.last_outcome, self.last_end_reason = outcome, reason
        counter = {OUTCOME_OK: "sessions_ok", OUTCOME_FAILED: "sessions_failed",
                   OUTCOME_DROPPED: "sessions_dropped", OUTCOME_ABORTED: "sessions_aborted"}[outcome]
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        return None


def _looks_wbxml(body: bytes, content_type: str | None) -> bool:
    if wbxml.is_wbxml(content_type):
        return True
    if content_type and "xml" in content_type.lower():
        return False
    # No usable content type: WBXML starts with a version byte 0x01..0x03.
    return bool(body) and body[0] in (1, 2, 3)
