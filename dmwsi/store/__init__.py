"""Embedded job store: devices, jobs, results, push outbox, transaction log.

Services use the abstract :class:`Store`; :func:`open_store` picks the
implementation (SQLite today; a PostgreSQL one can be added behind the same
interface).
"""

from __future__ import annotations

import os

from dmwsi.store.base import (
    AmbiguousMatch,
    ConflictError,
    DuplicateJob,
    IllegalTransition,
    InvalidCursor,
    NotFound,
    SchemaError,
    Store,
    StoreError,
    UnknownDevices,
)
from dmwsi.store.sqlite import SQLiteStore


def open_store(path: str | os.PathLike, busy_timeout: float = 10.0, **options) -> Store:
    """Open (creating and migrating as needed) the store at ``path``;
    ``busy_timeout``: seconds a write waits for another writer's lock."""
    return SQLiteStore(path, busy_timeout=busy_timeout, **options)


__all__ = [
    "Store",
    "SQLiteStore",
    "open_store",
    "StoreError",
    "NotFound",
    "ConflictError",
    "DuplicateJob",
    "IllegalTransition",
    "UnknownDevices",
    "AmbiguousMatch",
    "InvalidCursor",
    "SchemaError",
]
