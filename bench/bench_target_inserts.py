"""Where bulk submission's floor went between schemas: bare sqlite3 inserting N
job_targets rows (one executemany, one transaction, the store's pragmas) into a
fresh file with the schema of the ``dmwsi`` on the path, optionally with some
of its indexes or tables dropped first, to see which one costs what.

    PYTHONPATH=/tmp/before python bench/bench_target_inserts.py [N] [--repeat 5] [--drop NAME ...] [--create SQL ...]

``--create`` runs statements after the drops (e.g. the dropped index defined
another way).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout


def once(path: Path, ids: list[str], drop: list[str], create: list[str]) -> float:
    from dmwsi.store import SQLiteStore
    SQLiteStore(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    for name in drop:
        kind = conn.execute("SELECT type FROM sqlite_master WHERE name = ?", (name,)).fetchone()
        if kind is None:
            raise SystemExit(f"no index or table {name!r} in this schema")
        conn.execute(f"DROP {kind[0].upper()} {name}")
    for sql in create:
        conn.execute(sql)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    job_id = uuid.uuid4().hex
    try:
        start = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO jobs (job_id, principal, operation, created_at, updated_at) "
                     "VALUES (?, 'bench', 'SubmitBulkOperation', ?, ?)", (job_id, now, now))
        conn.executemany("INSERT INTO job_targets (job_id, device_id) VALUES (?, ?)", ((job_id, d) for d in ids))
        conn.execute("COMMIT")
        return time.perf_counter() - start
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--drop", nargs="*", default=[])
    parser.add_argument("--create", nargs="*", default=[])
    args = parser.parse_args()
    import dmwsi
    ids = [f"IMEI:{35_000_000_000_000 + i:015d}" for i in range(args.n)]
    with tempfile.TemporaryDirectory() as tmp:
        times = [once(Path(tmp) / f"t{i}.db", ids, args.drop, args.create) for i in range(args.repeat)]
    print(json.dumps({"dmwsi": str(Path(dmwsi.__file__).parent), "drop": args.drop, "create": args.create, "n": args.n,
                      "median": round(statistics.median(times), 4), "runs": [round(t, 4) for t in times]}))


if __name__ == "__main__":
    main()
