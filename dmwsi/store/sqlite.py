"""SQLite implementation of :class:`dmwsi.store.base.Store`.

Threading: one connection per thread (``threading.local``).  The SOAP side
runs in a WSGI thread pool and the DM server on the reactor thread; with
WAL, readers on their own connections never wait for a writer, whereas a
single connection behind a lock would make every GetJobStatus wait for a
100,000-row job insert.  Writers are serialised by SQLite itself: every
write transaction starts with ``BEGIN IMMEDIATE`` so it takes the write
lock up front and waits (``busy_timeout``) instead of failing with
SQLITE_BUSY when a read transaction tries to upgrade.  Connections live
until :meth:`SQLiteStore.close`, which suits long-lived pool threads.

Atomicity: every public method that writes runs inside
:meth:`SQLiteStore.transaction`; nested use becomes a SAVEPOINT, so a call
that fails inside a caller's transaction undoes only its own writes.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sqlite3
import threading
import uuid
from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

import sqlite_utils

from dmwsi.selector import FIELDS, VERSION_FIELDS, Clause, matches, validate_clauses, version_key
from dmwsi.store import migrations
from dmwsi.store.base import (
    AmbiguousMatch,
    ConflictError,
    DuplicateJob,
    IllegalTransition,
    InvalidCursor,
    NotFound,
    Store,
    StoreError,
    UnknownDevices,
)
from dmwsi.records import (
    DELIVERY_MODES,
    JOB_ACTIVE_STATES,
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_EXPIRED,
    JOB_PENDING,
    JOB_RUNNING,
    TARGET_CANCELLED,
    TARGET_TIMED_OUT,
    TARGET_IN_SESSION,
    TARGET_OPEN_STATES,
    TARGET_PENDING,
    TARGET_STATES,
    TARGET_TERMINAL_STATES,
    STATUS_AWAITING_ALERT,
    Command,
    Device,
    DeviceResult,
    Group,
    Job,
    JobTarget,
    LogEntry,
    OutboxPush,
    ResultItem,
    Subscriber,
    Subscription,
    WakeTarget,
    WorkItem,
    transition_allowed,
)

# --- value conversion ----------------------------------------------------------


# Ids per IN (...) query: well under SQLite's default variable limit.
_ID_BATCH = 900


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _ts(dt: datetime | None) -> str | None:
    """Fixed-width ISO-8601 UTC text, so text order is time order."""
    if dt is None:
        return None
    if not isinstance(dt, datetime):
        raise TypeError(f"expected a datetime, got {type(dt).__name__}")
    if dt.tzinfo is None:
        # A naive time is ambiguous; guessing would silently shift windows.
        raise ValueError("naive datetime: pass a timezone-aware (UTC) datetime")
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)


def _unjson(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _clauses_json(clauses: list[Clause] | None) -> str | None:
    return None if clauses is None else json.dumps([list(c) for c in clauses])


def _clauses(text: str | None) -> list[Clause] | None:
    return None if text is None else [Clause(*c) for c in json.loads(text)]


def _new_id() -> str:
    return uuid.uuid4().hex


def _in(values: Iterable[str]) -> str:
    """SQL list literal of trusted constants (our own state names)."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


_TERMINAL_SQL = _in(TARGET_TERMINAL_STATES)
_OPEN_SQL = _in(TARGET_OPEN_STATES)
_ACTIVE_JOB_SQL = _in(JOB_ACTIVE_STATES)


