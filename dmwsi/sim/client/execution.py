"""Server commands run against the simulated tree: one Status per command, Results for Gets.

Get/Add/Replace/Delete/Copy/Exec/Atomic/Sequence and UI alerts, with the
DMAcc ServerID; per-item statuses when the codes differ; Atomic rollback
(216/516/215, 507); large objects received chunk by chunk (213, Meta Size
check → 424, Alert 1225 when interrupted). ``CommandExecution`` is a part of
``SimulatedDevice``.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs

from dmwsi.dm.codes import AlertCode, StatusCode
from dmwsi.dm.message import (Add, Alert, Atomic, Copy, Delete, Exec, Get, Item, Meta, Replace, Results, Sequence,
                              Status, SyncHdr, UnknownCommand)
from dmwsi.records import ResultItem

_ITEM_COMMANDS = (Add, Replace, Delete, Copy, Exec, Get)
_SUCCESS = (StatusCode.OK, StatusCode.ACCEPTED_FOR_PROCESSING)


@dataclass
class IncomingObject:
    """A large object being received (§5)."""

    key: tuple[str, str]          # (command tag, target URI)
    parts: list[str]
    size: int | None
    meta: Meta | None
    rejected: int | None = None   # status answered to every chunk (416)


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


class CommandExecution:
    """Running server commands for ``SimulatedDevice`` (mixed into it)."""

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
            if self.behaviour.atomic_refusal is not None:
                # A real client refused Atomic as a whole: one status, no member ran or answered.
                return _Done(cmd, [self.behaviour.atomic_refusal])
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
        if self.behaviour.chunks_as_whole:
            # A real client ignored MoreData: every chunk written as the value (200), the last one kept.
            return replace(item, more_data=False), meta, None
        key = (cmd.tag, item.target or "")
        lo = s.lo_in if s.lo_in is not None and s.lo_in.key == key else None
        if lo is None and not item.more_data:
            return item, meta, None
        if lo is None:
            lo = s.lo_in = IncomingObject(key=key, parts=[], size=meta.size, meta=item.meta)
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


def _result_item(r: ResultItem) -> Item:
    """A tree Get result as a Results Item: binary values as b64 (§6.3)."""
    value, fmt = r.value, r.format
    if isinstance(value, bytes):
        value, fmt = base64.b64encode(value).decode("ascii"), "b64"
    meta = Meta(format=fmt if fmt != "chr" else None,
                type=r.type if r.type and r.type != "text/plain" else None)
    return Item(source=r.uri, meta=None if meta == Meta() else meta, data=value)


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
