"""The transaction log: append and query, nothing else (append-only; the
database's triggers refuse updates and deletes too)."""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from datetime import datetime
from typing import Any

from dmwsi.records import LogEntry
from dmwsi.store.sqlite.codec import cols, decode_cursor, dt, filters, page, ts, utcnow, where_sql
from dmwsi.store.sqlite.connection import Connection

_LOG_COLS = [f.name for f in fields(LogEntry)]


def _log(row: sqlite3.Row) -> LogEntry:
    d = dict(row)
    d["time"] = dt(d["time"])
    d["success"] = bool(d["success"])
    d["customer_care"] = bool(d["customer_care"])
    return LogEntry(**d)


class LogTable(Connection):
    def append_log(self, entry: LogEntry) -> int:
        values = {c: getattr(entry, c) for c in _LOG_COLS if c != "id"}
        values["time"] = ts(entry.time or utcnow())
        values["success"] = int(bool(entry.success))
        values["customer_care"] = int(bool(entry.customer_care))
        with self.transaction():
            cur = self._conn.execute(
                f"INSERT INTO transaction_log ({cols(values)}) VALUES ({', '.join(':' + c for c in values)})",
                values,
            )
            return cur.lastrowid

    def _query_log(
        self, equal: dict[str, Any], since: datetime | None, until: datetime | None, after: str | None,
        limit: int,
    ) -> tuple[list[LogEntry], str | None]:
        where, params = filters(equal, "time", since, until)
        if after is not None:
            where.append("id > ?")
            params += decode_cursor("log", after, (int,))
        sql = f"SELECT {cols(_LOG_COLS)} FROM transaction_log{where_sql(where)} ORDER BY id LIMIT ?"
        rows, cursor = page(self._conn.execute(sql, (*params, limit + 1)).fetchall(), limit, "log", "id")
        return [_log(r) for r in rows], cursor
