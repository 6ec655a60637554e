"""The SQLite file: one connection per thread, WAL, transactions.

Threading: one connection per thread (``threading.local``).  The SOAP side
runs in a WSGI thread pool and the DM server on the reactor thread; with
WAL, readers on their own connections never wait for a writer, whereas a
single connection behind a lock would make every GetJobStatus wait for a
100,000-row job insert.  Writers are serialised by SQLite itself: every
write transaction starts with ``BEGIN IMMEDIATE`` so it takes the write
lock up front and waits (``busy_timeout``) instead of failing with
SQLITE_BUSY when a read transaction tries to upgrade.  Connections live
until :meth:`Connection.close`, which suits long-lived pool threads.

Atomicity: every public method that writes runs inside
:meth:`Connection.transaction`; nested use becomes a SAVEPOINT, so a call
that fails inside a caller's transaction undoes only its own writes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import sqlite_utils

from dmwsi.selector import version_key
from dmwsi.store import migrations
from dmwsi.store.base import ConflictError, NotFound, StoreError


class Connection:
    """What every aggregate of the SQLite store shares: the file and its
    per-thread connections."""

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
        if not busy_timeout >= 0:
            raise ValueError(f"busy_timeout must be a non-negative number of seconds, not {busy_timeout!r}")
        self.path = path
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
