"""Compare SQLiteStore.create_job with a bare sqlite3 executemany.

Both insert the same N job_targets rows into the same schema in one
transaction, so the ratio shows the store's own overhead (row building,
JSON, the job row and its completion check), not SQLite's.  Then the same N
targets with their own commands each (rows in device_commands), and the
statements a results page of that job costs, for small and large pages
(a fixed number whatever the page size).

    python bench/bench_store_bulk.py [N]
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from dmwsi.store import SQLiteStore  # noqa: E402
from dmwsi.records import Command, Job, JobTarget  # noqa: E402


def bench_store(path: Path, device_ids: list[str]) -> float:
    store = SQLiteStore(path)
    try:
        start = time.perf_counter()
        job = store.create_job(
            Job(principal="bench", operation="SubmitBulkOperation"),
            [Command("Replace", "./Vendor/Setting", "1")],
            device_ids,
        )
        elapsed = time.perf_counter() - start
        assert store.job_counts(job.job_id)["pending"] == len(device_ids)
        return elapsed
    finally:
        store.close()


def bench_bare(path: Path, device_ids: list[str]) -> float:
    # Same schema (created by the store), same pragmas, raw executemany.
    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    job_id = uuid.uuid4().hex  # same key width as the store's job ids
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO jobs (job_id, principal, operation, created_at, updated_at) VALUES (?, 'bench', 'x', ?, ?)",
        (job_id, now, now),
    )
    conn.executemany(
        "INSERT INTO job_targets (job_id, device_id) VALUES (?, ?)", ((job_id, d) for d in device_ids)
    )
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def bench_per_device(path: Path, device_ids: list[str]) -> tuple[float, dict[int, int]]:
    """create_job with a Replace of its own for every device; then the
    statements of result pages of several sizes."""
    store = SQLiteStore(path)
    try:
        targets = [JobTarget(d, commands=[Command("Replace", "./Vendor/Setting", str(i), seq=1)])
                   for i, d in enumerate(device_ids)]
        start = time.perf_counter()
        job = store.create_job(Job(principal="bench", operation="SubmitBulkOperation"), [], targets)
        elapsed = time.perf_counter() - start
        statements: dict[int, int] = {}
        for size in (10, 100, 500):
            seen: list[str] = []
            store._conn.set_trace_callback(seen.append)
            rows, _ = store.job_results(job.job_id, limit=size, include_unfinished=True)
            store._conn.set_trace_callback(None)
            assert len(rows) == size and rows[-1].commands[0].value is not None
            statements[size] = len(seen)
        return elapsed, statements
    finally:
        store.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    device_ids = [f"IMEI:{35_000_000_000_000 + i:015d}" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bare = min(bench_bare(tmp / f"bare{i}.db", device_ids) for i in range(3))
        store = min(bench_store(tmp / f"store{i}.db", device_ids) for i in range(3))
        runs = [bench_per_device(tmp / f"own{i}.db", device_ids) for i in range(3)]
    own = min(t for t, _ in runs)
    print(f"targets:            {n}")
    print(f"bare executemany:   {bare:.3f} s")
    print(f"SQLiteStore:        {store:.3f} s")
    print(f"ratio store/bare:   {store / bare:.2f}")
    print(f"per-device commands: {own:.3f} s (create_job, one own command per target)")
    for size, n in runs[0][1].items():
        print(f"results page of {size:>3}: {n} statements")


if __name__ == "__main__":
    main()
