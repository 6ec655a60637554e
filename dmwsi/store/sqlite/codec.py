"""Values between records and SQLite columns, and the opaque paging cursors.

Timestamps are fixed-width ISO-8601 UTC text so text order is time order;
dicts are compact, key-sorted JSON; selector clauses are JSON lists.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable

from dmwsi.records import JOB_ACTIVE_STATES, TARGET_OPEN_STATES, TARGET_TERMINAL_STATES
from dmwsi.selector import Clause
from dmwsi.store.base import InvalidCursor

#: Ids per IN (...) query: well under SQLite's default variable limit.
ID_BATCH = 900


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def ts(dt: datetime | None) -> str | None:
    """Fixed-width ISO-8601 UTC text, so text order is time order."""
    if dt is None:
        return None
    if not isinstance(dt, datetime):
        raise TypeError(f"expected a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None:
        # A naive time is ambiguous; guessing would silently shift windows.
        raise ValueError("naive datetime: pass a timezone-aware (UTC) datetime")
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)


def from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def clauses_json(clauses: list[Clause] | None) -> str | None:
    return None if clauses is None else json.dumps([list(c) for c in clauses])


def clauses(text: str | None) -> list[Clause] | None:
    return None if text is None else [Clause(*c) for c in json.loads(text)]


def new_id() -> str:
    return uuid.uuid4().hex


def sql_list(values: Iterable[str]) -> str:
    """SQL list literal of trusted constants (our own state names)."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


TERMINAL_SQL = sql_list(TARGET_TERMINAL_STATES)
OPEN_SQL = sql_list(TARGET_OPEN_STATES)
ACTIVE_JOB_SQL = sql_list(JOB_ACTIVE_STATES)


def cols(names: Iterable[str], prefix: str = "") -> str:
    return ", ".join(prefix + n for n in names)


def marks(n: int) -> str:
    """``n`` comma-separated ``?`` placeholders."""
    return ", ".join("?" * n)


def filters(equal: dict[str, Any], col: str, since: datetime | None, until: datetime | None
            ) -> tuple[list[str], list[Any]]:
    """WHERE terms and their parameters: ``field = ?`` for every ``equal``
    item (record field names, safe to interpolate) and the half-open time
    range [since, until) on ``col``."""
    where = [f"{field} = ?" for field in equal]
    params = list(equal.values())
    for op, bound in ((">=", since), ("<", until)):
        if bound is not None:
            where.append(f"{col} {op} ?")
            params.append(ts(bound))
    return where, params


def where_sql(where: list[str]) -> str:
    return " WHERE " + " AND ".join(where) if where else ""


def encode_cursor(kind: str, *values: Any) -> str:
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str, types: tuple[type, ...]) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidCursor("malformed paging cursor") from None
    if (
        not isinstance(data, list)
        or len(data) != len(types) + 1
        or data[0] != kind
        or not all(isinstance(v, t) for v, t in zip(data[1:], types))
    ):
        raise InvalidCursor(f"cursor does not belong to this listing ({kind})")
    return data[1:]


def page(rows: list, limit: int, kind: str, *key: str) -> tuple[list, str | None]:
    """Cut ``limit + 1`` fetched rows to a page and its next cursor (the
    last row's ``key`` columns), None when nothing follows."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(kind, *(rows[-1][k] for k in key))
