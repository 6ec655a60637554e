"""The OMA DM endpoint: HTTP binding and the table of live sessions.

``DMServer.handle`` turns one HTTP POST from a device into the HTTP answer:
decode (XML or WBXML, either content-type family), find or open the session,
let the session engine answer, encode the answer the way the device spoke.
``DMResource`` is the Twisted face of it; sessions idle longer than the
configured timeout are expired by a periodic sweep.

Threads: the reactor thread only reads the request and writes the answer.
``handle`` -- decoding, the session lookup, the session engine with its
synchronous Backend calls on the store, encoding -- and the sweep run on the
store thread (dmwsi.store.thread): a message that waits for the
database delays the messages queued behind it, never the reactor. That one
thread runs every engine step and every sweep one after the other, so the
session table (``by_token``, ``by_device``, ``unauthenticated``,
``last_activity``) and the challenge buckets need no locks; other threads
only ask ``in_session`` (one dict lookup).

Which session a message belongs to:

* a message on a session's RespURI token continues that session; the same
  bytes again are a retransmission and get the same reply; a package 1
  (Alert 1200/1201) whose MsgID does not follow the session's is a new
  session (real clients start every session at SessionID 1, MsgID 1);
* without a token (or with a stale one), a package 1 always opens a new
  session; any other message goes to the device's current session when its
  SessionID matches (a device that ignores RespURI).

The device's slot (one session per device, ``in_session``) belongs to an
*authenticated* session only. Anyone can send a message naming a device's id,
so a session that has not authenticated holds nothing: it is kept beside the
slot holder (at most ``MAX_UNAUTHENTICATED`` per device, the oldest dropped),
claims no work, and the moment one session of the device authenticates it
takes the slot and every other session of the device ends; the old slot
holder's unfinished work goes back through the Backend as an interrupted
session, exactly as when a session is swept.

Challenges are rate-limited per source address (token bucket,
``challenge_rate`` per second, bursts of ``challenge_burst``; 0 turns it
off). A message that would reach an unauthenticated session from a source
whose bucket is empty is answered HTTP 429 Too Many Requests with
Retry-After, without a SyncML body: a SyncML answer needs a fresh nonce
written to the device's account, which is exactly what an unauthenticated
flood must not buy (SyncML's 417 "Retry later" is a command status inside a
session, not an answer to a refused request). A message whose credentials
verify is served whatever the bucket holds, and only answers that leave the
session unauthenticated (401/407/403) spend from it: devices that
authenticate are never limited, however many share an address with a flood.
"""
import logging
import math
import secrets
import time
from dataclasses import dataclass

from twisted.internet import task
from twisted.web import resource, server

from dmwsi.dm import auth, wbxml
from dmwsi.dm.message import ProtocolError, parse, serialize
from dmwsi.dm.session import Session, SessionPolicy, starts_session

log = logging.getLogger(__name__)

XML_TYPES = (wbxml.DM_XML, wbxml.DS_XML)
WBXML_TYPES = (wbxml.DM_WBXML, wbxml.DS_WBXML)
# Unauthenticated sessions kept per device: a device mid-handshake survives a
# few strangers' package 1s naming it, and a flood costs bounded memory.
MAX_UNAUTHENTICATED = 4
# Commands plus items one message may carry. A message within MaxMsgSize of
# tiny items can still hold thousands of them, and each costs the engine a
# record; real clients send a few dozen (large Results go as one TNDS item).
MAX_PARTS = 2000


@dataclass
class Answer:
    code: int
    content_type: str
    body: bytes
    headers: dict


def _refuse(code, reason):
    log.warning("refused DM request: %s", reason)
    return Answer(code, "text/plain; charset=utf-8", (reason + "\n").encode(), {})


class ChallengeLimiter:
    """Token buckets per source address: ``rate`` challenges a second, bursts of ``burst``."""

    def __init__(self, rate, burst, clock):
        self.rate, self.burst, self.clock = rate, burst, clock
        self.buckets = {}          # source -> (tokens, clock() of the last update)

    def _tokens(self, source):
        tokens, then = self.buckets.get(source, (self.burst, self.clock()))
        now = self.clock()
        return min(self.burst, tokens + (now - then) * self.rate), now

    def allows(self, source):
        return self.rate <= 0 or self._tokens(source)[0] >= 1

    def spend(self, source):
        if self.rate <= 0:
            return
        tokens, now = self._tokens(source)
        self.buckets[source] = (max(0.0, tokens - 1), now)

    def retry_after(self, source):
        return max(1, math.ceil((1 - self._tokens(source)[0]) / self.rate))

    def forget_full(self):
        """Drop buckets that have refilled: they hold nothing a new one would not."""
        for source in list(self.buckets):
            if self._tokens(source)[0] >= self.burst:
                del self.buckets[source]


