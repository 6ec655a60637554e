"""The OMA DM session engine: one device session, message in, message out.

No I/O here: ``Session.receive`` takes a parsed device message (plus the
x-syncml-hmac header when there is one) and returns the server's reply; the
HTTP binding (``dmwsi.dm.server``) does the bytes. The rules followed are
those of omadm-reference.md §3-§9: SyncHdr status first and one status per
device command; no new commands while statuses are outstanding; multi-message
packages and large objects both ways; authentication with challenges.
"""
import itertools
import logging
from dataclasses import dataclass, field, replace

from dmwsi.dm import auth, codes
from dmwsi.dm.message import (AUTH_BASIC, AUTH_MAC, AUTH_MD5, Add, Alert, Atomic, Chal, Copy, Cred,
                              Delete, Exec, Get, Item, Message, Meta, Replace, Sequence,
                              Status, SyncHdr, UnknownCommand, serialize)
from dmwsi.dm.packing import LargeObject, fitting
from dmwsi.dm.work import CommandOutcome, GenericAlert
from dmwsi.records import ResultItem

log = logging.getLogger(__name__)

COMMAND_TYPES = {"Add": Add, "Replace": Replace, "Delete": Delete, "Get": Get, "Exec": Exec, "Copy": Copy}
_CHALLENGED = (codes.StatusCode.MISSING_CREDENTIALS, codes.StatusCode.INVALID_CREDENTIALS)
SCHEME_TYPES = {"basic": AUTH_BASIC, "md5": AUTH_MD5, "hmac": AUTH_MAC}
# Bytes kept free under the device's MaxMsgSize: WBXML/XML encoding
# differences and the message id growing by a digit never push us over.
SIZE_MARGIN = 256
# A large object's piece shorter than this means the message is all overhead: refused (413) instead.
MIN_PIECE = 64
# The per-device error (dmwsi.errors.CODES) of a large object whose non-final chunk got no 213.
LARGE_OBJECT_NOT_BUFFERED = "LargeObjectNotBuffered"
NOT_EXECUTED = {0, codes.StatusCode.NOT_EXECUTED, 401, 407}   # device refused before running
DEVICE_MAY_SEND = ("Alert", "Replace", "Results", "Status")
SESSION_ALERTS = (codes.AlertCode.SERVER_INITIATED_MGMT, codes.AlertCode.CLIENT_INITIATED_MGMT)


@dataclass
class SessionPolicy:
    """Session settings from the [dm] configuration section."""
    server_uri: str
    accepted_schemes: tuple = ("md5", "hmac", "basic")
    max_auth_failures: int = 2
    server_max_msg_size: int = 65536       # what we accept from the device
    server_max_obj_size: int = 16 * 1024 * 1024   # largest object we reassemble
    default_device_max_msg_size: int = 16384
    send_server_cred: str = "always"       # "always" | "on-challenge"


@dataclass
class _Sent:
    """A server command awaiting the device's Status."""
    unit_index: int
    seq: int | None         # None for an Atomic/Sequence wrapper
    chunk_final: bool = True
    inner_seqs: list = field(default_factory=list)   # a wrapper's members


@dataclass
class _Out:
    """A server command waiting to be sent, and which unit command it is."""
    unit_index: int | None
    seq: int | None                      # None: an Atomic/Sequence wrapper or a session Alert
    command: object
    inner_seqs: list = field(default_factory=list)   # an Atomic's or Sequence's member commands
    chunk_final: bool = True


@dataclass
class _Chunk:
    """An outgoing large object: one command, its data sent over several messages."""
    out: _Out
    data: LargeObject


@dataclass
class _UnitState:
    unit: object
    outcomes: dict = field(default_factory=dict)   # seq -> CommandOutcome
    retried: bool = False
    reported: bool = False

    def done(self):
        return all(o.status is not None for o in self.outcomes.values())


def starts_session(msg):
    """True for a package 1: it carries the session-opening Alert (1200/1201, §3.1)."""
    return any(cmd.tag == "Alert" and cmd.data in SESSION_ALERTS for cmd in msg.body)


def _msg_number(msg_id):
    try:
        return int(msg_id)
    except (TypeError, ValueError):
        return None


