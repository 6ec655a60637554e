"""The push outbox (transactional outbox of OES4)."""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from datetime import datetime

from dmwsi.records import OutboxPush
from dmwsi.store.base import NotFound, check_limit
from dmwsi.store.sqlite.codec import cols, dt, from_json, marks, to_json, ts, utcnow
from dmwsi.store.sqlite.connection import Connection

_PUSH_COLS = [f.name for f in fields(OutboxPush)]
_PUSH_TS = ("created_at", "next_attempt_at", "delivered_at")


def _push(row: sqlite3.Row) -> OutboxPush:
    d = dict(row)
    for k in _PUSH_TS:
        d[k] = dt(d[k])
    d["payload"] = from_json(d["payload"])
    return OutboxPush(**d)


class OutboxTables(Connection):
    def _insert_push(self, push: OutboxPush) -> None:
        values = [getattr(push, c) for c in _PUSH_COLS]
        values = [ts(v) if c in _PUSH_TS else to_json(v) if c == "payload" else v
                  for c, v in zip(_PUSH_COLS, values)]
        with self.transaction():
            self._conn.execute(
                f"INSERT INTO outbox ({cols(_PUSH_COLS)}) VALUES ({marks(len(_PUSH_COLS))})", values
            )

    def next_push_sequence(self, stream: str) -> int:
        # One probe of the (stream, sequence) unique index.
        row = self._one(
            "SELECT coalesce(max(sequence), 0) + 1 FROM outbox WHERE stream = ?", (stream,)
        )
        return row[0]

    def reschedule_push(self, delivery_id: str, next_attempt_at: datetime) -> bool:
        if next_attempt_at is None:
            raise TypeError("reschedule_push needs a time; mark_failed(..., None) abandons a push")
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE outbox SET next_attempt_at = ? "
                "WHERE delivery_id = ? AND delivered_at IS NULL AND next_attempt_at IS NOT NULL",
                (ts(next_attempt_at), delivery_id),
            )
            if cur.rowcount == 0 and self.get_push(delivery_id) is None:
                raise NotFound(f"no push {delivery_id!r}")
            return cur.rowcount > 0

    def pending_push_count(self, stream: str, *, below_sequence: int | None = None) -> int:
        sql = (
            "SELECT count(*) FROM outbox WHERE stream = ? AND delivered_at IS NULL "
            "AND next_attempt_at IS NOT NULL"
        )
        params: list = [stream]
        if below_sequence is not None:
            sql += " AND sequence < ?"
            params.append(below_sequence)
        return self._one(sql, params)[0]

    def due_pushes(self, now: datetime | None = None, limit: int = 100) -> list[OutboxPush]:
        check_limit(limit)
        return [
            _push(r)
            for r in self._conn.execute(
                f"SELECT {cols(_PUSH_COLS)} FROM outbox WHERE delivered_at IS NULL "
                "AND next_attempt_at IS NOT NULL AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at, rowid LIMIT ?",  # rowid: enqueue order
                (ts(now or utcnow()), limit),
            )
        ]

    def get_push(self, delivery_id: str) -> OutboxPush | None:
        row = self._one(f"SELECT {cols(_PUSH_COLS)} FROM outbox WHERE delivery_id = ?", (delivery_id,))
        return None if row is None else _push(row)

    def mark_delivered(self, delivery_id: str, *, now: datetime | None = None) -> None:
        with self.transaction():
            # Idempotent: a second acknowledgement keeps the first time.
            cur = self._conn.execute(
                "UPDATE outbox SET attempts = attempts + (delivered_at IS NULL), "
                "delivered_at = coalesce(delivered_at, ?), next_attempt_at = NULL WHERE delivery_id = ?",
                (ts(now or utcnow()), delivery_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no push {delivery_id!r}")

    def mark_failed(self, delivery_id: str, error: str, next_attempt_at: datetime | None) -> None:
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                "WHERE delivery_id = ? AND delivered_at IS NULL",
                (error, ts(next_attempt_at), delivery_id),
            )
            if cur.rowcount == 0 and self.get_push(delivery_id) is None:
                raise NotFound(f"no push {delivery_id!r}")