class DMServer:
    def __init__(self, backend, policy: SessionPolicy, session_timeout=120, clock=time.monotonic,
                 challenge_rate=1.0, challenge_burst=20, store_thread=None, max_parts=MAX_PARTS):
        self.backend = backend
        self.max_parts = max_parts
        #: dmwsi.store.thread.StoreThread that runs ``handle`` and ``sweep``
        #: for the HTTP binding (the engine tests call ``handle`` directly).
        self.store_thread = store_thread
        self.policy = policy
        self.session_timeout = session_timeout
        self.clock = clock
        self.by_token = {}        # token -> Session, every live session
        self.by_device = {}       # device id -> its authenticated Session (the device's slot)
        self.unauthenticated = {}  # device id -> [Session], oldest first, not yet authenticated
        self.last_activity = {}   # token -> clock()
        self.listeners = []       # callables(session) told when a slot holder's session ends
        self.challenges = ChallengeLimiter(challenge_rate, challenge_burst, clock)

    # ---- on the store thread, for the reactor ---------------------------------

    def respond(self, body, content_type, **kwargs):
        """``handle`` on the store thread -> Deferred Answer (fired on the reactor)."""
        return self.store_thread.run(self.handle, body, content_type, **kwargs)

    def sweep_later(self):
        """``sweep`` on the store thread -> Deferred; a failed sweep is logged, the next one runs."""
        return self.store_thread.run(self.sweep).addErrback(
            lambda f: log.error("DM session sweep failed: %s", f.getTraceback()))

    # ---- HTTP-independent core (store thread) ---------------------------------

    def handle(self, body, content_type, token=None, hmac_header=None, source=None):
        media = (content_type or "").split(";")[0].strip().lower()
        if media in WBXML_TYPES:
            try:
                xml = wbxml.wbxml_to_xml(body)
            except wbxml.WbxmlError as e:
                return _refuse(400, f"undecodable WBXML: {e}")
            answer_type = wbxml.DM_WBXML
        elif media in XML_TYPES:
            xml, answer_type = body, wbxml.DM_XML
        else:
            return _refuse(415, f"unsupported content type {media or '(none)'}")
        try:
            msg = parse(xml)
        except ProtocolError as e:
            return _refuse(400, str(e))
        parts = _parts(msg.body)
        if parts > self.max_parts:
            # Refused before any session sees it: nothing is recorded, no nonce is spent.
            return _refuse(413, f"{parts} commands and items in one message (at most {self.max_parts})")

        session = self._session_for(msg, body, token)
        try:
            reply = session.receive(msg, hmac_header=hmac_header, body=body,
                                    may_challenge=self.challenges.allows(source))
        except Exception:
            log.exception("DM session %s with %s failed", session.session_id, session.device_id)
            session.expire("server error")
            self._forget(session)
            return _refuse(500, "internal error")
        if reply is None:
            answer = _refuse(429, f"too many unauthenticated DM messages from {source}")
            answer.headers["Retry-After"] = str(self.challenges.retry_after(source))
            return answer
        if session.token not in self.by_token:
            self._open(session)
        self.last_activity[session.token] = self.clock()
        if not session.authenticated:
            self.challenges.spend(source)
        out = serialize(reply)
        if answer_type == wbxml.DM_WBXML:
            out = wbxml.xml_to_wbxml(out)
        headers = {}
        if session.auth_scheme == "hmac" and session.account is not None:
            acct = session.account
            headers[auth.HMAC_HEADER] = auth.hmac_header(acct.server_id, acct.server_password,
                                                         acct.server_nonce, out)
        if session.ended:
            self._forget(session)
        return Answer(200, answer_type, out, headers)

    def _session_for(self, msg, body, token):
        """The live session ``msg`` continues, or a new one (not yet in the table)."""
        device_id, session_id = msg.header.source, msg.header.session_id
        session = self.by_token.get(token) if token else None
        if session is not None and session.device_id == device_id and session.session_id == session_id:
            if not session.restarts(msg, body):
                return session
        elif not starts_session(msg):
            current = self.by_device.get(device_id)
            if current is not None and current.session_id == session_id and not current.ended:
                return current        # a device that ignores RespURI
        return Session(device_id, session_id, self.backend, self.policy, secrets.token_urlsafe(12),
                       on_authenticated=self._take_slot)

    def _open(self, session):
        self.by_token[session.token] = session
        if session.authenticated:
            # Authenticated in its first message: _take_slot made it the
            # device's session already. Counting it among the unauthenticated
            # would let a few strangers naming the device expire it as "oldest".
            return
        waiting = self.unauthenticated.setdefault(session.device_id, [])
        waiting.append(session)
        while len(waiting) > MAX_UNAUTHENTICATED:
            oldest = waiting[0]
            oldest.expire("too many unauthenticated sessions")
            self._forget(oldest)

    def _take_slot(self, session):
        """``session`` just authenticated: it is the device now; every other session ends."""
        device_id = session.device_id
        others = [s for s in self.unauthenticated.get(device_id, []) if s is not session]
        if self.by_device.get(device_id) not in (None, session):
            others.append(self.by_device[device_id])
        for other in others:
            other.expire("superseded by a new session")
            self._forget(other)
        waiting = self.unauthenticated.get(device_id, [])
        if session in waiting:
            waiting.remove(session)
        if not waiting:
            self.unauthenticated.pop(device_id, None)
        self.by_device[device_id] = session

    def _forget(self, session):
        self.by_token.pop(session.token, None)
        self.last_activity.pop(session.token, None)
        waiting = self.unauthenticated.get(session.device_id)
        if waiting and session in waiting:
            waiting.remove(session)
            if not waiting:
                del self.unauthenticated[session.device_id]
        if self.by_device.get(session.device_id) is session:
            del self.by_device[session.device_id]
            for listener in self.listeners:
                listener(session)

    def sweep(self):
        """Expire sessions idle for longer than the session timeout."""
        deadline = self.clock() - self.session_timeout
        for token, seen in list(self.last_activity.items()):
            if seen < deadline:
                session = self.by_token[token]
                log.info("DM session with %s timed out", session.device_id)
                session.expire("timeout")
                self._forget(session)
        self.challenges.forget_full()

    def in_session(self, device_id):
        """True while the device itself (authenticated) is in session."""
        return device_id in self.by_device


