"""Building store records from sqlite3 rows: by column name (as
``dmwsi/store/sqlite/jobs._command`` does) against positionally (the columns
selected in the record's field order), for N per-device command rows in an
in-memory table. Median of 7 each.

    PYTHONPATH=/tmp/after python bench/bench_row_records.py [N]
"""

from __future__ import annotations

import sqlite3
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from dmwsi.records import Command  # noqa: E402
from dmwsi.store.sqlite.jobs import _command  # noqa: E402

BY_NAME = "SELECT device_id, seq, action, uri, value, format, type, source_uri, correlator FROM d"
POSITIONAL = "SELECT device_id, action, uri, value, format, type, source_uri, correlator, seq FROM d"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row      # as the store's connections
    conn.execute("CREATE TABLE d (device_id, seq, action, uri, value, format, type, source_uri, correlator)")
    conn.executemany("INSERT INTO d VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [(f"d{i // 2}", 1 + i % 2, "Replace", "./Vendor/Setting", str(i), "chr", None, None, None)
                      for i in range(n)])

    def by_name():
        return [_command("j", r) for r in conn.execute(BY_NAME)]

    def positional():
        return [Command(*r[1:], job_id="j") for r in conn.execute(POSITIONAL)]

    assert by_name() == positional()
    for build in (by_name, positional):
        times = []
        for _ in range(7):
            start = time.perf_counter()
            build()
            times.append(time.perf_counter() - start)
        print(f"{build.__name__:10} {n} Commands: {statistics.median(times):.4f} s")


if __name__ == "__main__":
    main()
