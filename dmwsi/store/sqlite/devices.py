"""Devices, their aliases, subscribers and device groups."""

from __future__ import annotations

import sqlite3
from dataclasses import fields
from datetime import datetime
from typing import Any, Iterable

from dmwsi.records import Device, Subscriber
from dmwsi.selector import FIELDS, VERSION_FIELDS, Clause, validate_clauses, version_key
from dmwsi.store.base import AmbiguousMatch, ConflictError, NotFound, UnknownDevices
from dmwsi.store.sqlite.codec import (
    ID_BATCH, clauses, clauses_json, cols, dt, from_json, marks, to_json, ts, utcnow,
)
from dmwsi.store.sqlite.connection import Connection

_DEVICE_COLS = [f.name for f in fields(Device)]
_DEVICE_TS = ("registered_at", "last_seen")
_SUBSCRIBER_COLS = ["subscriber_id", "msisdn", "name", "plan", "attributes", "created_at", "updated_at"]


def _device(row: sqlite3.Row) -> Device:
    d = dict(row)
    for k in _DEVICE_TS:
        d[k] = dt(d[k])
    return Device(**d)


class DeviceTables(Connection):
    # --- devices --------------------------------------------------------------------

    def upsert_device(self, device: Device, *, now: datetime | None = None) -> Device:
        now = now or utcnow()
        values = {name: getattr(device, name) for name in _DEVICE_COLS}
        values["registered_at"] = ts(device.registered_at or now)
        values["last_seen"] = ts(device.last_seen)
        updates = ", ".join(
            f"{c} = excluded.{c}" for c in _DEVICE_COLS if c not in ("device_id", "registered_at")
        )
        with self.transaction():
            self._check_subscriber(device.subscriber_id)
            self._conn.execute(
                f"INSERT INTO devices ({cols(_DEVICE_COLS)}) "
                f"VALUES ({', '.join(':' + c for c in _DEVICE_COLS)}) "
                f"ON CONFLICT(device_id) DO UPDATE SET {updates}",
                values,
            )
            return self.get_device(device.device_id)

    def _check_subscriber(self, subscriber_id: str | None) -> None:
        if subscriber_id is not None and self._one(
            "SELECT 1 FROM subscribers WHERE subscriber_id = ?", (subscriber_id,)
        ) is None:
            raise ConflictError(f"subscriber {subscriber_id!r} is not registered")

    def update_device(self, device_id: str, *, now: datetime | None = None, **fields_: Any) -> Device:
        bad = set(fields_) - (set(_DEVICE_COLS) - {"device_id"})
        if bad:
            raise TypeError(f"unknown device field(s): {', '.join(sorted(bad))}")
        if not fields_:
            raise TypeError("update_device needs at least one field")
        values = {k: (ts(v) if k in _DEVICE_TS else v) for k, v in fields_.items()}
        with self.transaction():
            if "subscriber_id" in fields_:
                self._check_subscriber(fields_["subscriber_id"])
            cur = self._conn.execute(
                f"UPDATE devices SET {', '.join(f'{k} = ?' for k in values)} WHERE device_id = ?",
                (*values.values(), device_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no device {device_id!r}")
            return self.get_device(device_id)

    def get_device(self, device_id: str) -> Device | None:
        row = self._one(f"SELECT {cols(_DEVICE_COLS)} FROM devices WHERE device_id = ?", (device_id,))
        return None if row is None else _device(row)

    def _find_device(self, field: str, value: str) -> Device | None:
        # field is one of find_device's keyword names: safe to interpolate.
        rows = self._conn.execute(
            f"SELECT {cols(_DEVICE_COLS)} FROM devices WHERE {field} = ? ORDER BY device_id LIMIT 2",
            (value,),
        ).fetchall()
        if len(rows) > 1:
            raise AmbiguousMatch(f"several devices have {field} {value!r}")
        return _device(rows[0]) if rows else None

    @staticmethod
    def _where_selector(clauses_: Iterable[Clause]) -> tuple[str, list[str]]:
        parts, params = [], []
        for field, op, value in validate_clauses(clauses_):
            col = FIELDS[field]  # from a fixed mapping: safe to interpolate
            sql_op = "LIKE" if op == "like" else op
            if op != "like" and field in VERSION_FIELDS:
                parts.append(f"version_key({col}) {sql_op} ?")
                params.append(version_key(value))
            else:
                parts.append(f"{col} {sql_op} ?")
                params.append(value)
        return " AND ".join(parts), params

    def select_devices(self, clauses_: Iterable[Clause]) -> list[str]:
        where, params = self._where_selector(clauses_)
        return [
            r[0]
            for r in self._conn.execute(
                f"SELECT device_id FROM devices WHERE {where} ORDER BY device_id", params
            )
        ]

    def remember_aliases(self, principal: str, pairs: Iterable[tuple[str, str]]) -> None:
        rows = [(principal, alias, device_id) for alias, device_id in pairs]
        if rows:
            with self.transaction():
                self._conn.executemany(
                    "INSERT OR IGNORE INTO principal_aliases (principal, alias, device_id) VALUES (?, ?, ?)", rows)

    def device_for_alias(self, principal: str, alias: str) -> str | None:
        row = self._conn.execute(
            "SELECT device_id FROM principal_aliases WHERE principal = ? AND alias = ?", (principal, alias)).fetchone()
        return row[0] if row else None

    def known_device_ids(self, device_ids: Iterable[str]) -> set[str]:
        ids = list(device_ids)
        known: set[str] = set()
        for start in range(0, len(ids), ID_BATCH):
            batch = ids[start:start + ID_BATCH]
            known.update(r[0] for r in self._conn.execute(
                f"SELECT device_id FROM devices WHERE device_id IN ({marks(len(batch))})", batch))
        return known

    # --- subscribers ------------------------------------------------------------

    def upsert_subscriber(self, subscriber: Subscriber, *, now: datetime | None = None) -> Subscriber:
        now_s = ts(now or utcnow())
        with self.transaction():
            self._conn.execute(
                "INSERT INTO subscribers (subscriber_id, msisdn, name, plan, attributes, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(subscriber_id) DO UPDATE SET "
                "msisdn = excluded.msisdn, name = excluded.name, plan = excluded.plan, "
                "attributes = excluded.attributes, updated_at = excluded.updated_at",
                (
                    subscriber.subscriber_id,
                    subscriber.msisdn,
                    subscriber.name,
                    subscriber.plan,
                    to_json(subscriber.attributes or {}),
                    ts(subscriber.created_at) or now_s,
                    now_s,
                ),
            )
            return self.get_subscriber(subscriber.subscriber_id)

    def get_subscriber(self, subscriber_id: str) -> Subscriber | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {cols(_SUBSCRIBER_COLS)} FROM subscribers WHERE subscriber_id = ?",
                (subscriber_id,),
            ).fetchone()
            if row is None:
                return None
            devices = conn.execute(
                f"SELECT {cols(_DEVICE_COLS)} FROM devices WHERE subscriber_id = ? ORDER BY device_id",
                (subscriber_id,),
            ).fetchall()
        d = dict(row)
        d["attributes"] = from_json(d["attributes"])
        d["created_at"] = dt(d["created_at"])
        d["updated_at"] = dt(d["updated_at"])
        return Subscriber(**d, devices=[_device(r) for r in devices])

    # --- groups -----------------------------------------------------------------------

    def define_group(
        self,
        name: str,
        owner: str,
        members: Iterable[str] | None = None,
        selector: Iterable[Clause] | None = None,
        *,
        now: datetime | None = None,
    ) -> int:
        if members is not None and selector is not None:
            raise ValueError("a group has either members or a selector, not both")
        selected = validate_clauses(selector) if selector is not None else None
        now_s = ts(now or utcnow())
        conn = self._conn
        with self.transaction():
            conn.execute(
                "INSERT INTO groups (name, owner, selector, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, "
                "selector = excluded.selector, updated_at = excluded.updated_at",
                (name, owner, clauses_json(selected), now_s, now_s),
            )
            conn.execute("DELETE FROM group_members WHERE group_name = ?", (name,))
            if selected is not None:
                return len(self.select_devices(selected))
            members = list(members or ())
            try:
                # OR IGNORE drops duplicate members; it does not affect
                # foreign keys, so unknown devices still fail.
                conn.executemany(
                    "INSERT OR IGNORE INTO group_members (group_name, device_id) VALUES (?, ?)",
                    ((name, m) for m in members),
                )
            except sqlite3.IntegrityError:
                known = self.known_device_ids(members)
                raise UnknownDevices([m for m in dict.fromkeys(members) if m not in known]) from None
            return conn.execute(
                "SELECT count(*) FROM group_members WHERE group_name = ?", (name,)
            ).fetchone()[0]

    def group_members(self, name: str) -> list[str]:
        with self._read() as conn:
            row = conn.execute("SELECT selector FROM groups WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFound(f"no group {name!r}")
            selected = clauses(row["selector"])
            if selected is not None:
                return self.select_devices(selected)
            return [
                r[0]
                for r in conn.execute(
                    "SELECT device_id FROM group_members WHERE group_name = ? ORDER BY device_id", (name,)
                )
            ]
