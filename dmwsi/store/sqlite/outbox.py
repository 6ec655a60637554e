"""The push outbox (transactional outbox of OES4)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime

from dmwsi.records import OutboxPush
from dmwsi.store.base import NotFound, check_limit
from dmwsi.store.sqlite.codec import cols, dt, from_json, marks, to_json, ts, utcnow
from dmwsi.store.sqlite.connection import Connection

_PUSH_COLS = [f.name for f in fields(OutboxPush)]
_PUSH_TS = ("created_at", "next_attempt_at", "delivered_at")
#: A push waiting for its (next) attempt; the terms of the partial indexes
#: outbox_due and outbox_consumer_due, repeated verbatim so SQLite uses them.
_SCHEDULED = "delivered_at IS NULL AND next_attempt_at IS NOT NULL"
#: A parked push: neither delivered nor scheduled (index outbox_parked).
_PARKED = "delivered_at IS NULL AND next_attempt_at IS NULL"


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

    def due_pushes(self, now: datetime | None = None, limit: int = 100, *,
                   callback_url: str | None = None) -> list[OutboxPush]:
        check_limit(limit)
        sql = f"SELECT {cols(_PUSH_COLS)} FROM outbox WHERE delivered_at IS NULL AND next_attempt_at IS NOT NULL "
        params: list = []
        if callback_url is not None:
            sql += "AND callback_url = ? "     # one range of outbox_consumer_due
            params.append(callback_url)
        sql += "AND next_attempt_at <= ? ORDER BY next_attempt_at, rowid LIMIT ?"  # rowid: enqueue order
        return [_push(r) for r in self._conn.execute(sql, params + [ts(now or utcnow()), limit])]

    def due_consumers(self, now: datetime | None = None) -> list[str]:
        # A loose index scan of outbox_consumer_due: one seek per consumer for
        # the next URL and one for its earliest due time, however many pushes
        # each consumer has waiting.
        rows = self._conn.execute(
            f"""
            WITH RECURSIVE consumer(url) AS (
                SELECT min(callback_url) FROM outbox WHERE {_SCHEDULED}
                UNION ALL
                SELECT (SELECT min(callback_url) FROM outbox WHERE {_SCHEDULED} AND callback_url > consumer.url)
                FROM consumer WHERE consumer.url IS NOT NULL
            )
            SELECT url FROM consumer WHERE url IS NOT NULL
              AND (SELECT min(next_attempt_at) FROM outbox WHERE {_SCHEDULED} AND callback_url = consumer.url) <= ?
            """,
            (ts(now or utcnow()),),
        )
        return [r[0] for r in rows]

    def park_pushes(self, callback_url: str, error: str, *, batch: int = 1000) -> int:
        check_limit(batch)
        parked = 0
        while True:
            # Bounded batches, each its own transaction (unless the caller holds
            # one): a consumer with a huge backlog never holds the write lock long.
            with self.transaction():
                cur = self._conn.execute(
                    f"UPDATE outbox SET next_attempt_at = NULL, last_error = ? WHERE rowid IN ("
                    f"SELECT rowid FROM outbox WHERE {_SCHEDULED} AND callback_url = ? LIMIT ?)",
                    (error, callback_url, batch),
                )
            parked += cur.rowcount
            if cur.rowcount < batch:
                return parked

    def parked_pushes(self, *, callback_url: str | None = None, job_id: str | None = None,
                      after: str | None = None, limit: int = 100) -> list[OutboxPush]:
        check_limit(limit)
        sql = f"SELECT {cols(_PUSH_COLS)} FROM outbox WHERE {_PARKED}"
        params: list = []
        if callback_url is not None:
            sql += " AND callback_url = ?"
            params.append(callback_url)
        if job_id is not None:
            sql += " AND job_id = ?"
            params.append(job_id)
        if after is not None:
            start = self._one("SELECT rowid FROM outbox WHERE delivery_id = ?", (after,))
            if start is None:
                raise NotFound(f"no push {after!r}")
            sql += " AND rowid > ?"
            params.append(start[0])
        sql += " ORDER BY rowid LIMIT ?"
        params.append(limit)
        return [_push(r) for r in self._conn.execute(sql, params)]

    def redeliver_pushes(self, *, delivery_ids: Iterable[str] | None = None, callback_url: str | None = None,
                         job_id: str | None = None, now: datetime | None = None,
                         batch: int = 1000) -> dict[str, int]:
        check_limit(batch)
        ids = None if delivery_ids is None else list(dict.fromkeys(delivery_ids))
        if ids is None and callback_url is None and job_id is None:
            raise TypeError("redeliver_pushes needs delivery_ids, callback_url or job_id")
        where, params = [_PARKED], []
        if callback_url is not None:
            where.append("callback_url = ?")
            params.append(callback_url)
        if job_id is not None:
            where.append("job_id = ?")
            params.append(job_id)
        due = ts(now or utcnow())
        counts: dict[str, int] = {}

        def redeliver(extra_where, extra_params):
            with self.transaction():
                rows = self._conn.execute(
                    f"SELECT rowid, callback_url FROM outbox WHERE {' AND '.join(where + extra_where)} LIMIT ?",
                    [*params, *extra_params, batch],
                ).fetchall()
                # A new retry series: due now, its attempts counted from 0 again
                # (backoff and max_attempts start over); delivery id, payload and
                # sequence stay the push's own, so the consumer still de-duplicates.
                self._conn.execute(
                    f"UPDATE outbox SET next_attempt_at = ?, attempts = 0 WHERE rowid IN ({marks(len(rows))})",
                    [due, *(r[0] for r in rows)],
                )
            for _, url in rows:
                counts[url] = counts.get(url, 0) + 1
            return len(rows)

        if ids is not None:
            for start in range(0, len(ids), batch):
                chunk = ids[start:start + batch]
                redeliver([f"delivery_id IN ({marks(len(chunk))})"], chunk)
        else:
            while redeliver([], []) == batch:
                pass
        return counts

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
                # Only a scheduled push: a failure reported for one parked while
                # it was in flight leaves it parked.
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                "WHERE delivery_id = ? AND delivered_at IS NULL AND next_attempt_at IS NOT NULL",
                (error, ts(next_attempt_at), delivery_id),
            )
            if cur.rowcount == 0 and self.get_push(delivery_id) is None:
                raise NotFound(f"no push {delivery_id!r}")
