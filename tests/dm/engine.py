"""A harness for driving the DM session engine without HTTP.

``FakeBackend`` implements ``dmwsi.dm.work.Backend`` in memory (accounts,
pending work per device, what the engine reported); ``ScriptedDevice`` writes
the messages a device would send, as bytes and parsed, so a test states a
protocol exchange message by message:

    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account("IMEI:1"))
    backend.queue("IMEI:1", WorkUnit("job-1", [Command(action="Get", uri="./DevInfo/Mod", seq=1)]))
    session = new_session(backend)
    reply = device.send(session, device.package1())
    reply = device.send(session, device.answer(reply))

Nothing is mocked inside the engine: it parses, authenticates, numbers and
sizes exactly as it does behind ``dmwsi.dm.server``.
"""
import itertools
from dataclasses import dataclass, field, replace

from dmwsi.dm import auth, codes
from dmwsi.dm.message import (AUTH_MD5, Alert, Atomic, Cred, Item, Message, Replace, Results, Sequence,
                              Status, SyncHdr, parse, serialize)
from dmwsi.dm.session import Session, SessionPolicy
from dmwsi.dm.work import DeviceAccount

SERVER_URI = "http://dm.test/dm"


def policy(**overrides):
    return SessionPolicy(server_uri=SERVER_URI, **overrides)


def new_session(backend, device_id="IMEI:1", session_id="1", token="tok", **kwargs):
    return Session(device_id, session_id, backend, kwargs.pop("policy", None) or policy(), token, **kwargs)


@dataclass
class FakeBackend:
    """In-memory Backend: what the store-backed one does, minus the store."""
    accounts: dict = field(default_factory=dict)       # device id -> DeviceAccount
    pending: dict = field(default_factory=dict)        # device id -> [WorkUnit] not claimed
    finished: list = field(default_factory=list)       # (device id, unit, outcomes)
    interrupted: list = field(default_factory=list)    # (device id, unit, reason)
    alerts: list = field(default_factory=list)         # (device id, GenericAlert)
    claims: list = field(default_factory=list)         # (device id, [job ids]) per claim_work call

    def add_account(self, device_id="IMEI:1", password="pw", scheme="md5", nonce=b""):
        acct = DeviceAccount(device_id=device_id, auth_scheme=scheme, client_username=device_id,
                             client_password=password, server_id="dmwsi", server_password="spw",
                             client_nonce=nonce)
        self.accounts[device_id] = acct
        return acct

    def queue(self, device_id, unit):
        self.pending.setdefault(device_id, []).append(unit)

    # ---- Backend -----------------------------------------------------------

    def account(self, device_id):
        acct = self.accounts.get(device_id)
        # A copy, as a store returns a fresh row: sessions never share one object.
        return None if acct is None else DeviceAccount(**vars(acct))

    def device_seen(self, device_id, devinfo):
        return self.account(device_id)

    def save_nonces(self, device_id, client_nonce=None, server_nonce=None):
        acct = self.accounts[device_id]
        if client_nonce is not None:
            acct.client_nonce = client_nonce
        if server_nonce is not None:
            acct.server_nonce = server_nonce

    def claim_work(self, device_id):
        units = self.pending.pop(device_id, [])
        self.claims.append((device_id, [u.job_id for u in units]))
        return units

    def unit_finished(self, device_id, unit, outcomes):
        self.finished.append((device_id, unit, outcomes))

    def unit_interrupted(self, device_id, unit, reason):
        self.interrupted.append((device_id, unit, reason))
        self.queue(device_id, unit)          # back to pending, as the store requeues it

    def device_alert(self, device_id, alert):
        self.alerts.append((device_id, alert))
        return codes.StatusCode.OK


@dataclass
class Sent:
    """One device message: the bytes on the wire and what the server parses from them."""
    body: bytes
    msg: Message