class Session:
    def __init__(self, device_id, session_id, backend, policy, token, server_initiated=False,
                 on_authenticated=None):
        self.device_id = device_id
        self.session_id = session_id
        self.backend = backend
        self.policy = policy
        self.token = token
        self.server_initiated = server_initiated
        # Told (with this session) the moment the device first authenticates,
        # before any work is claimed: the server gives it the device's slot.
        self.on_authenticated = on_authenticated
        self.account = None
        self.authenticated = False
        self.auth_scheme = None
        self.auth_failures = 0
        self.server_authenticated = False
        self.device_demands_cred = policy.send_server_cred == "always"
        self.device_max_msg_size = policy.default_device_max_msg_size
        self.device_max_obj_size = None
        self.msg_ids = itertools.count(1)
        self.last_device_msg_id = None
        self.last_device_message = None   # (body bytes, parsed Message) of the last device message
        self.last_reply = None
        self.units = []                # _UnitState, in claim order
        self.work_claimed = False
        self.sent = {}                 # (server msg id, cmd id) -> _Sent
        self.outgoing = []             # commands of the current package not yet sent
        self.chunk = None              # _Chunk being sent
        self.deferred = None           # the _Out once left for the next message (see _next_part)
        self.incoming_lo = {}          # (msg_ref, cmd_ref) -> [text parts, declared size]
        # Statuses the device gave a container (Atomic/Sequence) in this package:
        # (unit index, member seqs, code), the members' result where they have none.
        self.container_statuses = []
        self.ended = False
        self.end_reason = None

    # ---- entry point -----------------------------------------------------

    def receive(self, msg: Message, hmac_header=None, body=b"", may_challenge=True):
        """Process one device message; returns the reply Message. With
        ``may_challenge`` false (its source is rate-limited) a message that does
        not authenticate changes nothing and gets None: no challenge, no nonce."""
        hdr = msg.header
        if self.is_retransmission(msg, body):
            return self.last_reply          # the device lost our answer: send it again
        if not may_challenge and not self.authenticated and not self._credentials_verify(msg, hmac_header, body):
            return None
        self.last_device_msg_id = hdr.msg_id
        self.last_device_message = (body, msg)
        if hdr.meta and hdr.meta.max_msg_size:
            self.device_max_msg_size = hdr.meta.max_msg_size
        if hdr.meta and hdr.meta.max_obj_size:
            self.device_max_obj_size = hdr.meta.max_obj_size

        statuses = []
        hdr_status = self._authenticate(msg, hmac_header, body)
        statuses.append(hdr_status)
        # An HMAC session authenticates each message on its own: one whose MAC
        # fails is challenged and executes nothing, however the session began.
        if not self.authenticated or hdr_status.code in _CHALLENGED:
            # §3.5: statuses only, no new commands; the device retries package 1.
            for cmd in msg.body:
                if cmd.tag not in ("Status", "Results") and not getattr(cmd, "no_resp", False):
                    statuses.append(self._status_for(hdr, cmd, codes.StatusCode.NOT_EXECUTED))
            if self.auth_failures >= self.policy.max_auth_failures or hdr_status.code == 403:
                self._end("authentication failed")
            return self._reply(statuses, [], final=True)

        alerts = [c for c in msg.body if c.tag == "Alert"]
        next_message_asked = any(a.data == codes.AlertCode.NEXT_MESSAGE for a in alerts)
        for cmd in msg.body:
            status = self._handle_device_command(hdr, cmd)
            if status is not None:
                statuses.append(status)
        if msg.final:
            self._settle_containers()
        if self.ended:          # device aborted (1223)
            return self._reply(statuses, [], final=True)

        if self.chunk is not None or (self.outgoing and (next_message_asked or msg.final)):
            return self._reply(statuses, *self._next_part(statuses))
        if not msg.final:
            # §4: the device is still sending its package; ask for the next message.
            return self._reply(statuses, [self._alert(codes.AlertCode.NEXT_MESSAGE)], final=False)
        self._finish_units()
        if not self.work_claimed or all(u.done() for u in self.units):
            self._claim_more()
        if self.outgoing:
            return self._reply(statuses, *self._next_part(statuses))
        # Nothing more to do: statuses and Final end the session (§3.4).
        self._end("completed")
        return self._reply(statuses, [], final=True)

    def is_retransmission(self, msg, body=b""):
        """The same message again (same MsgID, same bytes): the device lost our reply.
        Only the bytes decide; a new session reusing SessionID 1 / MsgID 1 is not one."""
        return (self.last_reply is not None and msg.header.msg_id == self.last_device_msg_id
                and self.last_device_message == (body, msg))

    def restarts(self, msg, body=b""):
        """True when ``msg`` is a new package 1 rather than the next message of this
        session: it opens a session (Alert 1200/1201) and its MsgID does not follow
        ours (real clients start every session at MsgID 1). The package 1 a device
        resends after a challenge carries the next MsgID (§3.5) and continues."""
        if not starts_session(msg) or self.last_device_msg_id is None:
            return False
        if self.is_retransmission(msg, body):
            return False
        new, last = _msg_number(msg.header.msg_id), _msg_number(self.last_device_msg_id)
        if new is None or last is None:
            return True
        return new <= last

    def expire(self, reason="timeout"):
        """The device went silent; hand unfinished work back."""
        self._end(reason)

    # ---- authentication (§9) ---------------------------------------------

    def _authenticate(self, msg, hmac_header, body):
        hdr = msg.header
        if self.account is None:
            self.account = self.backend.account(self.device_id)
            if self.account is None:
                self.account = self.backend.device_seen(self.device_id, _devinfo(msg))
            if self.account is None:
                self.auth_failures = self.policy.max_auth_failures
                return self._hdr_status(hdr, 403)
        if self.authenticated and self.auth_scheme != "hmac":
            return self._hdr_status(hdr, codes.StatusCode.OK)
        scheme, ok = self._check_credentials(hdr, hmac_header, body)
        acct = self.account
        if ok:
            first = not self.authenticated
            self.authenticated, self.auth_scheme = True, scheme
            if first and self.on_authenticated is not None:
                self.on_authenticated(self)
            if scheme == "hmac":
                # HMAC authenticates every message: 200, not 212 (§9.4).
                return self._hdr_status(hdr, codes.StatusCode.OK)
            if first and scheme == "md5":
                nonce = auth.new_nonce()     # a fresh nonce for the next session
                self.backend.save_nonces(self.device_id, client_nonce=nonce)
                acct.client_nonce = nonce
                return self._hdr_status(hdr, codes.StatusCode.AUTH_ACCEPTED,
                                        chal=self._chal("md5", nonce))
            return self._hdr_status(hdr, codes.StatusCode.AUTH_ACCEPTED)
        self.auth_failures += 1
        expected = acct.auth_scheme if acct.auth_scheme in self.policy.accepted_schemes else "md5"
        # The challenge's nonce lives in this session only: the device answers it
        # on our RespURI. Stored, it would let anyone naming the device replace
        # the nonce the device holds from its last 212 and lock it out.
        nonce = auth.new_nonce()
        acct.client_nonce = nonce
        missing = (hdr.cred is None or not hdr.cred.data) and hmac_header is None   # empty Cred = none
        code = codes.StatusCode.MISSING_CREDENTIALS if missing else codes.StatusCode.INVALID_CREDENTIALS
        return self._hdr_status(hdr, code, chal=self._chal(expected, nonce))

    def _credentials_verify(self, msg, hmac_header, body):
        """Would this message authenticate? Reads the account, writes nothing."""
        if self.account is None:
            self.account = self.backend.account(self.device_id)
        return self.account is not None and self._check_credentials(msg.header, hmac_header, body)[1]

    def _check_credentials(self, hdr, hmac_header, body):
        acct = self.account
        accepted = self.policy.accepted_schemes
        if hmac_header is not None:
            return "hmac", "hmac" in accepted and acct.auth_scheme == "hmac" and auth.hmac_verify(
                hmac_header, acct.client_username, acct.client_password, acct.client_nonce, body)
        cred = hdr.cred
        if cred is None or not cred.data:
            return None, False
        kind = (cred.type or AUTH_BASIC).lower()
        if kind == AUTH_MD5 and "md5" in accepted:
            return "md5", auth.md5_verify(cred.data, acct.client_username, acct.client_password,
                                          acct.client_nonce)
        if kind == AUTH_BASIC and "basic" in accepted and acct.auth_scheme == "basic":
            return "basic", auth.basic_verify(cred.data, acct.client_username, acct.client_password)
        return None, False

    def _chal(self, scheme, nonce):
        return Chal(type=SCHEME_TYPES[scheme], format="b64",
                    next_nonce=auth.b64encode(nonce) if scheme != "basic" else None)

    def _server_cred(self):
        acct = self.account
        if acct is None or not self.authenticated or self.auth_scheme == "hmac":
            return None
        if not self.device_demands_cred or not acct.server_password:
            return None
        return Cred(type=AUTH_MD5, format="b64",
                    data=auth.md5_encode(acct.server_id, acct.server_password, acct.server_nonce))

    # ---- device commands ---------------------------------------------------

    def _handle_device_command(self, hdr, cmd):
        tag = cmd.tag
        if tag == "Status":
            self._on_status(hdr, cmd)
            return None
        if tag == "Results":
            return self._on_results(hdr, cmd)
        if tag == "Alert":
            return self._on_alert(hdr, cmd)
        if tag == "Replace":    # DevInfo in package 1: already read by _devinfo
            devinfo = {it.source.rsplit("/", 1)[-1]: it.data for it in cmd.items
                       if it.source and it.source.startswith("./DevInfo/")}
            if devinfo and self.account is not None:
                self.backend.device_seen(self.device_id, devinfo)
            return self._status_for(hdr, cmd, codes.StatusCode.OK)
        if isinstance(cmd, UnknownCommand) or cmd.cmd_id is None:
            return self._status_for(hdr, cmd, codes.StatusCode.BAD_REQUEST)
        # Devices may only send Alert, Replace (DevInfo), Results and Status.
        return self._status_for(hdr, cmd, codes.StatusCode.COMMAND_NOT_ALLOWED)

    def _on_alert(self, hdr, alert):
        code = alert.data
        if code in (codes.AlertCode.SERVER_INITIATED_MGMT, codes.AlertCode.CLIENT_INITIATED_MGMT,
                    codes.AlertCode.NEXT_MESSAGE):
            return self._status_for(hdr, alert, codes.StatusCode.OK)
        if code == codes.AlertCode.SESSION_ABORT:
            self._end("device aborted")
            return self._status_for(hdr, alert, codes.StatusCode.OK)
        if code == codes.AlertCode.NO_END_OF_DATA:
            self.incoming_lo.clear()
            return self._status_for(hdr, alert, codes.StatusCode.OK)
        if code in (codes.AlertCode.GENERIC_ALERT, codes.AlertCode.CLIENT_EVENT):
            answers = set()
            for item in alert.items or [Item()]:
                meta = item.meta or Meta()
                answers.add(self.backend.device_alert(self.device_id, GenericAlert(
                    code=code, correlator=alert.correlator, source=item.source, target=item.target,
                    type=meta.type, format=meta.format, mark=meta.mark, data=item.data)))
            worst = max(answers) if answers else codes.StatusCode.OK
            return self._status_for(hdr, alert, worst)
        return self._status_for(hdr, alert, codes.StatusCode.OPTIONAL_FEATURE_NOT_SUPPORTED)

    def _on_status(self, hdr, status):
        if status.cmd_ref == "0":       # the device's verdict on our credentials
            if status.chal is not None and status.chal.next_nonce:
                try:
                    nonce = auth.b64decode(status.chal.next_nonce)
                except ValueError:
                    nonce = None
                if nonce is not None:
                    self.account.server_nonce = nonce
                    self.backend.save_nonces(self.device_id, server_nonce=nonce)
            if status.code in (401, 407):
                self.device_demands_cred = True
                self.server_authenticated = False
            elif status.code == codes.StatusCode.AUTH_ACCEPTED:
                self.server_authenticated = True
            return
        # Kept (not popped): the Results for a Get follow its Status (§3.3).
        sent = self.sent.get((status.msg_ref, status.cmd_ref))
        if sent is None:
            return                       # unknown reference
        state = self.units[sent.unit_index]
        if sent.seq is None:             # an Atomic/Sequence: settled when the package is complete
            if status.code in NOT_EXECUTED and self.device_demands_cred and not state.retried:
                return self._requeue(sent.unit_index)
            self.container_statuses.append((sent.unit_index, sent.inner_seqs, int(status.code)))
            return
        outcome = state.outcomes[sent.seq]
        if status.code == codes.StatusCode.CHUNKED_ITEM_ACCEPTED and not sent.chunk_final:
            return
        if status.code in NOT_EXECUTED and self.device_demands_cred and not state.retried:
            return self._requeue(sent.unit_index)   # device wanted our Cred first
        if self._adds_instead(sent, status, state, outcome):
            return
        outcome.status = status.code
        if not sent.chunk_final:
            # §5: only 213 says the chunk was buffered. Anything else (a client
            # answering 200 to each chunk keeps only the last one) means the
            # object will not arrive whole: fail the command, send no more of it.
            outcome.error = LARGE_OBJECT_NOT_BUFFERED
            outcome.detail = (f"non-final large-object chunk answered {status.code}, not "
                              f"{int(codes.StatusCode.CHUNKED_ITEM_ACCEPTED)}")
            if self.chunk is not None and (self.chunk.out.unit_index, self.chunk.out.seq) == (sent.unit_index,
                                                                                                sent.seq):
                self.chunk = None

    def _on_results(self, hdr, results):
        sent = self.sent.get((results.msg_ref or hdr.msg_id, results.cmd_ref))
        key = (results.msg_ref, results.cmd_ref)
        status = None
        for item in results.items:
            meta = item.meta.merged(results.meta) if item.meta else (results.meta or Meta())
            if item.more_data or key in self.incoming_lo:
                if key not in self.incoming_lo and (meta.size or 0) > self.policy.server_max_obj_size:
                    self.incoming_lo[key] = None                 # refused: drop its chunks (§5)
                    self._record_result(sent, None, codes.StatusCode.REQUESTED_SIZE_TOO_BIG)
                    status = codes.StatusCode.REQUESTED_SIZE_TOO_BIG
                    continue
                if self.incoming_lo.get(key, []) is None:
                    if not item.more_data:
                        del self.incoming_lo[key]
                    continue
                buf = self.incoming_lo.setdefault(key, [[], meta.size])
                buf[0].append(item.data or "")
                if item.more_data:
                    status = status or codes.StatusCode.CHUNKED_ITEM_ACCEPTED   # §5: 213 per chunk
                    continue
                data, size = "".join(buf[0]), buf[1]
                del self.incoming_lo[key]
                if size is not None and len(data) != size:
                    self._record_result(sent, None, codes.StatusCode.SIZE_MISMATCH)
                    continue
                item = replace(item, data=data)
            self._record_result(sent, ResultItem(uri=item.source or results.source_ref or "",
                                                 value=item.data, format=meta.format, type=meta.type))
        if status is not None:
            return self._status_for(hdr, results, status)
        return None

    def _adds_instead(self, sent, status, state, outcome):
        """A Replace answered 404 in a unit that asks for it: its Add goes
        out next (before later units' commands), once; the 404 is kept as
        an earlier status of the command. Not inside an Atomic, whose
        all-or-nothing an Add after it would break."""
        unit = state.unit
        if not (unit.add_if_missing and not unit.atomic and status.cmd == "Replace"
                and status.code == codes.StatusCode.NOT_FOUND and not outcome.earlier):
            return False
        command = next(c for c in unit.commands if c.seq == sent.seq)
        if command.action != "Replace":
            return False
        outcome.earlier.append(("Replace", int(status.code)))
        self._queue_in_job_order(sent.unit_index,
                                 [_Out(sent.unit_index, sent.seq, self._command(replace(command, action="Add")))])
        return True

    def _settle_containers(self):
        """A container's status is its members' result when the device gave
        them none: an Atomic refused as a whole (406, 500, 507 ...) is recorded
        at once, not left open and retried in later sessions. Done once the
        device's package is complete, because member statuses may follow the
        container's in any of its messages."""
        for unit_index, seqs, code in self.container_statuses:
            outcomes = self.units[unit_index].outcomes
            for seq in seqs:
                if outcomes[seq].status is None:
                    outcomes[seq].status = code
        self.container_statuses = []

    def _record_result(self, sent, item, failure=None):
        if sent is None:
            return
        outcome = self.units[sent.unit_index].outcomes.get(sent.seq)
        if outcome is None:
            return
        if item is not None:
            outcome.results.append(item)
        if failure is not None:
            outcome.status = failure

    # ---- work ----------------------------------------------------------------

    def _claim_more(self):
        self.work_claimed = True
        for unit in self.backend.claim_work(self.device_id):
            self.units.append(_UnitState(unit, {c.seq: CommandOutcome(c.seq) for c in unit.commands}))
            self.outgoing.extend(self._commands_for(len(self.units) - 1))

    def _commands_for(self, index):
        unit = self.units[index].unit
        outs = [_Out(index, c.seq, self._command(c)) for c in unit.commands]
        container = Atomic if unit.atomic else Sequence if unit.sequence else None
        if container is not None and outs:
            return [_Out(index, None, container(commands=[o.command for o in outs]),
                         inner_seqs=[o.seq for o in outs])]
        return outs

    def _command(self, command):
        cls = COMMAND_TYPES[command.action]
        fmt = command.format
        if cls in (Add, Replace) and not fmt:
            fmt = "chr"     # chr is the default anyway; a real client crashes on an Add without Format
        meta = Meta(format=fmt, type=command.type) if (fmt or command.type) else None
        item = Item(target=command.uri, source=command.source_uri, data=command.value, meta=meta)
        kwargs = {"correlator": command.correlator} if cls is Exec else {}
        return cls(items=[item], **kwargs)

    def _requeue(self, unit_index):
        """Send the unit again, once, whole: what of it is still waiting to go
        out is dropped first (it is in the copy), and the copy goes where the
        unit stood, before every later unit, so each command reaches the device
        once per attempt and in job order."""
        state = self.units[unit_index]
        if state.retried:
            return
        state.retried = True
        for key, sent in list(self.sent.items()):
            if sent.unit_index == unit_index:
                del self.sent[key]
        state.outcomes = {seq: CommandOutcome(seq) for seq in state.outcomes}
        self.container_statuses = [c for c in self.container_statuses if c[0] != unit_index]
        if self.chunk is not None and self.chunk.out.unit_index == unit_index:
            self.chunk = None            # its remaining pieces belong to the refused attempt
        self.outgoing = [o for o in self.outgoing if o.unit_index != unit_index]
        self._queue_in_job_order(unit_index, self._commands_for(unit_index))

    def _queue_in_job_order(self, unit_index, outs):
        """Queue ``outs`` of unit ``unit_index`` before every later unit's
        commands still waiting: work reaches the device in job order."""
        at = next((i for i, o in enumerate(self.outgoing)
                   if o.unit_index is not None and o.unit_index > unit_index), len(self.outgoing))
        self.outgoing[at:at] = outs

    def _finish_units(self):
        for state in self.units:
            if state.done() and not state.reported:
                state.reported = True
                self.backend.unit_finished(self.device_id, state.unit,
                                           [state.outcomes[s] for s in sorted(state.outcomes)])

    def _end(self, reason):
        if self.ended:
            return
        self.ended, self.end_reason = True, reason
        self._finish_units()
        for state in self.units:
            if not state.reported:
                state.reported = True
                self.backend.unit_interrupted(self.device_id, state.unit, reason)

    # ---- building replies ------------------------------------------------------

    def _next_part(self, statuses):
        """Commands for the next server message: as many whole commands as
        fit the device's MaxMsgSize; one that cannot fit alone goes out as a
        large object, piece by piece (§4, §5). Returns (outs, final)."""
        budget = self.device_max_msg_size - SIZE_MARGIN
        if self.chunk is not None:
            return self._next_chunk(statuses, budget)
        while self.outgoing:
            n = fitting(len(self.outgoing), lambda n: self._size(statuses, self.outgoing[:n]) <= budget)
            if n:
                placed, self.outgoing = self.outgoing[:n], self.outgoing[n:]
                return placed, not self.outgoing
            head = self.outgoing[0]
            if len(statuses) > 1 and head is not self.deferred and not self._piece_fits(head, statuses, budget):
                # Not even a minimal piece fits beside this message's statuses
                # (package 1 answers many): the next message, with fewer, may
                # carry it. Once: a command that cannot fit anyway is refused then.
                self.deferred = head
                return [], False
            chunked = self._start_chunk(self.outgoing.pop(0), statuses, budget)
            if chunked is not None:
                return chunked
        return [], True

    def _piece_fits(self, out, statuses, budget):
        """Whether the first minimal piece of ``out``'s data fits beside ``statuses``."""
        item = out.command.items[0] if out.seq is not None and out.command.items else None
        if item is None or not item.data:
            return False
        data = item.data[:MIN_PIECE]
        return self._size(statuses, [self._piece(out, data, True, len(data) == len(item.data))]) <= budget

    def _start_chunk(self, out, statuses, budget):
        command = out.command
        item = command.items[0] if out.seq is not None and command.items else None
        if item is None or not item.data:
            return self._fail_unsendable(out, codes.StatusCode.REQUEST_ENTITY_TOO_LARGE)
        if self.device_max_obj_size and len(item.data) > self.device_max_obj_size:
            return self._fail_unsendable(out, codes.StatusCode.REQUESTED_SIZE_TOO_BIG)
        self.chunk = _Chunk(out, LargeObject(item.data))
        chunked = self._next_chunk(statuses, budget)
        if chunked is None:
            self.chunk = None
            return self._fail_unsendable(out, codes.StatusCode.REQUEST_ENTITY_TOO_LARGE)
        return chunked

    def _next_chunk(self, statuses, budget):
        """The large object's next piece, as much of it as fits beside
        ``statuses``; None when not even a minimal piece fits."""
        ch = self.chunk
        first = ch.data.first
        piece = ch.data.next_piece(
            lambda data, last: self._size(statuses, [self._piece(ch.out, data, first, last)]) <= budget,
            minimum=MIN_PIECE)
        if piece is None:
            return None
        last = ch.data.done
        if last:
            self.chunk = None
        return [self._piece(ch.out, piece, first, last)], last and not self.outgoing

    @staticmethod
    def _piece(out, data, first, last):
        item = out.command.items[0]
        meta = replace(item.meta or Meta(), size=len(item.data)) if first else item.meta
        part = replace(item, data=data, more_data=not last, meta=meta)
        return replace(out, command=replace(out.command, items=[part]), chunk_final=last)

    def _fail_unsendable(self, out, code):
        state = self.units[out.unit_index]
        for seq in out.inner_seqs or [out.seq]:
            state.outcomes[seq].status = int(code)
        return None

    def _size(self, statuses, outs):
        return len(serialize(self._message(statuses, outs, final=True)))

    def _reply(self, statuses, outs, final):
        msg = self._message(statuses, outs, final, register=True)
        self.last_reply = msg
        return msg

    def _message(self, statuses, outs, final, register=False):
        msg_id = str(next(self.msg_ids)) if register else "0"
        cmd_ids = itertools.count(1)
        body = [replace(status, cmd_id=str(next(cmd_ids))) for status in statuses]
        for out in outs:
            command = out.command
            # The container's CmdID before its members': the usual order, the one clients expect.
            cid = str(next(cmd_ids))
            if isinstance(command, (Atomic, Sequence)):
                inner = []
                for seq, inner_cmd in zip(out.inner_seqs, command.commands):
                    member_id = str(next(cmd_ids))
                    inner.append(replace(inner_cmd, cmd_id=member_id))
                    if register:
                        self.sent[(msg_id, member_id)] = _Sent(out.unit_index, seq)
                command = replace(command, commands=inner)
            body.append(replace(command, cmd_id=cid))
            if register and out.unit_index is not None:
                self.sent[(msg_id, cid)] = _Sent(out.unit_index, out.seq, out.chunk_final, out.inner_seqs)
        header = SyncHdr(
            session_id=self.session_id, msg_id=msg_id,
            target=self.device_id, source=self.policy.server_uri,
            resp_uri=f"{self.policy.server_uri}?s={self.token}",
            cred=self._server_cred(),
            meta=Meta(max_msg_size=self.policy.server_max_msg_size,
                      max_obj_size=self.policy.server_max_obj_size),
        )
        return Message(header=header, body=body, final=final)

    def _hdr_status(self, hdr, code, chal=None):
        return Status(msg_ref=hdr.msg_id, cmd_ref="0", cmd="SyncHdr",
                      target_refs=[hdr.target], source_refs=[hdr.source], chal=chal, code=int(code))

    def _status_for(self, hdr, cmd, code):
        targets = [it.target for it in getattr(cmd, "items", []) if it.target] if code != 200 else []
        return Status(msg_ref=hdr.msg_id, cmd_ref=cmd.cmd_id or "0", cmd=cmd.tag,
                      target_refs=targets, code=int(code))

    def _alert(self, code):
        return _Out(None, None, Alert(data=int(code)))


def _devinfo(msg):
    """DevInfo leaves from a package 1 Replace: {'DevId': ..., 'Man': ...}."""
    info = {}
    for cmd in msg.body:
        if cmd.tag == "Replace":
            for it in cmd.items:
                if it.source and it.source.startswith("./DevInfo/") and it.source.count("/") == 2:
                    info[it.source.rsplit("/", 1)[-1]] = it.data
    return info
