"""The OMA DM endpoint: HTTP binding and the table of live sessions.

``DMServer.handle`` turns one HTTP POST from a device into the HTTP answer:
decode (XML or WBXML, either content-type family), find or open the session
(by the RespURI token, else by device and SessionID; one session per device),
let the session engine answer, encode the answer the way the device spoke.
``DMResource`` is the Twisted face of it; sessions idle longer than the
configured timeout are expired by a periodic sweep.
"""
import logging
import secrets
import time
from dataclasses import dataclass

from twisted.internet import task
from twisted.web import resource

from dmwsi.dm import auth, wbxml
from dmwsi.dm.message import ProtocolError, parse, serialize
from dmwsi.dm.session import Session, SessionPolicy

log = logging.getLogger(__name__)

XML_TYPES = (wbxml.DM_XML, wbxml.DS_XML)
WBXML_TYPES = (wbxml.DM_WBXML, wbxml.DS_WBXML)


@dataclass
class Answer:
    code: int
    content_type: str
    body: bytes
    headers: dict


class DMServer:
    def __init__(self, backend, policy: SessionPolicy, session_timeout=120, clock=time.monotonic):
        self.backend = backend
        self.policy = policy
        self.session_timeout = session_timeout
        self.clock = clock
        self.by_token = {}        # token -> Session
        self.by_device = {}       # device id -> Session
        self.last_activity = {}   # token -> clock()
        self.listeners = []       # callables(session) told when a session ends

    # ---- HTTP-independent core ----------------------------------------------

    def handle(self, body, content_type, token=None, hmac_header=None):
        media = (content_type or "").split(";")[0].strip().lower()
        if media in WBXML_TYPES:
            try:
                xml = wbxml.wbxml_to_xml(body)
            except wbxml.WbxmlError as e:
                return self._refuse(400, f"undecodable WBXML: {e}")
            answer_type = wbxml.DM_WBXML
        elif media in XML_TYPES:
            xml, answer_type = body, wbxml.DM_XML
        else:
            return self._refuse(415, f"unsupported content type {media or '(none)'}")
        try:
            msg = parse(xml)
        except ProtocolError as e:
            return self._refuse(400, str(e))

        session = self._session_for(msg, token)
        self.last_activity[session.token] = self.clock()
        try:
            reply = session.receive(msg, hmac_header=hmac_header, body=body)
        except Exception:
            log.exception("DM session %s with %s failed", session.session_id, session.device_id)
            session.expire("server error")
            self._forget(session)
            return self._refuse(500, "internal error")
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

    def _session_for(self, msg, token):
        session = self.by_token.get(token) if token else None
        device_id, session_id = msg.header.source, msg.header.session_id
        if session is not None and session.device_id == device_id and session.session_id == session_id:
            return session
        current = self.by_device.get(device_id)
        if current is not None and current.session_id == session_id and not current.ended:
            return current        # a device that ignores RespURI
        if current is not None:
            # One session per device: a new package 1 replaces the old session.
            current.expire("superseded by a new session")
            self._forget(current)
        session = Session(device_id, session_id, self.backend, self.policy, secrets.token_urlsafe(12))
        self.by_token[session.token] = session
        self.by_device[device_id] = session
        return session

    def _forget(self, session):
        self.by_token.pop(session.token, None)
        self.last_activity.pop(session.token, None)
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

    def in_session(self, device_id):
        return device_id in self.by_device

    def _refuse(self, code, reason):
        log.warning("refused DM request: %s", reason)
        return Answer(code, "text/plain; charset=utf-8", (reason + "\n").encode(), {})


class DMResource(resource.Resource):
    """POST endpoint for devices. Twisted already de-chunks request bodies."""
    isLeaf = True

    def __init__(self, dm_server, reactor):
        super().__init__()
        self.dm = dm_server
        self.sweeper = task.LoopingCall(dm_server.sweep)
        self.sweeper.clock = reactor

    def start(self):
        self.sweeper.start(max(1, self.dm.session_timeout / 4), now=False)

    def stop(self):
        if self.sweeper.running:
            self.sweeper.stop()

    def render_POST(self, request):
        token = request.args.get(b"s", [b""])[0].decode("ascii", "replace") or None
        hmac_header = request.getHeader(auth.HMAC_HEADER)
        answer = self.dm.handle(request.content.read(), request.getHeader("content-type"),
                                token=token, hmac_header=hmac_header)
        request.setResponseCode(answer.code)
        request.setHeader(b"content-type", answer.content_type.encode())
        request.setHeader(b"cache-control", b"private")
        for name, value in answer.headers.items():
            request.setHeader(name.encode(), value.encode())
        return answer.body

    def render_GET(self, request):
        request.setResponseCode(405)
        request.setHeader(b"allow", b"POST")
        return b"OMA DM endpoint: devices POST SyncML messages here.\n"