class ScriptedDevice:
    """Writes device messages for one account; the test decides every status."""

    def __init__(self, account, session_id="1"):
        self.account = account
        self.session_id = session_id
        self.msg_ids = itertools.count(1)
        self.nonce = account.client_nonce       # CLCRED AAuthData: what our next Cred uses

    def restart(self, session_id=None):
        """A new session as real clients start it: MsgID 1 again."""
        self.session_id = session_id or self.session_id
        self.msg_ids = itertools.count(1)

    def cred(self, password=None):
        acct = self.account
        return Cred(type=AUTH_MD5, format="b64",
                    data=auth.md5_encode(acct.client_username, password or acct.client_password, self.nonce))

    def message(self, body, cred=None, final=True, msg_id=None):
        msg_id = str(msg_id if msg_id is not None else next(self.msg_ids))
        header = SyncHdr(session_id=self.session_id, msg_id=msg_id, target=SERVER_URI,
                         source=self.account.device_id, cred=cred)
        data = serialize(Message(header=header, body=_numbered(body), final=final))
        return Sent(data, parse(data))

    def package1(self, authenticate=True, alert=codes.AlertCode.CLIENT_INITIATED_MGMT, password=None,
                 msg_id=None):
        devinfo = Replace(items=[Item(source="./DevInfo/DevId", data=self.account.device_id),
                                 Item(source="./DevInfo/Man", data="Acme")])
        return self.message([Alert(data=int(alert)), devinfo],
                            cred=self.cred(password) if authenticate else None, msg_id=msg_id)

    def send(self, session, sent, hmac_header=None):
        """Hand ``sent`` to the engine; the reply as the device would parse it."""
        reply = parse(serialize(session.receive(sent.msg, hmac_header=hmac_header, body=sent.body)))
        self.learn(reply)
        return reply

    def learn(self, reply):
        """Keep the nonce of a challenge or a 212 for the next Cred (§9.4)."""
        for cmd in reply.body:
            if cmd.tag == "Status" and cmd.cmd_ref == "0" and cmd.chal and cmd.chal.next_nonce:
                self.nonce = auth.b64decode(cmd.chal.next_nonce)

    def answer(self, reply, codes_by_uri=None, values=None, header_code=212, extra=()):
        """Package 3: a Status for every server command in ``reply`` (200, or 213
        for a non-final large-object chunk, unless ``codes_by_uri`` says
        otherwise), Results for each successful Get with ``values[uri]``;
        ``extra`` commands appended (alerts...)."""
        codes_by_uri, values = codes_by_uri or {}, values or {}
        hdr = reply.header
        body = [Status(msg_ref=hdr.msg_id, cmd_ref="0", cmd="SyncHdr", target_refs=[hdr.target],
                       source_refs=[hdr.source], code=header_code)]
        for cmd in server_commands(reply):
            items = getattr(cmd, "items", None)
            uri = items[0].target if items else None
            buffered = codes.StatusCode.CHUNKED_ITEM_ACCEPTED if items and items[0].more_data else codes.StatusCode.OK
            code = codes_by_uri.get(uri, buffered)
            body.append(Status(msg_ref=hdr.msg_id, cmd_ref=cmd.cmd_id, cmd=cmd.tag,
                               target_refs=[uri] if uri else [], code=code))
            if cmd.tag == "Get" and code == codes.StatusCode.OK:
                body.append(Results(msg_ref=hdr.msg_id, cmd_ref=cmd.cmd_id,
                                    items=[Item(source=uri, data=values.get(uri, "value"))]))
        return self.message(body + list(extra))


def server_commands(reply):
    """The server's commands in ``reply``, containers' members after the container."""
    out = []
    for cmd in reply.body:
        if cmd.tag in ("Status", "Results"):
            continue
        out.append(cmd)
        if isinstance(cmd, (Atomic, Sequence)):
            out.extend(cmd.commands)
    return out


def header_status(reply):
    return next(c for c in reply.body if c.tag == "Status" and c.cmd_ref == "0")


def _numbered(body):
    ids = itertools.count(1)
    return [_number(cmd, ids) for cmd in body]


def _number(cmd, ids):
    cmd = replace(cmd, cmd_id=str(next(ids)))
    if isinstance(cmd, (Atomic, Sequence)):
        cmd = replace(cmd, commands=[_number(c, ids) for c in cmd.commands])
    return cmd
