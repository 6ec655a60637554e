"""Jobs, their commands (common and per device) and their life cycle as a whole."""

from __future__ import annotations

import sqlite3
from dataclasses import fields, replace
from datetime import datetime
from typing import Any, Iterable, Iterator

from dmwsi.records import (
    DELIVERY_MODES, JOB_CANCELLED, JOB_COMPLETED, JOB_EXPIRED, JOB_PENDING, JOB_ACTIVE_STATES,
    TARGET_CANCELLED, TARGET_PENDING, TARGET_STATES, TARGET_TERMINAL_STATES, TARGET_TIMED_OUT,
    Command, Job, JobTarget,
)
from dmwsi.store.base import ConflictError, DuplicateJob
from dmwsi.store.sqlite.codec import (
    ACTIVE_JOB_SQL, OPEN_SQL, TERMINAL_SQL, cols, decode_cursor, dt, filters, from_json, marks, new_id,
    page, to_json, ts, utcnow, where_sql,
)
from dmwsi.store.sqlite.connection import Connection

_JOB_COLS = [f.name for f in fields(Job)]
_JOB_TS = ("created_at", "updated_at", "not_before", "not_after", "expires_at")
TARGET_COLS = [
    "job_id", "device_id", "state", "attempts", "refused_reason", "started_at",
    "finished_at", "status_code", "error_code", "message", "params",
]
_COMMAND_FIELDS = ["seq", "action", "uri", "value", "format", "type", "source_uri", "correlator"]
# Read back in the record's own field order, so a row becomes a Command
# positionally (a by-name lookup per column was a third of a results page).
_COMMAND_READ = [f.name for f in fields(Command) if f.name != "job_id"]


def _job(row: sqlite3.Row) -> Job:
    d = dict(row)
    for k in _JOB_TS:
        d[k] = dt(d[k])
    d["atomic"] = bool(d["atomic"])
    d["customer_care"] = bool(d["customer_care"])
    d["params"] = from_json(d["params"])
    return Job(**d)


def target(row: sqlite3.Row) -> JobTarget:
    d = dict(row)
    d["started_at"] = dt(d["started_at"])
    d["finished_at"] = dt(d["finished_at"])
    d["params"] = from_json(d["params"])
    return JobTarget(**d)


def _command_rows(job_id: str, commands: Iterable[Command], *key: str) -> Iterator[tuple]:
    """Rows of job_commands (``key`` = ()) or device_commands (``key`` = (device_id,))."""
    for n, c in enumerate(commands, 1):
        yield (job_id, *key, c.seq if c.seq is not None else n, c.action, c.uri, c.value, c.format,
               c.type, c.source_uri, c.correlator)


def _command(job_id: str, row: tuple) -> Command:
    """``row``: the columns of _COMMAND_READ, in that order."""
    return Command(*row, job_id=job_id)


def common_commands(conn: sqlite3.Connection, job_id: str) -> list[Command]:
    return [
        _command(job_id, r)
        for r in conn.execute(
            f"SELECT {cols(_COMMAND_READ)} FROM job_commands WHERE job_id = ? ORDER BY seq", (job_id,)
        )
    ]


def own_commands(conn: sqlite3.Connection, job_id: str, first: str, last: str) -> dict[str, list[Command]]:
    """The per-device commands of the job's devices ``first``..``last`` (one
    range scan of the primary key, however many devices it spans)."""
    out: dict[str, list[Command]] = {}
    for r in conn.execute(
        f"SELECT device_id, {cols(_COMMAND_READ)} FROM device_commands "
        "WHERE job_id = ? AND device_id BETWEEN ? AND ? ORDER BY device_id, seq",
        (job_id, first, last),
    ):
        out.setdefault(r[0], []).append(_command(job_id, r[1:]))
    return out


