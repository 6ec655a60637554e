"""The device side of the simulator: one OMA DM 1.2 client, no I/O.

``SimulatedDevice`` couples a ``SimulatedDeviceTree`` (``dmwsi.sim.objects``)
with the client half of the DM protocol (omadm-reference.md §3-§10, §15).
It is a pure state machine: bytes of a package 0 or of a server message go
in, ``Request`` objects (URL, body bytes, content type, headers) come out.
The fleet (``dmwsi.sim.fleet``) does the HTTP; tests drive it directly.

One session at a time::

    sid = device.on_notification(pkg0)            # or None: ignored
    request = device.open_session(1200, sid)      # package 1
    while request is not None:
        body, ctype, headers = http_post(request)
        request = device.on_response(body, ctype, headers)
    device.last_outcome                           # "ok", "failed", ...

What the client does, in protocol terms:

* package 1: Alert 1200/1201, Replace with every ./DevInfo leaf, SyncHdr
  Cred per the DMAcc CLCRED AAuthType (basic, MD5 digest) or the
  ``x-syncml-hmac`` header (HMAC), Meta MaxMsgSize/MaxObjSize, and any
  Generic Alerts still owed from earlier operations (§3.1, §15);
* the server's SyncHdr Status: 212 stops credentials, 200 keeps them, 401/407
  with a Chal stores the new nonce and restarts package 1 (at most
  ``max_auth_retries`` times), anything else fails the session (§3.5, §9.4);
* the server's credentials (MD5 Cred or HMAC header, SRVCRED) are checked when
  present and answered 212/401 (407 when absent and ``require_server_auth``);
  a 212 carries a Chal with a fresh nonce for the server's next Cred and the
  next package 0 (§9.4, §10.2);
* Get/Add/Replace/Delete/Copy/Exec/Atomic/Sequence and UI alerts run against
  the tree with the DMAcc ServerID; one Status per command (per item when the
  codes differ), Results for Gets, Atomic rollback (216/516/215, 507);
* multi-message: a server message without Final is answered with statuses
  plus Alert 1222 and no Final (§4); large objects in (213 per chunk, Meta
  Size check → 424, Alert 1225 when interrupted) and out (Results chunked to
  the server's MaxMsgSize with MoreData and Size) (§5);
* Generic Alerts (1226) produced by FUMO/SCOMO/DiagMon are sent with the next
  device message, or in the next session's package 1, and kept until the
  server acknowledges them with a 2xx Status;
* a server message with Final and no commands ends the session without an
  answer (§3.4); Alert 1223 aborts it (§3.6).
"""
from __future__ import annotations

import base64
import itertools
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs

from dmwsi.dm import auth, trigger, wbxml
from dmwsi.dm.codes import AlertCode, StatusCode
from dmwsi.dm.message import (AUTH_BASIC, AUTH_MAC, AUTH_MD5, Add, Alert, Atomic, Chal, Copy, Cred,
                              Delete, Exec, Get, Item, Message, Meta, ProtocolError, Replace, Results,
                              Sequence, Status, SyncHdr, UnknownCommand, parse, serialize)
from dmwsi.sim.objects import (CLIENT_CREDENTIALS, DEVINFO_URI, SERVER_CREDENTIALS, FumoScript,
                               ScomoScript, SimulatedDeviceTree, build_device_tree, read_app_auth,
                               store_nonce, find_dm_account)
from dmwsi.sim.tree import ResultItem

SCHEME_BY_AAUTH_TYPE = {"BASIC": "basic", "DIGEST": "md5", "HMAC": "hmac"}
SCHEME_BY_CRED_TYPE = {AUTH_BASIC: "basic", AUTH_MD5: "md5", AUTH_MAC.lower(): "hmac"}
CRED_TYPE_BY_SCHEME = {"basic": AUTH_BASIC, "md5": AUTH_MD5, "hmac": AUTH_MAC}
ENCODINGS = ("xml", "wbxml")

# Session outcomes (``SimulatedDevice.last_outcome``).
OUTCOME_OK = "ok"
OUTCOME_FAILED = "failed"
OUTCOME_DROPPED = "dropped"
OUTCOME_ABORTED = "aborted"

