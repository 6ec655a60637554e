"""What devices returned: result items, result pages, acknowledgements."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Iterable

from dmwsi.records import DeviceResult, ResultItem
from dmwsi.store.base import NotFound
from dmwsi.store.sqlite.codec import TERMINAL_SQL, cols, decode_cursor, dt, marks, page, ts, utcnow
from dmwsi.store.sqlite.connection import Connection
from dmwsi.store.sqlite.jobs import TARGET_COLS, common_commands, own_commands

_RESULT_COLS = [c for c in TARGET_COLS if c != "params"]
_ITEM_FIELDS = ["seq", "command_seq", "uri", "value", "format", "type", "status_code"]
_ITEM_READ = [f.name for f in fields(ResultItem)]     # the record's order: rows become items positionally


class ResultTables(Connection):
    def add_results(self, job_id: str, device_id: str, items: Iterable[ResultItem]) -> int:
        conn = self._conn
        with self.transaction():
            row = conn.execute(
                "SELECT (SELECT coalesce(max(seq), 0) FROM results WHERE job_id = ?1 AND device_id = ?2) "
                "FROM job_targets WHERE job_id = ?1 AND device_id = ?2",
                (job_id, device_id),
            ).fetchone()
            if row is None:
                raise NotFound(f"no target {device_id!r} in job {job_id!r}")
            start = row[0] + 1
            cur = conn.executemany(
                f"INSERT INTO results (job_id, device_id, {cols(_ITEM_FIELDS)}) VALUES ({marks(9)})",
                (
                    (job_id, device_id, seq, i.command_seq, i.uri, i.value, i.format, i.type, i.status_code)
                    for seq, i in enumerate(items, start)
                ),
            )
            return max(cur.rowcount, 0)

    def _job_results(
        self, job_id: str, after: str | None, limit: int, states: list[str] | None,
        device_ids: list[str] | None, unacknowledged_by: str | None,
    ) -> tuple[list[DeviceResult], str | None]:
        where, params = ["t.job_id = ?"], [job_id]
        if device_ids is not None:
            where.append(f"t.device_id IN ({marks(len(device_ids))})")
            params += device_ids
        if after is not None:
            (last,) = decode_cursor("results", after, (str,))
            where.append("t.device_id > ?")
            params.append(last)
        if states is not None:
            where.append(f"t.state IN ({marks(len(states))})")
            params += states
        if unacknowledged_by is not None:
            where.append(
                "NOT EXISTS (SELECT 1 FROM acknowledgements a WHERE a.job_id = t.job_id "
                "AND a.device_id = t.device_id AND a.principal = ?)"
            )
            params.append(unacknowledged_by)
        # A fixed number of queries per page, whatever its size: the job,
        # the targets, one range scan each for their items and their own
        # commands, and the job's common commands.
        with self._read() as conn:
            self._require_job(conn, job_id)
            rows, cursor = page(conn.execute(
                f"SELECT {cols(_RESULT_COLS, 't.')} FROM job_targets t "
                f"WHERE {' AND '.join(where)} ORDER BY t.device_id LIMIT ?",
                (*params, limit + 1),
            ).fetchall(), limit, "results", "device_id")
            if not rows:
                return [], cursor
            first, last = rows[0]["device_id"], rows[-1]["device_id"]
            common = common_commands(conn, job_id)
            own = own_commands(conn, job_id, first, last)
            out: dict[str, DeviceResult] = {}
            for r in rows:
                d = dict(r)
                d["started_at"] = dt(d["started_at"])
                d["finished_at"] = dt(d["finished_at"])
                mine = own.get(d["device_id"])
                out[d["device_id"]] = DeviceResult(**d, commands=mine if mine is not None else list(common))
            for i in conn.execute(
                f"SELECT device_id, {cols(_ITEM_READ)} FROM results "
                "WHERE job_id = ? AND device_id BETWEEN ? AND ? ORDER BY device_id, seq",
                (job_id, first, last),
            ):
                result = out.get(i[0])
                if result is not None:
                    result.items.append(ResultItem(*i[1:]))
        return list(out.values()), cursor

    def acknowledge(
        self,
        job_id: str,
        principal: str,
        upto_cursor: str | None = None,
        device_ids: Iterable[str] | None = None,
        *,
        now: datetime | None = None,
    ) -> int:
        if upto_cursor is not None and device_ids is not None:
            raise TypeError("acknowledge takes at most one of upto_cursor and device_ids")
        now_s = ts(now or utcnow())
        conn = self._conn
        # Only finished results can be acknowledged; OR IGNORE makes a
        # repeated acknowledgement a no-op, so the count is of new ones.
        select = (
            "INSERT OR IGNORE INTO acknowledgements (job_id, device_id, principal, acknowledged_at) "
            f"SELECT job_id, device_id, ?, ? FROM job_targets WHERE job_id = ? AND state IN {TERMINAL_SQL} "
        )
        with self.transaction():
            self._require_job(conn, job_id)
            if upto_cursor is not None:
                (last,) = decode_cursor("results", upto_cursor, (str,))
                cur = conn.execute(select + "AND device_id <= ?", (principal, now_s, job_id, last))
            elif device_ids is None:    # every result finished so far
                cur = conn.execute(select, (principal, now_s, job_id))
            else:
                cur = conn.executemany(
                    select + "AND device_id = ?",
                    ((principal, now_s, job_id, d) for d in device_ids),
                )
            return max(cur.rowcount, 0)