class JobTables(Connection):
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
        now = now or utcnow()
        now_s = ts(now)
        job = replace(
            job,
            job_id=job.job_id or new_id(),
            state=JOB_PENDING,
            created_at=job.created_at or now,
            updated_at=now,
        )
        values = {c: getattr(job, c) for c in _JOB_COLS}
        for k in _JOB_TS:
            values[k] = ts(values[k])
        values["params"] = to_json(job.params or {})
        values["atomic"] = int(bool(job.atomic))
        values["customer_care"] = int(bool(job.customer_care))
        conn = self._conn
        with self.transaction():
            try:
                conn.execute(
                    f"INSERT INTO jobs ({cols(_JOB_COLS)}) VALUES ({', '.join(':' + c for c in _JOB_COLS)})",
                    values,
                )
            except sqlite3.IntegrityError:
                if job.client_job_id is not None:
                    existing = self.find_job_by_client_id(job.principal, job.client_job_id)
                    if existing is not None:
                        raise DuplicateJob(job.principal, job.client_job_id, existing.job_id) from None
                raise
            conn.executemany(
                f"INSERT INTO job_commands (job_id, {cols(_COMMAND_FIELDS)}) VALUES ({marks(9)})",
                _command_rows(job.job_id, commands),
            )
            self._insert_targets(conn, job.job_id, list(targets), now)
            if conn.execute(
                f"SELECT NOT EXISTS (SELECT 1 FROM job_targets WHERE job_id = ? AND state IN {OPEN_SQL})",
                (job.job_id,),
            ).fetchone()[0]:
                conn.execute(
                    "UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ?",
                    (JOB_COMPLETED, now_s, job.job_id),
                )
            return self.get_job(job.job_id)

    @staticmethod
    def _insert_targets(conn: sqlite3.Connection, job_id: str, targets: list, now: datetime) -> None:
        current: list[str | None] = [None]  # the row being inserted, for errors

        def plain() -> Iterator[tuple]:
            for t in targets:
                if isinstance(t, str):
                    current[0] = t
                    yield (job_id, t)

        def detailed() -> Iterator[tuple]:
            for t in targets:
                if isinstance(t, str):
                    continue
                current[0] = t.device_id
                if t.state != TARGET_PENDING and t.state not in TARGET_TERMINAL_STATES:
                    raise ValueError(f"target {t.device_id!r}: a new target cannot be {t.state!r}")
                if t.commands is not None and not t.commands:
                    # None is what means "the job's commands"; an empty
                    # list would silently mean the same.
                    raise ValueError(f"target {t.device_id!r}: empty command list (None: the job's commands)")
                finished = t.finished_at or (now if t.state in TARGET_TERMINAL_STATES else None)
                yield (
                    job_id, t.device_id, t.state, t.attempts, t.refused_reason, ts(t.started_at),
                    ts(finished), t.status_code, t.error_code, t.message, to_json(t.params),
                )

        def own() -> Iterator[tuple]:
            for t in targets:
                if not isinstance(t, str) and t.commands:
                    current[0] = t.device_id
                    yield from _command_rows(job_id, t.commands, t.device_id)

        try:
            # One prepared statement per shape, fed by a generator: no
            # per-row round trips.  Bare device ids (the bulk case) bind
            # two parameters and let column defaults fill the rest.
            conn.executemany("INSERT INTO job_targets (job_id, device_id) VALUES (?, ?)", plain())
            conn.executemany(
                f"INSERT INTO job_targets ({cols(TARGET_COLS)}) VALUES ({marks(len(TARGET_COLS))})",
                detailed(),
            )
            conn.executemany(
                f"INSERT INTO device_commands (job_id, device_id, {cols(_COMMAND_FIELDS)}) VALUES ({marks(10)})",
                own(),
            )
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"target {current[0]!r}: {exc}") from exc

    def get_job(self, job_id: str) -> Job | None:
        row = self._one(f"SELECT {cols(_JOB_COLS)} FROM jobs WHERE job_id = ?", (job_id,))
        return None if row is None else _job(row)

    def find_job_by_client_id(self, principal: str, client_job_id: str) -> Job | None:
        row = self._one(
            f"SELECT {cols(_JOB_COLS)} FROM jobs WHERE principal = ? AND client_job_id = ?",
            (principal, client_job_id),
        )
        return None if row is None else _job(row)

    def _list_jobs(
        self, equal: dict[str, Any], created_after: datetime | None, created_before: datetime | None,
        after: str | None, limit: int,
    ) -> tuple[list[Job], str | None]:
        where, params = filters(equal, "created_at", created_after, created_before)
        if after is not None:
            # Newest first: rows created after the cursor was issued sort
            # before it and cannot shift later pages.
            where.append("(created_at, job_id) < (?, ?)")
            params += decode_cursor("jobs", after, (str, str))
        sql = (f"SELECT {cols(_JOB_COLS)} FROM jobs{where_sql(where)} "
               "ORDER BY created_at DESC, job_id DESC LIMIT ?")
        rows, cursor = page(self._conn.execute(sql, (*params, limit + 1)).fetchall(), limit,
                            "jobs", "created_at", "job_id")
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
        return common_commands(self._conn, job_id)

    def get_target(self, job_id: str, device_id: str) -> JobTarget | None:
        row = self._one(
            f"SELECT {cols(TARGET_COLS)} FROM job_targets WHERE job_id = ? AND device_id = ?",
            (job_id, device_id),
        )
        return None if row is None else target(row)

    def cancel_job(self, job_id: str, *, now: datetime | None = None) -> tuple[int, list[str]]:
        now_s = ts(now or utcnow())
        conn = self._conn
        with self.transaction():
            job = self._require_job(conn, job_id)
            finished = [
                r[0]
                for r in conn.execute(
                    f"SELECT device_id FROM job_targets WHERE job_id = ? AND state IN {TERMINAL_SQL} "
                    "ORDER BY device_id",
                    (job_id,),
                )
            ]
            # In-session targets too: cancellation is final whatever the
            # device is doing; what its session still reports is recorded as
            # results but cannot reopen the target (TARGET_TRANSITIONS).
            cancelled = conn.execute(
                f"UPDATE job_targets SET state = ?, finished_at = ? WHERE job_id = ? AND state IN {OPEN_SQL}",
                (TARGET_CANCELLED, now_s, job_id),
            ).rowcount
            if job["state"] in JOB_ACTIVE_STATES:
                conn.execute(
                    "UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ?", (JOB_CANCELLED, now_s, job_id)
                )
        return cancelled, finished

    def expire_jobs(self, now: datetime | None = None) -> list[str]:
        now_s = ts(now or utcnow())
        conn = self._conn
        with self.transaction():
            # Jobs with nothing pending are left alone: their in-progress
            # targets still finish and complete the job normally.
            job_ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT job_id FROM jobs j WHERE state IN {ACTIVE_JOB_SQL} "
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