# Package 0 versions accepted (§10.1 [?]: 11 by the text, 12 by some senders).
NOTIFICATION_VERSIONS = range(10, 14)

_ITEM_COMMANDS = (Add, Replace, Delete, Copy, Exec, Get)
_SUCCESS = (StatusCode.OK, StatusCode.ACCEPTED_FOR_PROCESSING)
_CHUNK_MARGIN = 16
_CONTINUE = object()


@dataclass(frozen=True)
class DeviceBehaviour:
    """How one simulated device behaves; the fleet reads it per device class."""

    encoding: str = "xml"                  # "xml" | "wbxml"
    auth_scheme: str | None = None         # "basic" | "md5" | "hmac"; None = the profile's
    latency: float = 0.0                   # seconds before each request (used by the fleet)
    fail_rate: float = 0.0                 # chance a management command answers 500
    drop_rate: float = 0.0                 # chance, per server message, to go silent
    wrong_credentials: bool = False        # send a wrong client password
    require_server_auth: bool = False      # 407 when the server sends no credentials
    issue_server_nonces: bool = True       # Chal with a fresh nonce on 212 (§9.4)
    max_auth_retries: int = 2              # package 1 re-sends after 401/407
    max_server_auth_failures: int = 2      # server messages refused before giving up
    max_msg_size: int = 16384              # advertised MaxMsgSize
    max_obj_size: int | None = 4 * 1024 * 1024  # advertised MaxObjSize (None: not sent)
    ui_supported: bool = True              # UI alerts: 406 when False
    ui_confirm: bool = True                # answer to 1101: 200 (yes) or 304 (no)
    ui_text: str = ""                      # answer to 1102 when no DR option
    fumo_script: FumoScript = FumoScript()
    scomo_script: ScomoScript = ScomoScript()
    seed: int | None = None                # RNG seed for fail/drop decisions

    def __post_init__(self):
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if self.auth_scheme is not None and self.auth_scheme not in CRED_TYPE_BY_SCHEME:
            raise ValueError(f"auth_scheme must be basic, md5 or hmac, got {self.auth_scheme!r}")


@dataclass(frozen=True)
class Request:
    """One HTTP POST the device wants sent."""

    url: str
    body: bytes
    content_type: str
    headers: dict[str, str]


@dataclass
class DeviceStats:
    sessions_started: int = 0
    sessions_ok: int = 0
    sessions_failed: int = 0
    sessions_dropped: int = 0
    sessions_aborted: int = 0
    messages_sent: int = 0
    commands_executed: int = 0
    commands_failed: int = 0
    alerts_sent: int = 0
    alerts_acknowledged: int = 0
    alerts_rejected: int = 0
    notifications_accepted: int = 0
    notifications_rejected: int = 0
    nonce_resyncs: int = 0
    auth_retries: int = 0


def default_profile(dev_id: str, **overrides: Any) -> dict[str, Any]:
    """A complete ``DeviceProfile`` dict for ``dev_id``; ``overrides`` win."""
    profile = {
        "dev_id": dev_id, "man": "ACME", "mod": "Sim-1", "fwv": "1.0.0", "swv": "1.0", "hwv": "A",
        "lang": "en-US", "dmv": "1.2", "server_id": "dmwsi", "server_password": f"srv-{dev_id}",
        "client_user": dev_id, "client_password": f"cli-{dev_id}", "auth_scheme": "md5",
        "server_address": "http://127.0.0.1:8080/dm",
    }
    profile.update(overrides)
    return profile


# --------------------------------------------------------------------------- session state


@dataclass
class _IncomingObject:
    """A large object being received (§5)."""

    key: tuple[str, str]          # (command tag, target URI)
    parts: list[str]
    size: int | None
    meta: Meta | None
    rejected: int | None = None   # status answered to every chunk (416)


@dataclass
class _OutgoingObject:
    """A Results item too large for one message, sent chunk by chunk (§5)."""

    results: Results              # template: CmdRef/MsgRef, items replaced per chunk
    item: Item
    data: str
    pos: int = 0


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
    lo_in: _IncomingObject | None = None
    lo_out: _OutgoingObject | None = None
    alerts_in_flight: dict = field(default_factory=dict)   # (msg id, cmd id) -> alert dict
    probe_header: SyncHdr | None = None                   # header used to measure messages
    new_server_nonce: bytes | None = None                 # issued in the Chal being sent


