"""SubmitBulkOperation for N registered devices through real SOAP, against a
floor of the same work done by the bare libraries.

* server: a real dmwsi server (``dmwsi.host.Server``) on a reactor thread in
  this process, fresh data directory, N devices registered in its store; the
  request is a pre-built SOAP envelope (N ``deviceIds``, one Get command)
  POSTed raw over loopback HTTP, timed from the first byte sent to the
  response read. The job gets a schedule window opening in a day, so the
  timing is the submission (parse, validate, authorize, N target rows)
  and not the package 0 wake-up of N devices that would follow it.
* floor: lxml parses the same envelope and takes the N device ids out of it,
  and ``sqlite3`` inserts the same N ``job_targets`` rows (plus the job row)
  with one ``executemany`` into a fresh file with the store's schema, in one
  transaction, with the store's pragmas.

Each side runs ``--repeat`` times (a new job each time; for the floor a new
file); the best time counts, and the median of the ratios of the i-th server
run to the i-th floor run is shown too (``--json``: every time, one line,
for before_after.py).

    python bench/bench_bulk_submit.py [N] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from lxml import etree  # noqa: E402

NS = "http://dmwsi.org/ns/dmwsi/1.0"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"


def device_ids(n: int) -> list[str]:
    return [f"IMEI:{35_000_000_000_000 + i:015d}" for i in range(n)]


def envelope(ids: list[str], not_before: datetime) -> bytes:
    body = "".join(f"<d:deviceIds>{escape(d)}</d:deviceIds>" for d in ids)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>'
        f'<s:Envelope xmlns:s="{SOAP_NS}" xmlns:d="{NS}"><s:Body><d:SubmitBulkOperation>'
        f"{body}"
        "<d:commands><d:action>Get</d:action><d:uri>./DevDetail/FwV</d:uri></d:commands>"
        f"<d:schedule><d:notBefore>{not_before.strftime('%Y-%m-%dT%H:%M:%SZ')}</d:notBefore></d:schedule>"
        "</d:SubmitBulkOperation></s:Body></s:Envelope>"
    ).encode()


# --- the server ---------------------------------------------------------------------


class InProcessServer:
    """A dmwsi server on a reactor thread of this process (as tests/conftest.py)."""

    def __init__(self, data_dir: Path):
        from twisted.internet import reactor
        from twisted.internet.threads import blockingCallFromThread

        from dmwsi.config import load_config
        from dmwsi.host import Server

        self.reactor, self.call = reactor, blockingCallFromThread
        # Raw POSTs without WS-Security, on loopback only: run them as the
        # anonymous (operator) principal, whatever the shipped default says.
        config = load_config(overrides={"server": {"host": "127.0.0.1", "http_port": 0, "https_port": -1,
                                                   "data_dir": str(data_dir)},
                                        "security": {"allow_anonymous": True}}, environ={})
        self.thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True)
        self.thread.start()
        self.server = Server(config, reactor=reactor)
        self.call(reactor, self.server.start)
        self.url = self.server.url("http")
        self.store = self.server.services.store

    def stop(self) -> None:
        self.call(self.reactor, self.server.stop)
        self.reactor.callFromThread(self.reactor.stop)
        self.thread.join(10)


def register(store, ids: list[str], batch: int = 2000) -> None:
    """Straight into the store, a batch per transaction (the server's own
    wake-up needs the write lock now and then)."""
    from dmwsi.records import Device
    for start in range(0, len(ids), batch):
        with store.transaction():
            for d in ids[start:start + batch]:
                store.upsert_device(Device(device_id=d, man="Acme", client_password="c", server_password="s"))
        time.sleep(0.01)    # SQLite's lock is not fair: let a waiting writer in


def post(url: str, body: bytes) -> tuple[float, int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    try:
        start = time.perf_counter()
        conn.request("POST", parts.path, body, {"Content-Type": "text/xml; charset=utf-8",
                                                "SOAPAction": '"SubmitBulkOperation"'})
        response = conn.getresponse()
        answer = response.read()
        return time.perf_counter() - start, response.status, answer
    finally:
        conn.close()


def bench_server(server: InProcessServer, body: bytes, n: int) -> float:
    elapsed, status, answer = post(server.url, body)
    if status != 200:
        raise SystemExit(f"SubmitBulkOperation answered HTTP {status}: {answer[:2000]!r}")
    tree = etree.fromstring(answer)
    accepted = int(tree.findtext(f".//{{{NS}}}accepted"))
    job_id = tree.findtext(f".//{{{NS}}}jobId")
    counts = server.store.job_counts(job_id)
    assert accepted == n and counts["pending"] == n, (accepted, counts)
    return elapsed


# --- the floor ----------------------------------------------------------------------


def bench_floor(path: Path, body: bytes, n: int) -> tuple[float, float]:
    """-> (parse seconds, insert seconds) for lxml + sqlite3 doing the same work."""
    from dmwsi.store import SQLiteStore
    SQLiteStore(path).close()          # the store's schema in a fresh file
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = NORMAL")
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    job_id = uuid.uuid4().hex
    try:
        start = time.perf_counter()
        tree = etree.fromstring(body)
        ids = [e.text for e in tree.iter(f"{{{NS}}}deviceIds")]
        parsed = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO jobs (job_id, principal, operation, created_at, updated_at) "
                     "VALUES (?, 'bench', 'SubmitBulkOperation', ?, ?)", (job_id, now, now))
        conn.executemany("INSERT INTO job_targets (job_id, device_id) VALUES (?, ?)",
                         ((job_id, d) for d in ids))
        conn.execute("COMMIT")
        done = time.perf_counter()
        assert len(ids) == n
        return parsed - start, done - parsed
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ids = device_ids(args.n)
    body = envelope(ids, datetime.now(timezone.utc) + timedelta(days=1))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        floors = [bench_floor(tmp / f"floor{i}.db", body, args.n) for i in range(args.repeat)]
        parse, insert = min(floors, key=sum)
        server = InProcessServer(tmp / "server")
        try:
            start = time.perf_counter()
            register(server.store, ids)
            registered = time.perf_counter() - start
            times = [bench_server(server, body, args.n) for _ in range(args.repeat)]
        finally:
            server.stop()
    floor, best = parse + insert, min(times)
    if args.json:
        from compat import code_version
        print(json.dumps({"bench": "bulk_submit", "version": code_version(Path(__file__).resolve().parent.parent),
                          "n": args.n, "load": os.getloadavg()[0],
                          "times": {"floor": [sum(f) for f in floors], "soap": times}}))
        return
    print(f"targets:                  {args.n}")
    print(f"envelope:                 {len(body) / 1e6:.1f} MB")
    print(f"(registering devices:     {registered:.3f} s, not timed below)")
    print(f"floor lxml parse:         {parse:.3f} s")
    print(f"floor sqlite3 executemany:{insert:.3f} s")
    print(f"floor total:              {floor:.3f} s")
    print(f"SubmitBulkOperation SOAP: {best:.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times)})")
    print(f"ratio server/floor:       {best / floor:.2f}")
    print(f"median ratio run i/floor i: {statistics.median(t / sum(f) for t, f in zip(times, floors)):.2f}")


if __name__ == "__main__":
    main()
