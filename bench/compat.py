"""The few places where the benches meet a store API that changed in issue 9,
so the same bench script runs on a checkout from before it (6986da3) and
after it, and the before/after figures come from the same code.

* A target's own commands: ``JobTarget.commands`` after; before, JSON in
  ``JobTarget.params["commands"]`` (as ``jobs/submit.py`` wrote them then).
* Background announcing of closed targets (``jobs_with_unannounced_targets``)
  exists only after; before, there is nothing to wait for.
* Where a target's own commands live in the file: ``device_commands`` rows
  after (migration 8), the target's ``params`` column before.
"""

from __future__ import annotations

import dataclasses
import inspect
import sqlite3
import subprocess
import time
from pathlib import Path

from dmwsi.records import Command, JobTarget

HAS_OWN_COMMANDS = "commands" in {f.name for f in dataclasses.fields(JobTarget)}


def target_with_commands(device_id: str, commands: list[Command], **fields) -> JobTarget:
    if HAS_OWN_COMMANDS:
        return JobTarget(device_id, commands=commands, **fields)
    own = [{k: v for k, v in vars(c).items() if v is not None and k != "job_id"} for c in commands]
    return JobTarget(device_id, params={"commands": own}, **fields)


def wait_announced(store, timeout: float = 600.0) -> float:
    """Wait until the server announced every closed target (after issue 9 it
    does so in the background, from start-up); -> seconds waited."""
    pending = getattr(store, "jobs_with_unannounced_targets", None)
    start = time.perf_counter()
    if pending is None:
        return 0.0
    while pending():
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"closed targets still unannounced after {timeout} s")
        time.sleep(0.2)
    return time.perf_counter() - start


def has_device_commands(conn: sqlite3.Connection) -> bool:
    return conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'device_commands'").fetchone() is not None


def code_version(root: Path) -> str:
    """The commit of the checkout being measured (and '+dirty' if changed)."""
    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + ("+dirty" if git("status", "--porcelain", "--", "dmwsi") else "")


def shape_page(store, job, rows) -> list[dict]:
    """A results page in the GetJobResults form, as that checkout's handler
    (``wsi/handlers/jobs.get_job_results``) shapes it, without authz:
    up to 9a27cf4 ``device_result(store, job, row, job_commands)`` after one
    ``job_commands`` per page; later ``device_result(job, row)``."""
    from dmwsi.jobs.results import device_result
    if next(iter(inspect.signature(device_result).parameters)) == "store":
        commands = store.job_commands(job.job_id)
        return [device_result(store, job, r, commands) for r in rows]
    return [device_result(job, r) for r in rows]