@dataclass(kw_only=True)
class _OwedAlert(Alert):
    """A Generic Alert command that remembers the alert it reports, so an
    unacknowledged one can be queued again."""

    owed: dict = field(default_factory=dict)


@dataclass
class _Done:
    """Outcome of one server command before it becomes Status/Results."""

    cmd: Any
    codes: list[int]                      # one per item (one for containers/alerts)
    results: list[Item] = field(default_factory=list)
    status_items: list[Item] = field(default_factory=list)
    children: list[_Done] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(code in _SUCCESS for code in self.codes) and all(child.ok for child in self.children)


# --------------------------------------------------------------------------- device


class SimulatedDevice:
    """One simulated DM client (see the module docstring)."""

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

    def client_credentials(self):
        return read_app_auth(self.tree, self.account_uri, CLIENT_CREDENTIALS)

    def server_credentials(self):
        return read_app_auth(self.tree, self.account_uri, SERVER_CREDENTIALS)

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
        self._session = _Session(session_id=session_id, alert=int(alert), scheme=self._account_scheme())
        self.stats.sessions_started += 1
        self.last_outcome = self.last_end_reason = None
        self._collect_alerts()
        return self._package_one()

    def _account_scheme(self) -> str:
        return SCHEME_BY_AAUTH_TYPE.get(self.client_credentials().auth_type.upper(), "md5")

    def _package_one(self) -> Request:
        s = self._session
        # Alerts of a refused package 1 go out again in the new one.
        self.pending_alerts[:0] = list(s.alerts_in_flight.values()) + _owed(s.queue)
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

    @staticmethod
    def _chal_nonce(chal: Chal | None) -> bytes | None:
        if chal is None or not chal.next_nonce:
            return None
        try:
            return auth.b64decode(chal.next_nonce)
        except ValueError:
            return None

    def _store_client_nonce(self, nonce: bytes) -> None:
        store_nonce(self.tree, self.account_uri, CLIENT_CREDENTIALS, nonce)

    def _verify_server(self, msg: Message, headers: Mapping[str, str], body: bytes) -> tuple[int, Chal | None]:
        """SyncHdr Status code (and Chal) answering the server's credentials."""
        s = self._session
        srv = self.server_credentials()
        cred = msg.header.cred
        mac = headers.get(auth.HMAC_HEADER)
        if mac is not None:
            ok = auth.hmac_verify(mac, srv.name, srv.secret, srv.nonce, body)
            if ok:
                s.server_authenticated = True
                return StatusCode.OK, None          # HMAC covers each message: 200 (§9.4)
            return StatusCode.INVALID_CREDENTIALS, self._new_server_chal("hmac")
        if s.server_authenticated:
            return StatusCode.OK, None              # authenticated for the rest of the session
        if cred is not None and cred.data:
            kind = (cred.type or AUTH_BASIC).lower()
            if kind == AUTH_MD5:
                ok = auth.md5_verify(cred.data, srv.name, srv.secret, srv.nonce)
            elif kind == AUTH_BASIC:
                ok = auth.basic_verify(cred.data, srv.name, srv.secret)
            else:
                ok = False
            if ok:
                s.server_authenticated = True
                chal = self._new_server_chal("md5") if self.behaviour.issue_server_nonces else None
                return StatusCode.AUTH_ACCEPTED, chal
            return StatusCode.INVALID_CREDENTIALS, self._new_server_chal("md5")
        if self.behaviour.require_server_auth:
            scheme = "hmac" if s.scheme == "hmac" else "md5"
            return StatusCode.MISSING_CREDENTIALS, self._new_server_chal(scheme)
        return StatusCode.OK, None

    def _new_server_chal(self, scheme: str) -> Chal:
        """A fresh nonce for the server, sent in a Chal; it becomes SRVCRED
        AAuthData when the message carrying it goes out (``_send``)."""
        nonce = auth.new_nonce()
        self._session.new_server_nonce = nonce
        return Chal(type=CRED_TYPE_BY_SCHEME[scheme], format="b64", next_nonce=auth.b64encode(nonce))

    def _client_cred(self) -> Cred | None:
        s = self._session
        if s.authenticated or s.scheme == "hmac":
            return None
        cl = self.client_credentials()
        secret = self._secret(cl.secret)
        if s.scheme == "basic":
            return Cred(type=AUTH_BASIC, format="b64", data=auth.basic_encode(cl.name, secret))
        return Cred(type=AUTH_MD5, format="b64", data=auth.md5_encode(cl.name, secret, cl.nonce))

    def _secret(self, secret: str) -> str:
        return secret + "-wrong" if self.behaviour.wrong_credentials else secret

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

    # ------------------------------------------------------------ executing server commands

    def _respond(self, cmd, hdr: SyncHdr) -> list:
        """Status/Results (and LO alerts) answering one top-level server command."""
        out = []
        s = self._session
        if s.lo_in is not None and not self._continues_object(cmd):
            # §5: a new command before the last chunk: Alert 1225, discard.
            out.append(Alert(data=AlertCode.NO_END_OF_DATA, items=[Item(target=s.lo_in.key[1])]))
            s.lo_in = None
        done = self._run(cmd)
        out.extend(self._answers(done, hdr.msg_id))
        return out

    def _continues_object(self, cmd) -> bool:
        lo = self._session.lo_in
        return (isinstance(cmd, (Add, Replace)) and len(cmd.items) == 1
                and (cmd.tag, cmd.items[0].target or "") == lo.key)

    def _run(self, cmd) -> _Done:
        if isinstance(cmd, UnknownCommand) or getattr(cmd, "cmd_id", None) is None:
            return _Done(cmd, [StatusCode.BAD_REQUEST])
        if isinstance(cmd, Atomic):
            return self._run_atomic(cmd)
        if isinstance(cmd, Sequence):
            return self._run_sequence(cmd)
        if isinstance(cmd, Alert):
            return self._run_alert(cmd)
        if isinstance(cmd, _ITEM_COMMANDS):
            if not cmd.items:
                return _Done(cmd, [StatusCode.INCOMPLETE_COMMAND])
            if isinstance(cmd, Exec) and len(cmd.items) != 1:
                return _Done(cmd, [StatusCode.BAD_REQUEST])
            self.stats.commands_executed += 1
            done = _Done(cmd, [])
            for item in cmd.items:
                code, results = self._run_item(cmd, item)
                done.codes.append(int(code))
                done.results.extend(results)
            if not all(code in _SUCCESS or code == StatusCode.CHUNKED_ITEM_ACCEPTED for code in done.codes):
                self.stats.commands_failed += 1
            return done
        return _Done(cmd, [StatusCode.BAD_REQUEST])

    def _run_item(self, cmd, item: Item) -> tuple[int, list[Item]]:
        meta = item.meta or Meta()
        if isinstance(cmd, (Add, Replace)):
            item, meta, code = self._large_object(cmd, item, meta)
            if code is not None:
                return code, []
        if self.behaviour.fail_rate and self._rng.random() < self.behaviour.fail_rate:
            return StatusCode.COMMAND_FAILED, []
        tree, server_id = self.tree, self.server_id
        if isinstance(cmd, Get):
            if not item.target:
                return StatusCode.BAD_REQUEST, []
            code, result = tree.get(item.target, server_id)
            if result is None:
                return code, []
            return code, [_result_item(r) for r in result.items]
        if isinstance(cmd, Exec):
            if not item.target:
                return StatusCode.BAD_REQUEST, []
            return tree.exec(item.target, item.data, cmd.correlator, server_id), []
        if isinstance(cmd, Copy):
            if not item.target or not item.source:
                return StatusCode.BAD_REQUEST, []
            return tree.copy(item.source, item.target, server_id), []
        if isinstance(cmd, Delete):
            if not item.target:
                return StatusCode.BAD_REQUEST, []
            return tree.delete(item.target, server_id), []
        if not item.target:
            return StatusCode.BAD_REQUEST, []
        verb = tree.add if isinstance(cmd, Add) else tree.replace
        return verb(item.target, item.data, meta.format, meta.type, server_id), []

    def _large_object(self, cmd, item: Item, meta: Meta) -> tuple[Item, Meta, int | None]:
        """Buffer MoreData chunks (213); on the last one return the assembled item."""
        s = self._session
        key = (cmd.tag, item.target or "")
        lo = s.lo_in if s.lo_in is not None and s.lo_in.key == key else None
        if lo is None and not item.more_data:
            return item, meta, None
        if lo is None:
            lo = s.lo_in = _IncomingObject(key=key, parts=[], size=meta.size, meta=item.meta)
            limit = self.behaviour.max_obj_size
            if meta.size is not None and limit and meta.size > limit:
                lo.rejected = StatusCode.REQUESTED_SIZE_TOO_BIG
        lo.parts.append(item.data or "")
        if item.more_data:
            return item, meta, lo.rejected or StatusCode.CHUNKED_ITEM_ACCEPTED
        s.lo_in = None
        if lo.rejected:
            return item, meta, lo.rejected
        data = "".join(lo.parts)
        if lo.size is not None and lo.size not in (len(data), len(data.encode("utf-8"))):
            return item, meta, StatusCode.SIZE_MISMATCH
        merged = (item.meta.merged(lo.meta) if item.meta else (lo.meta or Meta()))
        return replace(item, data=data, more_data=False, meta=merged), merged, None

    def _run_alert(self, alert: Alert) -> _Done:
        code = alert.data
        if code == AlertCode.NEXT_MESSAGE:
            return _Done(alert, [StatusCode.OK])
        if code not in (AlertCode.DISPLAY, AlertCode.CONFIRM_OR_REJECT, AlertCode.TEXT_INPUT,
                        AlertCode.SINGLE_CHOICE, AlertCode.MULTIPLE_CHOICE):
            return _Done(alert, [StatusCode.OPTIONAL_FEATURE_NOT_SUPPORTED])
        self.stats.commands_executed += 1
        if not self.behaviour.ui_supported:
            return _Done(alert, [StatusCode.OPTIONAL_FEATURE_NOT_SUPPORTED])
        if len(alert.items) < 2:
            return _Done(alert, [StatusCode.INCOMPLETE_COMMAND])
        options = {k: v[-1] for k, v in parse_qs(alert.items[0].data or "", keep_blank_values=True).items()}
        default = options.get("DR")
        if code == AlertCode.DISPLAY:
            return _Done(alert, [StatusCode.OK])
        if code == AlertCode.CONFIRM_OR_REJECT:
            yes = self.behaviour.ui_confirm if default is None else default == "1"
            return _Done(alert, [StatusCode.OK if yes else StatusCode.NOT_MODIFIED])
        if code == AlertCode.TEXT_INPUT:
            text = default if default is not None else self.behaviour.ui_text
            return _Done(alert, [StatusCode.OK], status_items=[Item(data=text)])
        choices = len(alert.items) - 2
        if choices < 1:
            return _Done(alert, [StatusCode.INCOMPLETE_COMMAND])
        picked = _choices(default, choices) or ["1"]
        if code == AlertCode.SINGLE_CHOICE:
            picked = picked[:1]
        return _Done(alert, [StatusCode.OK], status_items=[Item(data=p) for p in picked])

    def _run_sequence(self, seq: Sequence) -> _Done:
        done = _Done(seq, [StatusCode.OK])
        stop = False
        for inner in seq.commands:
            if stop:
                done.children.append(self._skipped(inner, StatusCode.NOT_EXECUTED))
                continue
            child = self._run(inner)
            done.children.append(child)
            # §7: a "No" or a cancel skips the rest of a Sequence.
            if isinstance(inner, Alert) and child.codes[0] in (StatusCode.NOT_MODIFIED, StatusCode.OPERATION_CANCELLED):
                stop = True
        return done

    def _run_atomic(self, atomic: Atomic) -> _Done:
        """All or nothing (§6.1): on a failure the tree is restored; members
        done before report 216 (516 for Exec, whose effects stay), the failed
        one its code, the rest 215, the Atomic 507. Get inside is 405."""
        before = self.tree.snapshot()
        done = _Done(atomic, [StatusCode.OK])
        failed_at = None
        for index, inner in enumerate(atomic.commands):
            if isinstance(inner, Get):
                child = _Done(inner, [StatusCode.COMMAND_NOT_ALLOWED] * max(1, len(inner.items)))
            else:
                child = self._run(inner)
            done.children.append(child)
            if not child.ok:
                failed_at = index
                break
        if failed_at is None:
            return done
        self.tree.restore(before)
        for child in done.children[:failed_at]:
            _roll_back(child)
        for inner in atomic.commands[failed_at + 1:]:
            done.children.append(self._skipped(inner, StatusCode.NOT_EXECUTED))
        done.codes = [StatusCode.ATOMIC_FAILED]
        return done

    def _skipped(self, cmd, code: int) -> _Done:
        if isinstance(cmd, (Atomic, Sequence)):
            return _Done(cmd, [code], children=[self._skipped(c, code) for c in cmd.commands])
        return _Done(cmd, [code] * max(1, len(getattr(cmd, "items", []) or [None])))

    def _not_executed(self, cmd, msg_ref: str) -> list:
        """Statuses (215) for a command not run because the server is not authenticated."""
        if isinstance(cmd, (Alert,)) and cmd.data == AlertCode.NEXT_MESSAGE:
            return self._answers(_Done(cmd, [StatusCode.OK]), msg_ref)
        return self._answers(self._skipped(cmd, StatusCode.NOT_EXECUTED), msg_ref)

    def _answers(self, done: _Done, msg_ref: str) -> list:
        """Status (per command, or per item when codes differ) then Results."""
        cmd = done.cmd
        out = []
        if not getattr(cmd, "no_resp", False):
            cmd_ref = getattr(cmd, "cmd_id", None) or ""
            items = getattr(cmd, "items", None) or []
            if isinstance(cmd, _ITEM_COMMANDS) and len(set(done.codes)) > 1 and len(done.codes) == len(items):
                for item, code in zip(items, done.codes):
                    out.append(_status(msg_ref, cmd_ref, cmd.tag, [item], code))
            else:
                ref_items = items if isinstance(cmd, _ITEM_COMMANDS) else []
                out.append(_status(msg_ref, cmd_ref, cmd.tag, ref_items, done.codes[0],
                                   status_items=done.status_items))
        if done.results:
            out.append(Results(msg_ref=msg_ref, cmd_ref=cmd.cmd_id, items=done.results))
        for child in done.children:
            out.extend(self._answers(child, msg_ref))
        return out

    # ------------------------------------------------------------ building device messages

    def _emit(self, header_status: Status | None, *, server_final: bool, streaming: bool = False) -> Request:
        """The next device message: header status, then as much of the queue as
        fits the server's MaxMsgSize; Final once everything is out and the
        server has closed its package; Alert 1222 while the server streams."""
        s = self._session
        fixed = [header_status] if header_status is not None else []
        if not streaming and s.lo_out is None:
            self._collect_alerts()
            while self.pending_alerts:
                s.queue.append(self._alert_command(self.pending_alerts.pop(0)))
        tail = [Alert(data=AlertCode.NEXT_MESSAGE)] if streaming else []
        budget = s.server_max_msg_size
        placed = list(fixed)

        if s.lo_out is not None:
            while s.queue and isinstance(s.queue[0], Status):
                placed.append(s.queue.pop(0))
            placed.append(self._next_chunk(placed, tail, budget))
        elif budget is None or self._size(fixed + s.queue + tail) <= budget:
            placed.extend(s.queue)
            s.queue = []
        else:
            while s.queue:
                candidate = s.queue[0]
                if self._size(placed + [candidate] + tail) <= budget:
                    placed.append(s.queue.pop(0))
                    continue
                if isinstance(candidate, Results) and len(candidate.items) > 1:
                    fit = self._fitting_items(placed, tail, candidate, budget)
                    if fit:
                        placed.append(replace(candidate, items=candidate.items[:fit]))
                        s.queue[0] = replace(candidate, items=candidate.items[fit:])
                        break
                    if len(placed) == len(fixed):
                        # Even its first item does not fit: that one goes alone, chunked.
                        s.queue[0:1] = [replace(candidate, items=candidate.items[:1]),
                                        replace(candidate, items=candidate.items[1:])]
                        continue
                if len(placed) == len(fixed):
                    s.queue.pop(0)
                    if isinstance(candidate, Results) and len(candidate.items) == 1 and candidate.items[0].data:
                        s.lo_out = _OutgoingObject(results=candidate, item=candidate.items[0],
                                                   data=candidate.items[0].data)
                        placed.append(self._next_chunk(placed, tail, budget))
                    else:
                        placed.append(candidate)   # cannot be split: sent oversize
                break
        final = server_final and not streaming and not s.queue and s.lo_out is None
        return self._send(placed + tail, final)

    def _fitting_items(self, placed, tail, results: Results, budget: int) -> int:
        fit = 0
        for n in range(1, len(results.items)):
            if self._size(placed + [replace(results, items=results.items[:n])] + tail) > budget:
                break
            fit = n
        return fit

    def _next_chunk(self, placed, tail, budget: int | None) -> Results:
        """The next piece of the outgoing large object (first one carries Size)."""
        lo = self._session.lo_out
        first = lo.pos == 0
        item_meta = lo.item.meta or Meta()
        meta = replace(item_meta, size=len(lo.data)) if first else replace(item_meta, size=None)
        meta = None if meta == Meta() else meta
        remaining = len(lo.data) - lo.pos
        if budget is None:
            room = remaining
        else:
            probe = replace(lo.results, items=[replace(lo.item, meta=meta, data="", more_data=True)])
            room = max(64, budget - self._size(placed + [probe] + tail) - _CHUNK_MARGIN)
        while True:
            n = min(room, remaining)
            last = n == remaining
            piece = replace(lo.item, meta=meta, data=lo.data[lo.pos:lo.pos + n], more_data=not last)
            chunk = replace(lo.results, items=[piece])
            if budget is None or n <= 64 or self._size(placed + [chunk] + tail) <= budget:
                break
            room = max(64, int(n * 0.9))           # escaping made it grow: shrink
        lo.pos += n
        if last:
            self._session.lo_out = None
        return chunk

    def _alert_command(self, alert: Mapping[str, Any]) -> Alert:
        """A Generic Alert (1226, §15) for one alert dict of the management objects."""
        meta = Meta(type=alert.get("type"), format=alert.get("format"), mark=alert.get("mark"))
        item = Item(source=alert.get("source"), target=alert.get("target"),
                    meta=None if meta == Meta() else meta, data=alert.get("data"))
        return _OwedAlert(data=AlertCode.GENERIC_ALERT, correlator=alert.get("correlator"), items=[item],
                          owed=dict(alert))

    def _header(self) -> SyncHdr:
        s = self._session
        cl = self.client_credentials()
        meta = Meta(max_msg_size=self.behaviour.max_msg_size, max_obj_size=self.behaviour.max_obj_size)
        return SyncHdr(session_id=s.session_id, msg_id=s.last_msg_id, target=self.server_url(),
                       source=self.device_id, source_name=cl.name, cred=self._client_cred(), meta=meta)

    def _numbered(self, commands: list) -> list:
        ids = itertools.count(1)
        return [self._renumber(c, ids) for c in commands]

    def _renumber(self, cmd, ids):
        numbered = replace(cmd, cmd_id=str(next(ids)))
        if isinstance(cmd, (Atomic, Sequence)):
            numbered = replace(numbered, commands=[self._renumber(c, ids) for c in cmd.commands])
        return numbered

    def _size(self, commands: list) -> int:
        """Bytes of a device message holding ``commands`` (as XML: WBXML is smaller)."""
        s = self._session
        if s.probe_header is None:
            s.probe_header = replace(self._header(), msg_id=str(int(s.last_msg_id or 0) + 1))
        return len(serialize(Message(header=s.probe_header, body=self._numbered(commands), final=True)))

    def _send(self, commands: list, final: bool) -> Request:
        s = self._session
        s.last_msg_id = str(next(s.msg_ids))
        s.probe_header = None
        if s.new_server_nonce is not None:
            if any(isinstance(c, Status) and c.cmd_ref == "0" and c.chal is not None for c in commands):
                store_nonce(self.tree, self.account_uri, SERVER_CREDENTIALS, s.new_server_nonce)
            s.new_server_nonce = None
        body_cmds = self._numbered(commands)
        for cmd in body_cmds:
            if isinstance(cmd, _OwedAlert):
                s.alerts_in_flight[(s.last_msg_id, cmd.cmd_id)] = cmd.owed
                self.stats.alerts_sent += 1
        msg = Message(header=self._header(), body=body_cmds, final=final)
        body = serialize(msg)
        if self.behaviour.encoding == "wbxml":
            body = wbxml.xml_to_wbxml(body)
        ctype = self.content_type
        headers = {"Content-Type": ctype, "Accept": ctype, "Accept-Charset": "utf-8", "Cache-Control": "private"}
        if s.scheme == "hmac":
            cl = self.client_credentials()
            headers[auth.HMAC_HEADER] = auth.hmac_header(cl.name, self._secret(cl.secret), cl.nonce, body)
        self.stats.messages_sent += 1
        return Request(url=s.resp_uri or self.server_url(), body=body, content_type=ctype, headers=headers)

    # ------------------------------------------------------------ ending

    def _end(self, outcome: str, reason: str) -> None:
        s = self._session
        if s is None:
            return None
        # Alerts the server never acknowledged go out again next time.
        self.pending_alerts[:0] = list(s.alerts_in_flight.values()) + _owed(s.queue)
        self._session = None
        self.last_outcome, self.last_end_reason = outcome, reason
        counter = {OUTCOME_OK: "sessions_ok", OUTCOME_FAILED: "sessions_failed",
                   OUTCOME_DROPPED: "sessions_dropped", OUTCOME_ABORTED: "sessions_aborted"}[outcome]
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        return None


