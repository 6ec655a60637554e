"""SQLite implementation of :class:`dmwsi.store.base.Store`, one module per
aggregate on a shared :class:`~dmwsi.store.sqlite.connection.Connection`
(per-thread connections, WAL, transactions; see there)."""

from __future__ import annotations

from dmwsi.store.base import Store
from dmwsi.store.sqlite.devices import DeviceTables
from dmwsi.store.sqlite.log import LogTable
from dmwsi.store.sqlite.outbox import OutboxTables
from dmwsi.store.sqlite.results import ResultTables
from dmwsi.store.sqlite.targets import TargetTables


class SQLiteStore(DeviceTables, TargetTables, ResultTables, OutboxTables, LogTable, Store):
    """Job store in one SQLite file (WAL, foreign keys on)."""


__all__ = ["SQLiteStore"]
