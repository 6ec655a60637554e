"""Device messages: commands packed to the server's MaxMsgSize, large Results chunked (§4, §5).

``MessagePacking`` is a part of ``SimulatedDevice``: it fills the next device
message from the session's queue (Generic Alerts still owed go along), splits
a Results across messages, sends an item too large for one message in
MoreData chunks, numbers the commands and serializes the message.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from dmwsi.dm import auth, wbxml
from dmwsi.dm.codes import AlertCode
from dmwsi.dm.message import Alert, Atomic, Item, Message, Meta, Results, Sequence, Status, SyncHdr, serialize
from dmwsi.dm.packing import LargeObject, fitting
from dmwsi.sim.objects import SERVER_CREDENTIALS, store_nonce

# Below this a piece is all overhead; a device with nothing smaller to send sends it oversize anyway.
MIN_PIECE = 64


@dataclass(frozen=True)
class Request:
    """One HTTP POST the device wants sent."""

    url: str
    body: bytes
    content_type: str
    headers: dict[str, str]


@dataclass
class OutgoingObject:
    """A Results item too large for one message, sent chunk by chunk (§5)."""

    results: Results              # template: CmdRef/MsgRef, items replaced per chunk
    item: Item
    data: LargeObject


@dataclass(kw_only=True)
class _OwedAlert(Alert):
    """A Generic Alert command that remembers the alert it reports, so an
    unacknowledged one can be queued again."""

    owed: dict = field(default_factory=dict)


def owed_alerts(commands: list) -> list[dict]:
    """The alert dicts of the Generic Alerts among ``commands``: owed again if they never went out."""
    return [cmd.owed for cmd in commands if isinstance(cmd, _OwedAlert)]


class MessagePacking:
    """Building device messages for ``SimulatedDevice`` (mixed into it)."""

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
                fit = fitting(len(s.queue), lambda n: self._size(placed + s.queue[:n] + tail) <= budget)
                if fit:
                    placed.extend(s.queue[:fit])
                    del s.queue[:fit]
                    continue
                candidate = s.queue[0]
                if isinstance(candidate, Results) and len(candidate.items) > 1:
                    fit = fitting(len(candidate.items) - 1, lambda n: self._size(
                        placed + [replace(candidate, items=candidate.items[:n])] + tail) <= budget)
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
                        s.lo_out = OutgoingObject(results=candidate, item=candidate.items[0],
                                                  data=LargeObject(candidate.items[0].data))
                        placed.append(self._next_chunk(placed, tail, budget))
                    else:
                        placed.append(candidate)   # cannot be split: sent oversize
                break
        final = server_final and not streaming and not s.queue and s.lo_out is None
        return self._send(placed + tail, final)

    def _next_chunk(self, placed, tail, budget: int | None) -> Results:
        """The next piece of the outgoing large object (first one carries Size)."""
        lo = self._session.lo_out
        item_meta = lo.item.meta or Meta()
        meta = replace(item_meta, size=lo.data.size) if lo.data.first else replace(item_meta, size=None)
        meta = None if meta == Meta() else meta

        def chunk(piece, last):
            return replace(lo.results, items=[replace(lo.item, meta=meta, data=piece, more_data=not last)])

        if budget is None:
            piece = lo.data.next_piece(lambda piece, last: True)
        else:
            piece = lo.data.next_piece(lambda piece, last: self._size(placed + [chunk(piece, last)] + tail) <= budget,
                                       minimum=MIN_PIECE)
            if piece is None:
                piece = lo.data.next_piece(lambda piece, last: len(piece) <= MIN_PIECE)
        last = lo.data.done
        if last:
            self._session.lo_out = None
        return chunk(piece, last)

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