# --------------------------------------------------------------------------- helpers


def _looks_wbxml(body: bytes, content_type: str | None) -> bool:
    if wbxml.is_wbxml(content_type):
        return True
    if content_type and "xml" in content_type.lower():
        return False
    # No usable content type: WBXML starts with a version byte 0x01..0x03.
    return bool(body) and body[0] in (1, 2, 3)


def _result_item(r: ResultItem) -> Item:
    """A tree Get result as a Results Item: binary values as b64 (§6.3)."""
    value, fmt = r.value, r.format
    if isinstance(value, bytes):
        value, fmt = base64.b64encode(value).decode("ascii"), "b64"
    meta = Meta(format=fmt if fmt != "chr" else None,
                type=r.type if r.type and r.type != "text/plain" else None)
    return Item(source=r.uri, meta=None if meta == Meta() else meta, data=value)


def _owed(commands: list) -> list[dict]:
    return [cmd.owed for cmd in commands if isinstance(cmd, _OwedAlert)]


def _status(msg_ref: str, cmd_ref: str, tag: str, items: list[Item], code: int,
            status_items: list[Item] | None = None) -> Status:
    targets = [it.target for it in items if it.target]
    sources = [it.source for it in items if it.source] if tag == "Copy" else []
    return Status(msg_ref=msg_ref, cmd_ref=cmd_ref, cmd=tag, target_refs=targets, source_refs=sources,
                  code=int(code), items=list(status_items or []))


def _roll_back(done: _Done) -> None:
    """Mark a member of a failed Atomic as undone (216), Exec as not undoable (516)."""
    if isinstance(done.cmd, Exec):
        done.codes = [StatusCode.ATOMIC_ROLLBACK_FAILED] * len(done.codes)
    else:
        done.codes = [StatusCode.ATOMIC_ROLLBACK_OK] * len(done.codes)
    done.results = []
    for child in done.children:
        _roll_back(child)


def _choices(default: str | None, count: int) -> list[str]:
    """Choice numbers from a DR option ("2", "1-3", "1-2-3") within 1..count."""
    if not default:
        return []
    picked = []
    for part in default.replace(",", "-").split("-"):
        if part.strip().isdigit() and 1 <= int(part) <= count:
            picked.append(str(int(part)))
    return picked