def _encode_cursor(kind: str, *values: Any) -> str:
    raw = json.dumps([kind, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(kind: str, cursor: str, types: tuple[type, ...]) -> list[Any]:
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


def _check_limit(limit: int) -> int:
    if not isinstance(limit, int) or limit < 1:
        raise ValueError("limit must be a positive integer")
    return limit


# --- row <-> record ---------------------------------------------------------------

_DEVICE_COLS = [f.name for f in fields(Device)]
_DEVICE_TS = ("registered_at", "last_seen")
_JOB_COLS = [f.name for f in fields(Job)]
_JOB_TS = ("created_at", "updated_at", "not_before", "not_after", "expires_at")
_TARGET_COLS = [
    "job_id", "device_id", "state", "attempts", "refused_reason", "started_at",
    "finished_at", "status_code", "error_code", "message", "params",
]
_TARGET_FIELDS = set(_TARGET_COLS) - {"job_id", "device_id", "state"}
_COMMAND_COLS = ["job_id", "seq", "action", "uri", "value", "format", "type", "source_uri", "correlator"]
_PUSH_COLS = [f.name for f in fields(OutboxPush)]
_LOG_COLS = [f.name for f in fields(LogEntry)]
_SUBSCRIBER_COLS = ["subscriber_id", "msisdn", "name", "plan", "attributes", "created_at", "updated_at"]
_SUBSCRIPTION_COLS = [
    "subscription_id", "principal", "event_id", "include_data", "callback_url",
    "device_ids", "group_name", "selector", "created_at",
]


def _cols(names: Iterable[str], prefix: str = "") -> str:
    return ", ".join(prefix + n for n in names)


def _device(row: sqlite3.Row) -> Device:
    d = dict(row)
    for k in _DEVICE_TS:
        d[k] = _dt(d[k])
    return Device(**d)


def _job(row: sqlite3.Row) -> Job:
    d = dict(row)
    for k in _JOB_TS:
        d[k] = _dt(d[k])
    d["atomic"] = bool(d["atomic"])
    d["customer_care"] = bool(d["customer_care"])
    d["params"] = _unjson(d["params"])
    return Job(**d)


def _target(row: sqlite3.Row) -> JobTarget:
    d = dict(row)
    d["started_at"] = _dt(d["started_at"])
    d["finished_at"] = _dt(d["finished_at"])
    d["params"] = _unjson(d["params"])
    return JobTarget(**d)


def _command(row: sqlite3.Row) -> Command:
    return Command(**dict(row))


def _push(row: sqlite3.Row) -> OutboxPush:
    d = dict(row)
    for k in ("created_at", "next_attempt_at", "delivered_at"):
        d[k] = _dt(d[k])
    d["payload"] = _unjson(d["payload"])
    return OutboxPush(**d)


def _log(row: sqlite3.Row) -> LogEntry:
    d = dict(row)
    d["time"] = _dt(d["time"])
    d["success"] = bool(d["success"])
    d["customer_care"] = bool(d["customer_care"])
    return LogEntry(**d)


def _subscription(row: sqlite3.Row) -> Subscription:
    d = dict(row)
    return Subscription(
        subscription_id=d["subscription_id"],
        principal=d["principal"],
        event_id=d["event_id"],
        include_data=bool(d["include_data"]),
        callback_url=d["callback_url"],
        device_ids=_unjson(d["device_ids"]),
        group=d["group_name"],
        selector=_clauses(d["selector"]),
        created_at=_dt(d["created_at"]),
    )


def _target_value(name: str, value: Any) -> Any:
    if name in ("started_at", "finished_at"):
        return _ts(value)
    if name == "params":
        return _json(value)
    return value


# --- the store --------------------------------------------------------------------


class SQLiteStore(Store):
    """Job store in one SQLite file (WAL, foreign keys on)."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        busy_timeout: float = 10.0,
        synchronous: str = "NORMAL",
    ):
        """``busy_timeout``: seconds a statement waits for another
        connection's write lock before failing (SQLITE_BUSY)."""
        path = os.fspath(path)
        if path == ":memory:" or path.startswith("file:"):
            # Each thread opens its own connection: a private in-memory
            # database per thread would silently split the data.
            raise ValueError("SQLiteStore needs a file path")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"bad synchronous mode {synchronous!r}")
        self.path = path
        if not busy_timeout >= 0:
            raise ValueError(f"busy_timeout must be a non-negative number of seconds, not {busy_timeout!r}")
        self._busy_timeout_ms = int(busy_timeout * 1000)
        # NORMAL in WAL mode: committed data survives an application crash;
        # an OS crash/power loss may lose the last transactions.
        self._synchronous = synchronous.upper()
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        db = self._db()
        # WAL is a property of the file; setting it once persists it.
        db.enable_wal()
        if db.journal_mode != "wal":
            raise StoreError(f"could not enable WAL on {path} (journal_mode={db.journal_mode})")
        migrations.migrate(db)

    # --- connections and transactions -------------------------------------------

    def _db(self) -> sqlite_utils.Database:
        if self._closed:
            raise StoreError("store is closed")
        db = getattr(self._local, "db", None)
        if db is not None:
            return db
        conn = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout_ms / 1000,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # only so close() may close it
        )
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        db = sqlite_utils.Database(conn, execute_plugins=False)
        db.register_function(version_key, deterministic=True, name="version_key")
        with self._conns_lock:
            if self._closed:
                conn.close()
                raise StoreError("store is closed")
            self._conns.append(conn)
        self._local.db = db
        self._local.depth = 0
        return db

    @property
    def _conn(self) -> sqlite3.Connection:
        return self._db().conn

    def close(self) -> None:
        with self._conns_lock:
            self._closed = True
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    def schema_version(self) -> int:
        return migrations.current_version(self._db())

    @contextmanager
    def transaction(self) -> Iterator[None]:
        conn = self._conn
        depth = self._local.depth
        if depth == 0:
            conn.execute("BEGIN IMMEDIATE")
        else:
            conn.execute(f"SAVEPOINT sp{depth}")
        self._local.depth = depth + 1
        try:
            yield
        except BaseException as exc:
            if conn.in_transaction:
                if depth == 0:
                    conn.execute("ROLLBACK")
                else:
                    conn.execute(f"ROLLBACK TO sp{depth}")
                    conn.execute(f"RELEASE sp{depth}")
            if isinstance(exc, sqlite3.IntegrityError):
                raise ConflictError(str(exc)) from exc
            raise
        else:
            if depth == 0:
                try:
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            else:
                conn.execute(f"RELEASE sp{depth}")
        finally:
            self._local.depth = depth

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for reads made of several statements."""
        conn = self._conn
        if self._local.depth or conn.in_transaction:
            yield conn
            return
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        return self._conn.execute(sql, params).fetchone()

    def _require_job(self, conn: sqlite3.Connection, job_id: str) -> sqlite3.Row:
        row = conn.execute("SELECT job_id, state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        return row

    # --- devices --------------------------------------------------------------------

    def upsert_device(self, device: Device, *, now: datetime | None = None) -> Device:
        now = now or _utcnow()
        values = {name: getattr(device, name) for name in _DEVICE_COLS}
        values["registered_at"] = _ts(device.registered_at or now)
        values["last_seen"] = _ts(device.last_seen)
        updates = ", ".join(
            f"{c} = excluded.{c}" for c in _DEVICE_COLS if c not in ("device_id", "registered_at")
        )
        with self.transaction():
            self._check_subscriber(device.subscriber_id)
            self._conn.execute(
                f"INSERT INTO devices ({_cols(_DEVICE_COLS)}) "
                f"VALUES ({', '.join(':' + c for c in _DEVICE_COLS)}) "
                f"ON CONFLICT(device_id) DO UPDATE SET {updates}",
                values,
            )
            return self.get_device(device.device_id)

    def _check_subscriber(self, subscriber_id: str | None) -> None:
        if subscriber_id is not None and self._one(
            "SELECT 1 FROM subscribers WHERE subscriber_id = ?", (subscriber_id,)
        ) is None:
            raise ConflictError(f"subscriber {subscriber_id!r} is not registered")

    def update_device(self, device_id: str, *, now: datetime | None = None, **fields_: Any) -> Device:
        bad = set(fields_) - (set(_DEVICE_COLS) - {"device_id"})
        if bad:
            raise TypeError(f"unknown device field(s): {', '.join(sorted(bad))}")
        if not fields_:
            raise TypeError("update_device needs at least one field")
        values = {k: (_ts(v) if k in _DEVICE_TS else v) for k, v in fields_.items()}
        with self.transaction():
            if "subscriber_id" in fields_:
                self._check_subscriber(fields_["subscriber_id"])
            cur = self._conn.execute(
                f"UPDATE devices SET {', '.join(f'{k} = ?' for k in values)} WHERE device_id = ?",
                (*values.values(), device_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no device {device_id!r}")
            return self.get_device(device_id)

    def get_device(self, device_id: str) -> Device | None:
        row = self._one(f"SELECT {_cols(_DEVICE_COLS)} FROM devices WHERE device_id = ?", (device_id,))
        return None if row is None else _device(row)

    def find_device(
        self,
        *,
        msisdn: str | None = None,
        imei: str | None = None,
        imsi: str | None = None,
        subscriber_id: str | None = None,
        alias: str | None = None,
    ) -> Device | None:
        keys = {
            k: v
            for k, v in dict(
                msisdn=msisdn, imei=imei, imsi=imsi, subscriber_id=subscriber_id, alias=alias
            ).items()
            if v is not None
        }
        if len(keys) != 1:
            raise TypeError("find_device takes exactly one of msisdn, imei, imsi, subscriber_id, alias")
        (col, value), = keys.items()
        rows = self._conn.execute(
            f"SELECT {_cols(_DEVICE_COLS)} FROM devices WHERE {col} = ? ORDER BY device_id LIMIT 2",
            (value,),
        ).fetchall()
        if len(rows) > 1:
            raise AmbiguousMatch(f"several devices have {col} {value!r}")
        return _device(rows[0]) if rows else None

    @staticmethod
    def _where_selector(clauses: Iterable[Clause]) -> tuple[str, list[str]]:
        parts, params = [], []
        for field, op, value in validate_clauses(clauses):
            col = FIELDS[field]  # from a fixed mapping: safe to interpolate
            sql_op = "LIKE" if op == "like" else op
            if op != "like" and field in VERSION_FIELDS:
                parts.append(f"version_key({col}) {sql_op} ?")
                params.append(version_key(value))
            else:
                parts.append(f"{col} {sql_op} ?")
                params.append(value)
        return " AND ".join(parts), params

    def select_devices(self, clauses: Iterable[Clause]) -> list[str]:
        where, params = self._where_selector(clauses)
        return [
            r[0]
            for r in self._conn.execute(
                f"SELECT device_id FROM devices WHERE {where} ORDER BY device_id", params
            )
        ]

    def remember_aliases(self, principal: str, pairs: Iterable[tuple[str, str]]) -> None:
        rows = [(principal, alias, device_id) for alias, device_id in pairs]
        if rows:
            with self.transaction():
                self._conn.executemany(
                    "INSERT OR IGNORE INTO principal_aliases (principal, alias, device_id) VALUES (?, ?, ?)", rows)

    def device_for_alias(self, principal: str, alias: str) -> str | None:
        row = self._conn.execute(
            "SELECT device_id FROM principal_aliases WHERE principal = ? AND alias = ?", (principal, alias)).fetchone()
        return row[0] if row else None

    def known_device_ids(self, device_ids: Iterable[str]) -> set[str]:
        ids = list(device_ids)
        known: set[str] = set()
        for start in range(0, len(ids), _ID_BATCH):
            batch = ids[start:start + _ID_BATCH]
            marks = ",".join("?" * len(batch))
            known.update(r[0] for r in self._conn.execute(
                f"SELECT device_id FROM devices WHERE device_id IN ({marks})", batch))
        return known

    # --- subscribers ------------------------------------------------------------

    def upsert_subscriber(self, subscriber: Subscriber, *, now: datetime | None = None) -> Subscriber:
        now_s = _ts(now or _utcnow())
        with self.transaction():
            self._conn.execute(
                "INSERT INTO subscribers (subscriber_id, msisdn, name, plan, attributes, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(subscriber_id) DO UPDATE SET "
                "msisdn = excluded.msisdn, name = excluded.name, plan = excluded.plan, "
                "attributes = excluded.attributes, updated_at = excluded.updated_at",
                (
                    subscriber.subscriber_id,
                    subscriber.msisdn,
                    subscriber.name,
                    subscriber.plan,
                    _json(subscriber.attributes or {}),
                    _ts(subscriber.created_at) or now_s,
                    now_s,
                ),
            )
            return self.get_subscriber(subscriber.subscriber_id)

    def get_subscriber(self, subscriber_id: str) -> Subscriber | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_cols(_SUBSCRIBER_COLS)} FROM subscribers WHERE subscriber_id = ?",
                (subscriber_id,),
            ).fetchone()
            if row is None:
                return None
            devices = conn.execute(
                f"SELECT {_cols(_DEVICE_COLS)} FROM devices WHERE subscriber_id = ? ORDER BY device_id",
                (subscriber_id,),
            ).fetchall()
        d = dict(row)
        return Subscriber(
            subscriber_id=d["subscriber_id"],
            msisdn=d["msisdn"],
            name=d["name"],
            plan=d["plan"],
            attributes=_unjson(d["attributes"]),
            created_at=_dt(d["created_at"]),
            updated_at=_dt(d["updated_at"]),
            devices=[_device(r) for r in devices],
        )

    # --- groups -----------------------------------------------------------------------

    def define_group(
        self,
        name: str,
        owner: str,
        members: Iterable[str] | None = None,
        selector: Iterable[Clause] | None = None,
        *,
        now: datetime | None = None,
    ) -> int:
        if members is not None and selector is not None:
            raise ValueError("a group has either members or a selector, not both")
        clauses = validate_clauses(selector) if selector is not None else None
        now_s = _ts(now or _utcnow())
        conn = self._conn
        with self.transaction():
            conn.execute(
                "INSERT INTO groups (name, owner, selector, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, "
                "selector = excluded.selector, updated_at = excluded.updated_at",
                (name, owner, _clauses_json(clauses), now_s, now_s),
            )
            conn.execute("DELETE FROM group_members WHERE group_name = ?", (name,))
            if clauses is not None:
                return len(self.select_devices(clauses))
            members = list(members or ())
            try:
                # OR IGNORE drops duplicate members; it does not affect
                # foreign keys, so unknown devices still fail.
                conn.executemany(
                    "INSERT OR IGNORE INTO group_members (group_name, device_id) VALUES (?, ?)",
                    ((name, m) for m in members),
                )
            except sqlite3.IntegrityError:
                raise UnknownDevices(self._missing_devices(members)) from None
            return conn.execute(
                "SELECT count(*) FROM group_members WHERE group_name = ?", (name,)
            ).fetchone()[0]

    def _missing_devices(self, device_ids: list[str]) -> list[str]:
        missing: list[str] = []
        unique = list(dict.fromkeys(device_ids))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            found = {
                r[0]
                for r in self._conn.execute(
                    f"SELECT device_id FROM devices WHERE device_id IN ({', '.join('?' * len(chunk))})",
                    chunk,
                )
            }
            missing.extend(d for d in chunk if d not in found)
        return missing

    def get_group(self, name: str) -> Group | None:
        row = self._one("SELECT name, owner, selector, created_at, updated_at FROM groups WHERE name = ?", (name,))
        if row is None:
            return None
        return Group(
            name=row["name"],
            owner=row["owner"],
            selector=_clauses(row["selector"]),
            created_at=_dt(row["created_at"]),
            updated_at=_dt(row["updated_at"]),
        )

    def group_members(self, name: str) -> list[str]:
        with self._read() as conn:
            group = self.get_group(name)
            if group is None:
                raise NotFound(f"no group {name!r}")
            if group.selector is not None:
                return self.select_devices(group.selector)
            return [
                r[0]
                for r in conn.execute(
                    "SELECT device_id FROM group_members WHERE group_name = ? ORDER BY device_id", (name,)
                )
            ]

    def delete_group(self, name: str) -> bool:
        with self.transaction():
            try:
                return self._conn.execute("DELETE FROM groups WHERE name = ?", (name,)).rowcount > 0
            except sqlite3.IntegrityError:
                raise ConflictError(f"group {name!r} is used by event subscriptions") from None

    # --- jobs -----------------------------------------------------------------------

    def create_job(
        self,
        job: Job,
        commands: Iterable[Command] = (),
        targets: Iterable[str | JobTarget] = (),
        *,
        now: datetime | None = None,
    ) -> Job:
        if job.delivery_mode not in DELIVERY_MODES:
            raise ValueError(f"unknown delivery mode {job.delivery_mode!r}")
        if job.concurrency is not None and job.concurrency < 1:
            raise ValueError("concurrency must be positive")
        now = now or _utcnow()
        now_s = _ts(now)
        job = replace(
            job,
            job_id=job.job_id or _new_id(),
            state=JOB_PENDING,
            created_at=job.created_at or now,
            updated_at=now,
        )
        values = {c: getattr(job, c) for c in _JOB_COLS}
        for k in _JOB_TS:
            values[k] = _ts(values[k])
        values["params"] = _json(job.params or {})
        values["atomic"] = int(bool(job.atomic))
        values["customer_care"] = int(bool(job.customer_care))
        conn = self._conn
        with self.transaction():
            try:
                conn.execute(
                    f"INSERT INTO jobs ({_cols(_JOB_COLS)}) VALUES ({', '.join(':' + c for c in _JOB_COLS)})",
                    values,
                )
            except sqlite3.IntegrityError:
                if job.client_job_id is not None:
                    existing = self.find_job_by_client_id(job.principal, job.client_job_id)
                    if existing is not None:
                        raise DuplicateJob(job.principal, job.client_job_id, existing.job_id) from None
                raise
            conn.executemany(
                f"INSERT INTO job_commands ({_cols(_COMMAND_COLS)}) VALUES ({', '.join('?' * len(_COMMAND_COLS))})",
                (
                    (job.job_id, c.seq if c.seq is not None else n, c.action, c.uri, c.value,
                     c.format, c.type, c.source_uri, c.correlator)
                    for n, c in enumerate(commands, 1)
                ),
            )
            targets = list(targets)
            current: list[str | None] = [None]  # the row being inserted, for errors

            def plain() -> Iterator[tuple]:
                job_id = job.job_id
                for t in targets:
                    if isinstance(t, str):
                        current[0] = t
                        yield (job_id, t)

            def detailed() -> Iterator[tuple]:
                job_id = job.job_id
                for t in targets:
                    if isinstance(t, str):
                        continue
                    current[0] = t.device_id
                    if t.state != TARGET_PENDING and t.state not in TARGET_TERMINAL_STATES:
                        raise ValueError(f"target {t.device_id!r}: a new target cannot be {t.state!r}")
                    finished = t.finished_at or (now if t.state in TARGET_TERMINAL_STATES else None)
                    yield (
                        job_id, t.device_id, t.state, t.attempts, t.refused_reason, _ts(t.started_at),
                        _ts(finished), t.status_code, t.error_code, t.message, _json(t.params),
                    )

            try:
                # One prepared statement per shape, fed by a generator: no
                # per-row round trips.  Bare device ids (the bulk case) bind
                # two parameters and let column defaults fill the rest.
                conn.executemany("INSERT INTO job_targets (job_id, device_id) VALUES (?, ?)", plain())
                conn.executemany(
                    f"INSERT INTO job_targets ({_cols(_TARGET_COLS)}) VALUES ({', '.join('?' * len(_TARGET_COLS))})",
                    detailed(),
                )
            except sqlite3.IntegrityError as exc:
                raise ConflictError(f"target {current[0]!r}: {exc}") from exc
            if conn.execute(
                f"SELECT NOT EXISTS (SELECT 1 FROM job_targets WHERE job_id = ? AND state IN {_OPEN_SQL})",
                (job.job_id,),
            ).fetchone()[0]:
                conn.execute(
                    "UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ?",
                    (JOB_COMPLETED, now_s, job.job_id),
                )
            return self.get_job(job.job_id)

    def get_job(self, job_id: str) -> Job | None:
        row = self._one(f"SELECT {_cols(_JOB_COLS)} FROM jobs WHERE job_id = ?", (job_id,))
        return None if row is None else _job(row)

    def find_job_by_client_id(self, principal: str, client_job_id: str) -> Job | None:
        row = self._one(
            f"SELECT {_cols(_JOB_COLS)} FROM jobs WHERE principal = ? AND client_job_id = ?",
            (principal, client_job_id),
        )
        return None if row is None else _job(row)

    def list_jobs(
        self,
        principal: str | None = None,
        state: str | None = None,
        after: str | None = None,
        limit: int = 50,
        *,
        operation: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> tuple[list[Job], str | None]:
        _check_limit(limit)
        where, params = [], []
        for col, value in (("principal", principal), ("state", state), ("operation", operation)):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        if created_after is not None:
            where.append("created_at >= ?")
            params.append(_ts(created_after))
        if created_before is not None:
            where.append("created_at < ?")
            params.append(_ts(created_before))
        if after is not None:
            created, job_id = _decode_cursor("jobs", after, (str, str))
            # Newest first: rows created after the cursor was issued sort
            # before it and cannot shift later pages.
            where.append("(created_at, job_id) < (?, ?)")
            params += [created, job_id]
        sql = f"SELECT {_cols(_JOB_COLS)} FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, job_id DESC LIMIT ?"
        rows = self._conn.execute(sql, (*params, limit + 1)).fetchall()
        cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            cursor = _encode_cursor("jobs", rows[-1]["created_at"], rows[-1]["job_id"])
        return [_job(r) for r in rows], cursor

    def job_counts(self, job_id: str) -> dict[str, int]:
        with self._read() as conn:
            self._require_job(conn, job_id)
            counts = dict.fromkeys(TARGET_STATES, 0)
            for state, n in conn.execute(
                "SELECT state, count(*) FROM job_targets WHERE job_id = ? GROUP BY state", (job_id,)
            ):
                counts[state] = n
        return counts

    def job_commands(self, job_id: str) -> list[Command]:
        return [
            _command(r)
            for r in self._conn.execute(
                f"SELECT {_cols(_COMMAND_COLS)} FROM job_commands WHERE job_id = ? ORDER BY seq", (job_id,)
            )
        ]

    def get_target(self, job_id: str, device_id: str) -> JobTarget | None:
        row = self._one(
            f"SELECT {_cols(_TARGET_COLS)} FROM job_targets WHERE job_id = ? AND device_id = ?",
            (job_id, device_id),
        )
        return None if row is None else _target(row)

    _DUE_SQL = f"""
        SELECT t.job_id FROM job_targets t JOIN jobs j ON j.job_id = t.job_id
        WHERE t.device_id = :device AND t.state = 'pending'
          AND j.state IN {_ACTIVE_JOB_SQL}
          AND (j.not_before IS NULL OR j.not_before <= :now)
          AND (j.not_after IS NULL OR j.not_after > :now)
          AND (j.expires_at IS NULL OR j.expires_at > :now)
        ORDER BY j.created_at, j.job_id
    """

    def _work_item(self, job_id: str, device_id: str) -> WorkItem:
        return WorkItem(
            job=self.get_job(job_id),
            target=self.get_target(job_id, device_id),
            commands=self.job_commands(job_id),
        )

    def next_targets_for_device(self, device_id: str, now: datetime | None = None) -> list[WorkItem]:
        with self._read() as conn:
            job_ids = [
                r[0] for r in conn.execute(self._DUE_SQL, {"device": device_id, "now": _ts(now or _utcnow())})
            ]
            return [self._work_item(j, device_id) for j in job_ids]

    def claim_targets(
        self, device_id: str, now: datetime | None = None, *, limit: int | None = None
    ) -> list[WorkItem]:
        now_s = _ts(now or _utcnow())
        conn = self._conn
        claimed: list[WorkItem] = []
        with self.transaction():
            for (job_id,) in conn.execute(self._DUE_SQL, {"device": device_id, "now": now_s}).fetchall():
                if limit is not None and len(claimed) >= limit:
                    break
                job = conn.execute(
                    "SELECT concurrency, state FROM jobs WHERE job_id = ?", (job_id,)
                ).fetchone()
                if job["concurrency"] is not None:
                    running = conn.execute(
                        "SELECT count(*) FROM job_targets WHERE job_id = ? AND state = 'inSession'",
                        (job_id,),
                    ).fetchone()[0]
                    if running >= job["concurrency"]:
                        continue
                conn.execute(
                    # A new attempt has no outcome yet (a 202 left by an earlier
                    # one would read as awaiting a Generic Alert).
                    "UPDATE job_targets SET state = 'inSession', attempts = attempts + 1, started_at = ?, "
                    "status_code = NULL WHERE job_id = ? AND device_id = ?",
                    (now_s, job_id, device_id),
                )
                if job["state"] == JOB_PENDING:
                    conn.execute(
                        "UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ?",
                        (JOB_RUNNING, now_s, job_id),
                    )
                claimed.append(self._work_item(job_id, device_id))
        return claimed

    def wakeable_targets(
        self, now: datetime | None = None, *, after: str | None = None, limit: int = 1000
    ) -> list[WakeTarget]:
        _check_limit(limit)
        # Walks the partial pending index in device_id order and stops after
        # `limit` rows, so the cost does not grow with the backlog; the
        # caller continues with after=<last id> to go round all devices.
        return [
            WakeTarget(r[0], r[1], r[2])
            for r in self._conn.execute(
                # CROSS JOIN + INDEXED BY pin the device-ordered plan; the
                # planner would otherwise start from jobs and scan the backlog.
                f"""SELECT t.device_id, t.job_id,
                    CASE WHEN j.concurrency IS NULL THEN NULL ELSE j.concurrency - (
                        SELECT count(*) FROM job_targets s WHERE s.job_id = j.job_id AND s.state = 'inSession')
                    END
                FROM job_targets t INDEXED BY job_targets_pending CROSS JOIN jobs j ON j.job_id = t.job_id
                WHERE t.state = 'pending' AND t.device_id > :after
                  AND j.state IN {_ACTIVE_JOB_SQL}
                  AND (j.not_before IS NULL OR j.not_before <= :now)
                  AND (j.not_after IS NULL OR j.not_after > :now)
                  AND (j.expires_at IS NULL OR j.expires_at > :now)
                ORDER BY t.device_id, t.job_id LIMIT :limit""",
                {"after": after if after is not None else "", "now": _ts(now or _utcnow()), "limit": limit},
            )
        ]

    def in_session_targets(
        self, started_before: datetime | None = None, *, awaiting_alert: bool = False
    ) -> list[JobTarget]:
        sql = (
            f"SELECT {_cols(_TARGET_COLS)} FROM job_targets INDEXED BY job_targets_in_session "
            "WHERE state = 'inSession' AND " + ("status_code IS ?" if awaiting_alert else "status_code IS NOT ?")
        )
        params: list[Any] = [STATUS_AWAITING_ALERT]
        if started_before is not None:
            sql += " AND started_at < ?"
            params.append(_ts(started_before))
        return [_target(r) for r in self._conn.execute(sql + " ORDER BY started_at, job_id, device_id", params)]

    _UNANNOUNCED_SQL = (
        # Spelled as migration 7's partial index, so that index answers it.
        f"announced_at IS NULL AND state IN {migrations.FINAL_STATES_SQL}"
    )

    def unannounced_targets(self, job_id: str, limit: int) -> list[str]:
        _check_limit(limit)
        return [
            r[0]
            for r in self._conn.execute(
                f"SELECT device_id FROM job_targets INDEXED BY job_targets_unannounced "
                f"WHERE job_id = ? AND {self._UNANNOUNCED_SQL} ORDER BY device_id LIMIT ?",
                (job_id, limit),
            )
        ]

    def jobs_with_unannounced_targets(self) -> list[str]:
        return [
            r[0]
            for r in self._conn.execute(
                f"SELECT DISTINCT job_id FROM job_targets INDEXED BY job_targets_unannounced "
                f"WHERE {self._UNANNOUNCED_SQL} ORDER BY job_id"
            )
        ]

    def mark_announced(self, job_id: str, device_ids: Iterable[str], *, now: datetime | None = None) -> None:
        now_s = _ts(now or _utcnow())
        with self.transaction():
            self._conn.executemany(
                f"UPDATE job_targets SET announced_at = ? WHERE job_id = ? AND device_id = ? "
                f"AND {self._UNANNOUNCED_SQL}",
                ((now_s, job_id, d) for d in device_ids),
            )

    def set_target_state(
        self, job_id: str, device_id: str, state: str, *, now: datetime | None = None, **fields_: Any
    ) -> bool:
        if state not in TARGET_STATES:
            raise ValueError(f"unknown target state {state!r}")
        bad = set(fields_) - _TARGET_FIELDS
        if bad:
            raise TypeError(f"unknown target field(s): {', '.join(sorted(bad))}")
        now = now or _utcnow()
        if state in TARGET_TERMINAL_STATES:
            fields_.setdefault("finished_at", now)
        elif state == TARGET_IN_SESSION:
            fields_.setdefault("started_at", now)
        values = {k: _target_value(k, v) for k, v in fields_.items()}
        sets = ", ".join(["state = ?"] + [f"{k} = ?" for k in values])
        conn = self._conn
        now_s = _ts(now)
        with self.transaction():
            row = conn.execute(
                "SELECT state FROM job_targets WHERE job_id = ? AND device_id = ?", (job_id, device_id)
            ).fetchone()
            if row is None:
                raise NotFound(f"no target {device_id!r} in job {job_id!r}")
            if not transition_allowed(row[0], state):
                raise IllegalTransition(job_id, device_id, row[0], state)
            conn.execute(
                f"UPDATE job_targets SET {sets} WHERE job_id = ? AND device_id = ?",
                (state, *values.values(), job_id, device_id),
            )
            job_state = conn.execute("SELECT state FROM jobs WHERE job_id = ?", (job_id,)).fetchone()[0]
            if state == TARGET_IN_SESSION and job_state == JOB_PENDING:
                conn.execute(
                    "UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ?", (JOB_RUNNING, now_s, job_id)
                )
            elif state in TARGET_TERMINAL_STATES and job_state in JOB_ACTIVE_STATES:
                open_left = conn.execute(
                    f"SELECT EXISTS (SELECT 1 FROM job_targets WHERE job_id = ? AND state IN {_OPEN_SQL})",
                    (job_id,),
                ).fetchone()[0]
                if not open_left:
                    conn.execute(
                        "UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ?",
                        (JOB_COMPLETED, now_s, job_id),
                    )
                    return True
        return False

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
                "INSERT INTO results (job_id, device_id, seq, command_seq, uri, value, format, type, status_code) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (job_id, device_id, seq, i.command_seq, i.uri, i.value, i.format, i.type, i.status_code)
                    for seq, i in enumerate(items, start)
                ),
            )
            return max(cur.rowcount, 0)

    def job_results(
        self,
        job_id: str,
        after: str | None = None,
        limit: int = 100,
        *,
        include_unfinished: bool = False,
        unacknowledged_by: str | None = None,
        states: Iterable[str] | None = None,
        device_ids: Iterable[str] | None = None,
    ) -> tuple[list[DeviceResult], str | None]:
        _check_limit(limit)
        where, params = ["t.job_id = ?"], [job_id]
        if device_ids is not None:
            device_ids = list(device_ids)
            where.append(f"t.device_id IN ({', '.join('?' * len(device_ids))})")
            params += device_ids
        if after is not None:
            (last,) = _decode_cursor("results", after, (str,))
            where.append("t.device_id > ?")
            params.append(last)
        if states is not None:
            states = list(states)
            bad = set(states) - set(TARGET_STATES)
            if bad or not states:
                raise ValueError(f"bad target state filter {sorted(bad) or states!r}")
            where.append(f"t.state IN ({', '.join('?' * len(states))})")
            params += states
        elif not include_unfinished:
            where.append(f"t.state IN {_TERMINAL_SQL}")
        if unacknowledged_by is not None:
            where.append(
                "NOT EXISTS (SELECT 1 FROM acknowledgements a WHERE a.job_id = t.job_id "
                "AND a.device_id = t.device_id AND a.principal = ?)"
            )
            params.append(unacknowledged_by)
        with self._read() as conn:
            self._require_job(conn, job_id)
            rows = conn.execute(
                f"SELECT {_cols(c for c in _TARGET_COLS if c != 'params')} FROM job_targets t "
                f"WHERE {' AND '.join(where)} ORDER BY t.device_id LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
            cursor = None
            if len(rows) > limit:
                rows = rows[:limit]
                cursor = _encode_cursor("results", rows[-1]["device_id"])
            out: dict[str, DeviceResult] = {}
            for r in rows:
                d = dict(r)
                d["started_at"] = _dt(d["started_at"])
                d["finished_at"] = _dt(d["finished_at"])
                out[d["device_id"]] = DeviceResult(**d)
            if out:
                # One range scan for the page's items instead of a query per device.
                for i in conn.execute(
                    "SELECT device_id, seq, command_seq, uri, value, format, type, status_code FROM results "
                    "WHERE job_id = ? AND device_id BETWEEN ? AND ? ORDER BY device_id, seq",
                    (job_id, rows[0]["device_id"], rows[-1]["device_id"]),
                ):
                    result = out.get(i["device_id"])
                    if result is not None:
                        item = dict(i)
                        del item["device_id"]
                        result.items.append(ResultItem(**item))
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
        now_s = _ts(now or _utcnow())
        conn = self._conn
        # Only finished results can be acknowledged; OR IGNORE makes a
        # repeated acknowledgement a no-op, so the count is of new ones.
        select = (
            "INSERT OR IGNORE INTO acknowledgements (job_id, device_id, principal, acknowledged_at) "
            f"SELECT job_id, device_id, ?, ? FROM job_targets WHERE job_id = ? AND state IN {_TERMINAL_SQL} "
        )
        with self.transaction():
            self._require_job(conn, job_id)
            if upto_cursor is not None:
                (last,) = _decode_cursor("results", upto_cursor, (str,))
                cur = conn.execute(select + "AND device_id <= ?", (principal, now_s, job_id, last))
            elif device_ids is None:    # every result finished so far
                cur = conn.execute(select, (principal, now_s, job_id))
            else:
                cur = conn.executemany(
                    select + "AND device_id = ?",
                    ((principal, now_s, job_id, d) for d in device_ids),
                )
            return max(cur.rowcount, 0)

    def cancel_job(self, job_id: str, *, now: datetime | None = None) -> tuple[int, list[str]]:
        now_s = _ts(now or _utcnow())
        conn = self._conn
        with self.transaction():
            job = self._require_job(conn, job_id)
            finished = [
                r[0]
                for r in conn.execute(
                    f"SELECT device_id FROM job_targets WHERE job_id = ? AND state IN {_TERMINAL_SQL} "
                    "ORDER BY device_id",
                    (job_id,),
                )
            ]
            # In-session targets too: cancellation is final whatever the
            # device is doing; what its session still reports is recorded as
            # results but cannot reopen the target (TARGET_TRANSITIONS).
            cancelled = conn.execute(
                f"UPDATE job_targets SET state = ?, finished_at = ? WHERE job_id = ? AND state IN {_OPEN_SQL}",
                (TARGET_CANCELLED, now_s, job_id),
            ).rowcount
            if job["state"] in JOB_ACTIVE_STATES:
                conn.execute(
                    "UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ?", (JOB_CANCELLED, now_s, job_id)
                )
        return cancelled, finished

    def expire_jobs(self, now: datetime | None = None) -> list[str]:
        now_s = _ts(now or _utcnow())
        conn = self._conn
        with self.transaction():
            # Jobs with nothing pending are left alone: their in-progress
            # targets still finish and complete the job normally.
            job_ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT job_id FROM jobs j WHERE state IN {_ACTIVE_JOB_SQL} "
                    "AND ((expires_at IS NOT NULL AND expires_at <= ?1) OR (not_after IS NOT NULL AND not_after <= ?1)) "
                    "AND EXISTS (SELECT 1 FROM job_targets t WHERE t.job_id = j.job_id AND t.state = 'pending') "
                    "ORDER BY created_at, job_id",
                    (now_s,),
                )
            ]
            for job_id in job_ids:
                conn.execute(
                    "UPDATE job_targets SET state = ?, finished_at = ? WHERE job_id = ? AND state = 'pending'",
                    (TARGET_TIMED_OUT, now_s, job_id),
                )
                conn.execute(
                    "UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ?", (JOB_EXPIRED, now_s, job_id)
                )
        return job_ids

    # --- outbox -----------------------------------------------------------------------

    def enqueue_push(
        self,
        principal: str,
        callback_url: str,
        operation: str,
        payload: dict[str, Any],
        *,
        job_id: str | None = None,
        delivery_id: str | None = None,
        now: datetime | None = None,
        stream: str | None = None,
        sequence: int | None = None,
    ) -> str:
        if (stream is None) != (sequence is None):
            raise TypeError("enqueue_push takes both stream and sequence, or neither")
        if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1):
            raise ValueError("sequence must be a positive integer")
        now_s = _ts(now or _utcnow())
        delivery_id = delivery_id or _new_id()
        with self.transaction():
            self._conn.execute(
                "INSERT INTO outbox (delivery_id, job_id, principal, callback_url, operation, payload, "
                "attempts, created_at, next_attempt_at, stream, sequence) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
                (delivery_id, job_id, principal, callback_url, operation, _json(payload), now_s, now_s,
                 stream, sequence),
            )
        return delivery_id

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
                (_ts(next_attempt_at), delivery_id),
            )
            if cur.rowcount == 0 and self.get_push(delivery_id) is None:
                raise NotFound(f"no push {delivery_id!r}")
            return cur.rowcount > 0

    def pending_push_count(self, stream: str, *, below_sequence: int | None = None) -> int:
        sql = (
            "SELECT count(*) FROM outbox WHERE stream = ? AND delivered_at IS NULL "
            "AND next_attempt_at IS NOT NULL"
        )
        params: list[Any] = [stream]
        if below_sequence is not None:
            sql += " AND sequence < ?"
            params.append(below_sequence)
        return self._one(sql, params)[0]

    def due_pushes(self, now: datetime | None = None, limit: int = 100) -> list[OutboxPush]:
        _check_limit(limit)
        return [
            _push(r)
            for r in self._conn.execute(
                f"SELECT {_cols(_PUSH_COLS)} FROM outbox WHERE delivered_at IS NULL "
                "AND next_attempt_at IS NOT NULL AND next_attempt_at <= ? "
                "ORDER BY next_attempt_at, rowid LIMIT ?",  # rowid: enqueue order
                (_ts(now or _utcnow()), limit),
            )
        ]

    def get_push(self, delivery_id: str) -> OutboxPush | None:
        row = self._one(f"SELECT {_cols(_PUSH_COLS)} FROM outbox WHERE delivery_id = ?", (delivery_id,))
        return None if row is None else _push(row)

    def mark_delivered(self, delivery_id: str, *, now: datetime | None = None) -> None:
        with self.transaction():
            # Idempotent: a second acknowledgement keeps the first time.
            cur = self._conn.execute(
                "UPDATE outbox SET attempts = attempts + (delivered_at IS NULL), "
                "delivered_at = coalesce(delivered_at, ?), next_attempt_at = NULL WHERE delivery_id = ?",
                (_ts(now or _utcnow()), delivery_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no push {delivery_id!r}")

    def mark_failed(self, delivery_id: str, error: str, next_attempt_at: datetime | None) -> None:
        with self.transaction():
            cur = self._conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                "WHERE delivery_id = ? AND delivered_at IS NULL",
                (error, _ts(next_attempt_at), delivery_id),
            )
            if cur.rowcount == 0 and self.get_push(delivery_id) is None:
                raise NotFound(f"no push {delivery_id!r}")

    # --- subscriptions --------------------------------------------------------------

    def add_subscription(self, subscription: Subscription, *, now: datetime | None = None) -> Subscription:
        s = subscription
        if sum(x is not None for x in (s.device_ids, s.group, s.selector)) > 1:
            raise ValueError("a subscription selects devices by ids, a group or a selector, not several")
        clauses = validate_clauses(s.selector) if s.selector is not None else None
        s = replace(
            s,
            subscription_id=s.subscription_id or _new_id(),
            created_at=s.created_at or now or _utcnow(),
            selector=clauses,
            device_ids=list(s.device_ids) if s.device_ids is not None else None,
        )
        with self.transaction():
            if s.group is not None and self.get_group(s.group) is None:
                raise NotFound(f"no group {s.group!r}")
            self._conn.execute(
                f"INSERT INTO subscriptions ({_cols(_SUBSCRIPTION_COLS)}) VALUES ({', '.join('?' * len(_SUBSCRIPTION_COLS))})",
                (
                    s.subscription_id, s.principal, s.event_id, int(bool(s.include_data)), s.callback_url,
                    _json(s.device_ids), s.group, _clauses_json(clauses), _ts(s.created_at),
                ),
            )
        return s

    def remove_subscription(self, subscription_id: str, principal: str | None = None) -> bool:
        sql, params = "DELETE FROM subscriptions WHERE subscription_id = ?", [subscription_id]
        if principal is not None:
            sql += " AND principal = ?"
            params.append(principal)
        with self.transaction():
            return self._conn.execute(sql, params).rowcount > 0

    def list_subscriptions(
        self, principal: str | None = None, event_id: str | None = None
    ) -> list[Subscription]:
        where, params = [], []
        if principal is not None:
            where.append("principal = ?")
            params.append(principal)
        if event_id is not None:
            where.append("event_id = ?")
            params.append(event_id)
        sql = f"SELECT {_cols(_SUBSCRIPTION_COLS)} FROM subscriptions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, subscription_id"
        return [_subscription(r) for r in self._conn.execute(sql, params)]

    def subscriptions_for_event(self, device_id: str, event_id: str) -> list[Subscription]:
        with self._read() as conn:
            subs = [
                _subscription(r)
                for r in conn.execute(
                    f"SELECT {_cols(_SUBSCRIPTION_COLS)} FROM subscriptions "
                    "WHERE event_id = ? OR event_id = '*' ORDER BY created_at, subscription_id",
                    (event_id,),
                )
            ]
            device = self.get_device(device_id) if any(s.selector or s.group for s in subs) else None
            out = []
            for s in subs:
                if s.device_ids is not None:
                    ok = device_id in s.device_ids
                elif s.selector is not None:
                    ok = device is not None and matches(s.selector, device)
                elif s.group is not None:
                    ok = self._in_group(s.group, device)
                else:
                    ok = True
                if ok:
                    out.append(s)
        return out

    def _in_group(self, name: str, device: Device | None) -> bool:
        if device is None:
            return False
        group = self.get_group(name)
        if group is None:
            return False
        if group.selector is not None:
            return matches(group.selector, device)
        return (
            self._one(
                "SELECT 1 FROM group_members WHERE group_name = ? AND device_id = ?", (name, device.device_id)
            )
            is not None
        )

    # --- transaction log ---------------------------------------------------------------

    def append_log(self, entry: LogEntry) -> int:
        values = {c: getattr(entry, c) for c in _LOG_COLS if c != "id"}
        values["time"] = _ts(entry.time or _utcnow())
        values["success"] = int(bool(entry.success))
        values["customer_care"] = int(bool(entry.customer_care))
        with self.transaction():
            cur = self._conn.execute(
                f"INSERT INTO transaction_log ({_cols(values)}) VALUES ({', '.join(':' + c for c in values)})",
                values,
            )
            return cur.lastrowid

    def query_log(
        self,
        job_id: str | None = None,
        device_id: str | None = None,
        principal: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: str | None = None,
        limit: int = 100,
        *,
        operation: str | None = None,
        success: bool | None = None,
        subscriber_id: str | None = None,
    ) -> tuple[list[LogEntry], str | None]:
        _check_limit(limit)
        where, params = [], []
        for col, value in (
            ("job_id", job_id), ("device_id", device_id), ("principal", principal),
            ("operation", operation), ("subscriber_id", subscriber_id),
        ):
            if value is not None:
                where.append(f"{col} = ?")
                params.append(value)
        if success is not None:
            where.append("success = ?")
            params.append(int(bool(success)))
        if since is not None:
            where.append("time >= ?")
            params.append(_ts(since))
        if until is not None:
            where.append("time < ?")
            params.append(_ts(until))
        if after is not None:
            (last_id,) = _decode_cursor("log", after, (int,))
            where.append("id > ?")
            params.append(last_id)
        sql = f"SELECT {_cols(_LOG_COLS)} FROM transaction_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id LIMIT ?"
        rows = self._conn.execute(sql, (*params, limit + 1)).fetchall()
        cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            cursor = _encode_cursor("log", rows[-1]["id"])
        return [_log(r) for r in rows], cursor


__all__ = ["SQLiteStore"]