def _parts(commands):
    """Commands and items in ``commands``, containers' members included."""
    total = 0
    for command in commands:
        total += 1 + len(getattr(command, "items", ()) or ()) + _parts(getattr(command, "commands", ()) or ())
    return total


class DMResource(resource.Resource):
    """POST endpoint for devices. Twisted already de-chunks request bodies.
    The answer is written when the store thread has made it (NOT_DONE_YET);
    if the device hung up meanwhile it is dropped (the session keeps it for
    the retransmission)."""
    isLeaf = True

    def __init__(self, dm_server, reactor):
        super().__init__()
        self.dm = dm_server
        self.sweeper = task.LoopingCall(dm_server.sweep_later)
        self.sweeper.clock = reactor

    def start(self):
        self.sweeper.start(max(1, self.dm.session_timeout / 4), now=False)

    def stop(self):
        if self.sweeper.running:
            self.sweeper.stop()

    def render_POST(self, request):
        token = request.args.get(b"s", [b""])[0].decode("ascii", "replace") or None
        gone = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = self.dm.respond(request.content.read(), request.getHeader("content-type"),
                            token=token, hmac_header=request.getHeader(auth.HMAC_HEADER),
                            source=request.getClientAddress().host)
        d.addErrback(self._failed)
        d.addCallback(self._write, request, gone)
        return server.NOT_DONE_YET

    def _failed(self, failure):
        """What ``handle`` did not turn into an answer itself (the store thread stopped...)."""
        log.error("DM request failed: %s", failure.getTraceback())
        return _refuse(500, "internal error")

    @staticmethod
    def _write(answer, request, gone):
        if gone:
            log.info("DM client hung up before its answer (HTTP %d) was ready", answer.code)
            return
        request.setResponseCode(answer.code)
        request.setHeader(b"content-type", answer.content_type.encode())
        request.setHeader(b"cache-control", b"private")
        for name, value in answer.headers.items():
            request.setHeader(name.encode(), value.encode())
        request.write(answer.body)
        request.finish()

    def render_GET(self, request):
        request.setResponseCode(405)
        request.setHeader(b"allow", b"POST")
        return b"OMA DM endpoint: devices POST SyncML messages here.\n"
