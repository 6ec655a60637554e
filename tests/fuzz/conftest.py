"""Fuzzing fixtures (issue 10 item 6): one real server per endpoint under
attack, what a refused request must leave alone (the store, read from its
SQLite file), and the hypothesis settings every property test shares.

How many examples: ``DMWSI_FUZZ_EXAMPLES`` per property test (default 1000;
each endpoint has one property test, so every endpoint gets that many
requests). Reproducing: the run is derandomized with the seed in
``DMWSI_FUZZ_SEED`` (default below, so CI sees the same requests every run);
``DMWSI_FUZZ_SEED=random`` picks a fresh seed, to explore further; the
seed is in every failure message (and in the report header of
``pytest tests/fuzz``). The full run of 1,000 examples per endpoint takes
about 40 s on 2 cores, time that grows linearly with the count: about a
third is generating requests, the rest the round trips (the request, the
store fingerprint before and after it, and the health check after every
one); ``DMWSI_FUZZ_EXAMPLES=5000`` explores more.
"""
import hashlib
import os
import random
import sqlite3
from collections import Counter

import pytest
from hypothesis import HealthCheck, event, given, seed, settings
from twisted.internet import task
from twisted.internet.threads import blockingCallFromThread

from tests.conftest import ServerFactory

EXAMPLES = int(os.environ.get("DMWSI_FUZZ_EXAMPLES", "1000"))
_SEED = os.environ.get("DMWSI_FUZZ_SEED", "20261207")
SEED = random.randrange(2**32) if _SEED == "random" else int(_SEED)

# No deadline: an example's time is mostly the server's, which varies with
# the load on a shared machine. The health checks that complain about slow
# or large data, large base examples, and the requests assume() leaves out
# (known bugs) would only stop the run. Failures are not stored in a
# .hypothesis directory: the seed reproduces them.
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.large_base_example, HealthCheck.filter_too_much])

# What a traceback looks like in a response body (issue 10: none may reach a caller).
TRACEBACK_MARKERS = (b"Traceback", b'File "', b'.py", line')

# Tables the property compares are every table of the store but these: the
# transaction log records refusals (it must grow), and the push sender owns
# the delivery bookkeeping of outbox rows (it retries in the background).
IGNORED_TABLES = ("transaction_log", "schema_version", "sqlite_sequence")
IGNORED_COLUMNS = {"outbox": ("attempts", "next_attempt_at", "delivered_at", "last_error")}


def pytest_report_header(config):
    return f"dmwsi fuzz: {EXAMPLES} examples per property test, seed {SEED} (DMWSI_FUZZ_EXAMPLES, DMWSI_FUZZ_SEED)"


def assert_no_traceback(body, request):
    for marker in TRACEBACK_MARKERS:
        assert marker not in body, f"seed {SEED}: traceback text {marker!r} in the answer to {request[:300]!r}: " \
                                   f"{body[:1000]!r}"


class _RowsDigest:
    """SQLite aggregate: the sum (mod 2**64) of a 64-bit BLAKE2b of every
    row's values. The sum does not depend on the order rows are read in, so
    the query needs no ORDER BY and nothing is materialized or sorted in
    Python; any inserted, deleted or changed row changes it (but for a
    2**-64 chance)."""

    def __init__(self):
        self.total = 0

    def step(self, *values):
        row = hashlib.blake2b(repr(values).encode(), digest_size=8).digest()
        self.total = (self.total + int.from_bytes(row, "big")) & 0xFFFF_FFFF_FFFF_FFFF

    def finalize(self):
        return f"{self.total:016x}"     # as text: SQLite integers are signed 64-bit


class StoreSnapshot:
    """A fingerprint of the store's rows, read from its SQLite file by a
    connection of its own: per table, one query for its row count and a
    digest of its rows (no dump)."""

    def __init__(self, running, ignored_columns=None):
        self.running = running
        #: table -> columns left out besides IGNORED_COLUMNS (what a refusal may change by design)
        self.ignored_columns = {t: IGNORED_COLUMNS.get(t, ()) + (ignored_columns or {}).get(t, ())
                                for t in set(IGNORED_COLUMNS) | set(ignored_columns or {})}
        path = running.services.config.data_path(running.services.config["store"]["path"])
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        self.db.create_aggregate("fuzz_rows_digest", -1, _RowsDigest)
        self._queries = None

    def settle(self):
        """Let the work a previous request queued finish: a kicked wake-up scan,
        announcing, the push sender's outbox read (each hops reactor -> store
        thread; three rounds cover the longest chain)."""
        store_thread = self.running.server.store_thread
        for _ in range(3):
            blockingCallFromThread(self.running.server.reactor, lambda: task.deferLater(
                self.running.server.reactor, 0, lambda: None).addCallback(lambda _: store_thread.run(lambda: None)))

    def queries(self):
        """table -> its fingerprint query (the schema is read once: fuzzing migrates nothing)."""
        if self._queries is None:
            self._queries = {}
            for (table,) in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                if table in IGNORED_TABLES:
                    continue
                columns = [r[1] for r in self.db.execute(f'PRAGMA table_info("{table}")')
                           if r[1] not in self.ignored_columns.get(table, ())]
                quoted = ", ".join(f'"{c}"' for c in columns)       # identifiers, not string literals
                self._queries[table] = f'SELECT count(*), fuzz_rows_digest({quoted}) FROM "{table}"'
        return self._queries

    def take(self):
        """table -> (row count, digest of its rows), after settling."""
        self.settle()
        queries = self.queries()
        self.db.execute("BEGIN")        # one read transaction: every table as of the same commit
        try:
            return {table: self.db.execute(query).fetchone() for table, query in queries.items()}
        finally:
            self.db.execute("COMMIT")

    def close(self):
        self.db.close()


def run_property(requests, check):
    """The property test of one endpoint: ``check(request) -> (kind, outcome)``
    (asserting the properties) on EXAMPLES requests of the strategy
    ``requests``, derandomized with SEED. -> Counter of (kind, outcome)."""
    outcomes = Counter()

    @FUZZ_SETTINGS
    @seed(SEED)
    @given(request=requests)
    def one_request(request):
        kind, outcome = check(request)
        outcomes[kind, outcome] += 1
        event(f"{kind}: {outcome}")

    one_request()
    return outcomes


def assert_unchanged(before, after, request, answer):
    changed = {t: (before.get(t), after.get(t)) for t in set(before) | set(after) if before.get(t) != after.get(t)}
    assert not changed, f"seed {SEED}: a refused request changed the store {changed}: request {request[:500]!r}, " \
                        f"answer {answer[:500]!r}"


@pytest.fixture(scope="module")
def fuzz_factory(running_reactor, tmp_path_factory, tls_pair):
    """Servers of one fuzz module. Background loops run only when kicked
    (long intervals), so a refused request's before/after snapshots see
    nothing but that request; synchronous calls do not wait (max_sync_wait 0),
    so generated ``synchronous`` flags cost no time; package 0 is only logged."""
    factory = ServerFactory(running_reactor, tmp_path_factory.mktemp("fuzz"), tls_pair)

    def start(**sections):
        base = {"dm": {"notifier": "log", "wakeup_interval": 3600.0, "session_timeout": 3600},
                "jobs": {"max_sync_wait": 0}, "push": {"poll_interval": 3600.0, "timeout": 2.0}}
        for name, values in sections.items():
            base.setdefault(name, {}).update(values)
        return factory(**base)

    yield start
    factory.stop_all()
