"""Job targets: claiming work, waking devices, the one transition function,
and the announced marker of final targets."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from dmwsi.records import (
    JOB_ACTIVE_STATES, JOB_COMPLETED, JOB_PENDING, JOB_RUNNING, STATUS_AWAITING_ALERT, TARGET_IN_SESSION,
    TARGET_STATES, TARGET_TERMINAL_STATES, JobTarget, WakeTarget, WorkItem, transition_allowed,
)
from dmwsi.store import migrations
from dmwsi.store.base import IllegalTransition, NotFound, check_limit
from dmwsi.store.sqlite.codec import ACTIVE_JOB_SQL, OPEN_SQL, cols, to_json, ts, utcnow
from dmwsi.store.sqlite.jobs import TARGET_COLS, JobTables, common_commands, own_commands, target

_TARGET_FIELDS = set(TARGET_COLS) - {"job_id", "device_id", "state"}

# Spelled as migration 7's partial index, so that index answers it.
_UNANNOUNCED_SQL = f"announced_at IS NULL AND state NOT IN {migrations.OPEN_STATES_SQL}"   # migration 9's index


def _target_value(name: str, value: Any) -> Any:
    if name in ("started_at", "finished_at"):
        return ts(value)
    if name == "params":
        return to_json(value)
    return value


class TargetTables(JobTables):
    _DUE_SQL = f"""
        SELECT t.job_id FROM job_targets t JOIN jobs j ON j.job_id = t.job_id
        WHERE t.device_id = :device AND t.state = 'pending'
          AND j.state IN {ACTIVE_JOB_SQL}
          AND (j.not_before IS NULL OR j.not_before <= :now)
          AND (j.not_after IS NULL OR j.not_after > :now)
          AND (j.expires_at IS NULL OR j.expires_at > :now)
        ORDER BY j.created_at, j.job_id
    """

    def claim_targets(
        self, device_id: str, now: datetime | None = None, *, limit: int | None = None
    ) -> list[WorkItem]:
        now_s = ts(now or utcnow())
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
                own = own_commands(conn, job_id, device_id, device_id).get(device_id)
                claimed.append(WorkItem(
                    job=self.get_job(job_id),
                    target=self.get_target(job_id, device_id),
                    commands=own if own is not None else common_commands(conn, job_id),
                ))
        return claimed

    def wakeable_targets(
        self, now: datetime | None = None, *, after: str | None = None, limit: int = 1000
    ) -> list[WakeTarget]:
        check_limit(limit)
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
                  AND j.state IN {ACTIVE_JOB_SQL}
                  AND (j.not_before IS NULL OR j.not_before <= :now)
                  AND (j.not_after IS NULL OR j.not_after > :now)
                  AND (j.expires_at IS NULL OR j.expires_at > :now)
                ORDER BY t.device_id, t.job_id LIMIT :limit""",
                {"after": after if after is not None else "", "now": ts(now or utcnow()), "limit": limit},
            )
        ]

    def in_session_targets(
        self, started_before: datetime | None = None, *, awaiting_alert: bool = False
    ) -> list[JobTarget]:
        sql = (
            f"SELECT {cols(TARGET_COLS)} FROM job_targets INDEXED BY job_targets_in_session "
            "WHERE state = 'inSession' AND " + ("status_code IS ?" if awaiting_alert else "status_code IS NOT ?")
        )
        params: list[Any] = [STATUS_AWAITING_ALERT]
        if started_before is not None:
            sql += " AND started_at < ?"
            params.append(ts(started_before))
        return [target(r) for r in self._conn.execute(sql + " ORDER BY started_at, job_id, device_id", params)]

    def set_target_state(
        self, job_id: str, device_id: str, state: str, *, now: datetime | None = None, **fields_: Any
    ) -> bool:
        if state not in TARGET_STATES:
            raise ValueError(f"unknown target state {state!r}")
        bad = set(fields_) - _TARGET_FIELDS
        if bad:
            raise TypeError(f"unknown target field(s): {', '.join(sorted(bad))}")
        now = now or utcnow()
        if state in TARGET_TERMINAL_STATES:
            fields_.setdefault("finished_at", now)
        elif state == TARGET_IN_SESSION:
            fields_.setdefault("started_at", now)
        values = {k: _target_value(k, v) for k, v in fields_.items()}
        sets = ", ".join(["state = ?"] + [f"{k} = ?" for k in values])
        conn = self._conn
        now_s = ts(now)
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
                    f"SELECT EXISTS (SELECT 1 FROM job_targets WHERE job_id = ? AND state IN {OPEN_SQL})",
                    (job_id,),
                ).fetchone()[0]
                if not open_left:
                    conn.execute(
                        "UPDATE jobs SET state = ?, updated_at = ? WHERE job_id = ?",
                        (JOB_COMPLETED, now_s, job_id),
                    )
                    return True
        return False

    # --- announced marker -------------------------------------------------------------

    def unannounced_targets(self, job_id: str, limit: int) -> list[str]:
        check_limit(limit)
        return [
            r[0]
            for r in self._conn.execute(
                # INDEXED BY: fail rather than fall back to scanning the job.
                f"SELECT device_id FROM job_targets INDEXED BY job_targets_unannounced "
                f"WHERE job_id = ? AND {_UNANNOUNCED_SQL} ORDER BY device_id LIMIT ?",
                (job_id, limit),
            )
        ]

    def jobs_with_unannounced_targets(self) -> list[str]:
        return [
            r[0]
            for r in self._conn.execute(
                f"SELECT DISTINCT job_id FROM job_targets INDEXED BY job_targets_unannounced "
                f"WHERE {_UNANNOUNCED_SQL} ORDER BY job_id"
            )
        ]

    def mark_announced(self, job_id: str, device_ids: Iterable[str], *, now: datetime | None = None) -> None:
        now_s = ts(now or utcnow())
        with self.transaction():
            self._conn.executemany(
                f"UPDATE job_targets SET announced_at = ? WHERE job_id = ? AND device_id = ? "
                f"AND {_UNANNOUNCED_SQL}",
                ((now_s, job_id, d) for d in device_ids),
            )
