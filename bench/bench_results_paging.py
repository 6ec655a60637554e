"""Paging through GetJobResults of a finished job of N targets, against a
floor of the same rows read by bare sqlite3 with the fewest queries.

The job: N registered devices, each with its own two commands (a Replace
and a Get, as SubmitBulkOperation's per-device commands store them), every
target succeeded with three result items (two statuses, one returned
value). It is written through the store API into the server's data file
before the server starts; the server then announces the closed targets in
the background (from issue 9 on), and the timing starts once it is done.

Every page size runs these, interleaved, ``--repeat`` times; each reads all
N results, page after page, following the cursor:

* floor: bare ``sqlite3`` on the same file, rows as tuples: per page the
  targets, one range scan of their items, and (from migration 8) one of
  their own commands; before migration 8 the commands come with the target
  row (its ``params`` column), so one query fewer. The job's common
  commands are read once.
* store: ``Store.job_results`` pages (the store API's results-page method).
  Before issue 9 its rows did not carry the commands, so this is not the
  same work on both sides; ``shaped`` is.
* shaped: what GetJobResults does with the store, without SOAP and authz:
  ``job_results`` and ``jobs.results.device_result`` per row, as the
  checkout's handler calls them (``compat.shape_page``); each row's command
  statuses must name the device's own commands (checked).
* soap: GetJobResults POSTed raw to the real server over loopback HTTP (one
  kept-alive connection), each answer parsed with lxml for its results and
  ``nextCursor`` (skipped with ``--no-soap``).

Each reader reads everything once untimed first (caches, connections).
Figures are medians over the repeats; each ratio is taken against the
floor of its own repeat.

    python bench/bench_results_paging.py [N] [--repeat 3] [--sizes 100,1000] [--no-soap] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lxml import etree  # noqa: E402

from bench_bulk_submit import NS, SOAP_NS, InProcessServer, device_ids, register  # noqa: E402
from compat import code_version, has_device_commands, shape_page, target_with_commands, wait_announced  # noqa: E402

PRINCIPAL = "anonymous"     # a caller without credentials (allow_anonymous in the default config)


# --- the job ------------------------------------------------------------------------


def build(path: Path, ids: list[str], batch: int = 1000) -> str:
    """The finished job with its results, through the store API -> job id."""
    from dmwsi.records import Command, Job, ResultItem
    from dmwsi.store import SQLiteStore
    store = SQLiteStore(path)
    try:
        register(store, ids)
        started = datetime.now(timezone.utc) - timedelta(minutes=5)
        finished = started + timedelta(seconds=30)
        targets = [
            target_with_commands(
                d,
                [Command("Replace", "./Vendor/Setting", str(i), format="chr", seq=1),
                 Command("Get", "./DevDetail/FwV", seq=2)],
                state="succeeded", attempts=1, started_at=started, finished_at=finished, status_code=200,
            )
            for i, d in enumerate(ids)
        ]
        job = store.create_job(Job(principal=PRINCIPAL, operation="SubmitBulkOperation"), [], targets)
        for start in range(0, len(ids), batch):
            with store.transaction():
                for i, d in enumerate(ids[start:start + batch], start):
                    store.add_results(job.job_id, d, [
                        ResultItem(uri="./Vendor/Setting", status_code=200, command_seq=1),
                        ResultItem(uri="./DevDetail/FwV", status_code=200, command_seq=2),
                        ResultItem(uri="./DevDetail/FwV", value=f"1.{i}", format="chr", type="text/plain",
                                   command_seq=2),
                    ])
        assert store.get_job(job.job_id).state == "completed"
        return job.job_id
    finally:
        store.close()


# --- the four readers ---------------------------------------------------------------


def read_floor(conn: sqlite3.Connection, job_id: str, size: int, own_rows: bool) -> int:
    """All results, page by page, with the fewest queries the schema allows."""
    from dmwsi.records import TARGET_TERMINAL_STATES
    terminal = "(" + ", ".join(f"'{s}'" for s in TARGET_TERMINAL_STATES) + ")"
    params = "" if own_rows else ", params"     # before migration 8: own commands in params
    common = conn.execute("SELECT seq, action, uri, value, format, type, source_uri, correlator "
                          "FROM job_commands WHERE job_id = ? ORDER BY seq", (job_id,)).fetchall()
    assert common == []
    last, seen = "", 0
    while True:
        targets = conn.execute(
            "SELECT job_id, device_id, state, attempts, refused_reason, started_at, finished_at, status_code, "
            f"error_code, message{params} FROM job_targets WHERE job_id = ? AND device_id > ? "
            f"AND state IN {terminal} ORDER BY device_id LIMIT ?", (job_id, last, size + 1)).fetchall()
        more = len(targets) > size
        targets = targets[:size]
        if not targets:
            break
        first, last = targets[0][1], targets[-1][1]
        items = conn.execute(
            "SELECT device_id, seq, command_seq, uri, value, format, type, status_code FROM results "
            "WHERE job_id = ? AND device_id BETWEEN ? AND ? ORDER BY device_id, seq",
            (job_id, first, last)).fetchall()
        assert len(items) == 3 * len(targets)
        if own_rows:
            own = conn.execute(
                "SELECT device_id, seq, action, uri, value, format, type, source_uri, correlator "
                "FROM device_commands WHERE job_id = ? AND device_id BETWEEN ? AND ? ORDER BY device_id, seq",
                (job_id, first, last)).fetchall()
            assert len(own) == 2 * len(targets)
        seen += len(targets)
        if not more:
            break
    return seen


def read_store(store, job_id: str, size: int) -> int:
    cursor, seen = None, 0
    while True:
        rows, cursor = store.job_results(job_id, after=cursor, limit=size)
        seen += len(rows)
        if cursor is None:
            return seen


def read_shaped(store, job_id: str, size: int) -> int:
    job = store.get_job(job_id)
    cursor, seen = None, 0
    while True:
        rows, cursor = store.job_results(job_id, after=cursor, limit=size)
        shaped = shape_page(store, job, rows)
        # The device's own Replace, not the "Get" a status without its command gets.
        assert all(s["commandStatuses"][0]["action"] == "Replace" for s in shaped), shaped[:1]
        seen += len(shaped)
        if cursor is None:
            return seen


def request(job_id: str, size: int, after: str | None) -> bytes:
    cursor = "" if after is None else f"<d:after>{after}</d:after>"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP_NS}" xmlns:d="{NS}"><s:Body><d:GetJobResults>'
        f"<d:jobId>{job_id}</d:jobId><d:pageSize>{size}</d:pageSize>{cursor}"
        "</d:GetJobResults></s:Body></s:Envelope>"
    ).encode()


def read_soap(url: str, job_id: str, size: int) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    try:
        cursor, seen = None, 0
        while True:
            conn.request("POST", parts.path, request(job_id, size, cursor),
                         {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"GetJobResults"'})
            response = conn.getresponse()
            answer = response.read()
            if response.status != 200:
                raise SystemExit(f"GetJobResults answered HTTP {response.status}: {answer[:2000]!r}")
            body = etree.fromstring(answer).find(f"{{{SOAP_NS}}}Body/{{{NS}}}GetJobResultsResponse")
            seen += len(body.findall(f"{{{NS}}}results"))
            cursor = body.findtext(f"{{{NS}}}nextCursor")
            if not cursor:
                return seen
    finally:
        conn.close()


def timed(read, n: int) -> float:
    start = time.perf_counter()
    seen = read()
    elapsed = time.perf_counter() - start
    assert seen == n, (seen, n)
    return elapsed


# --- the run ------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--no-soap", action="store_true")
    parser.add_argument("--json", action="store_true", help="one JSON line of every time (for before_after.py)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    readers = ["floor", "store", "shaped"] + ([] if args.no_soap else ["soap"])
    from dmwsi.config import load_config
    ids = device_ids(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "server"
        config = load_config(overrides={"server": {"data_dir": str(data_dir)}}, environ={})
        data_dir.mkdir(parents=True)
        path = config.data_path(config["store"]["path"])
        start = time.perf_counter()
        job_id = build(path, ids)
        built = time.perf_counter() - start
        server = InProcessServer(data_dir)
        try:
            announced = wait_announced(server.store)
            floor_conn = sqlite3.connect(path)
            own_rows = has_device_commands(floor_conn)
            run = {
                "floor": lambda size: read_floor(floor_conn, job_id, size, own_rows),
                "store": lambda size: read_store(server.store, job_id, size),
                "shaped": lambda size: read_shaped(server.store, job_id, size),
                "soap": lambda size: read_soap(server.url, job_id, size),
            }
            for reader in readers:      # warm the caches and connections once, untimed
                timed(lambda: run[reader](min(sizes)), args.n)
            times = {(r, s): [] for r in readers for s in sizes}
            for _ in range(args.repeat):
                for size in sizes:
                    for reader in readers:
                        times[reader, size].append(timed(lambda: run[reader](size), args.n))
            floor_conn.close()
        finally:
            server.stop()
    version = code_version(ROOT)
    if args.json:
        print(json.dumps({"bench": "results_paging", "version": version, "n": args.n, "load": os.getloadavg()[0],
                          "times": {f"{r}/{s}": t for (r, s), t in times.items()}}))
        return
    print(f"code:                 {version} ({ROOT})")
    print(f"targets:              {args.n} (3 result items and 2 own commands each)")
    print(f"(building the job:    {built:.1f} s; announcing it: {announced:.1f} s; not timed below)")
    print(f"median of {args.repeat} reads of all {args.n} results; ratio = median of time / floor of the same repeat")
    for size in sizes:
        floors = times["floor", size]
        print(f"page size {size}:")
        for reader in readers:
            ts = times[reader, size]
            ratio = statistics.median(t / f for t, f in zip(ts, floors))
            print(f"  {reader:7} {statistics.median(ts):8.3f} s  ratio {ratio:6.2f}  "
                  f"(runs: {', '.join(f'{t:.3f}' for t in ts)})")


if __name__ == "__main__":
    main()
