"""SQLite schema as an ordered list of forward migrations.

Rules: a released migration is never edited (tests compare migration 1
with a frozen copy); a schema change is a new entry at the end.  All
pending migrations are applied in one ``BEGIN IMMEDIATE`` transaction, so
two processes opening an old file cannot both migrate it and a failure
leaves the file at its old version.  Migrations that must rebuild a table
with foreign keys off cannot run inside that transaction; such a step will
need the runner extended (PRAGMA foreign_keys is a no-op in a transaction).

Timestamps are fixed-width ISO-8601 UTC text
(``YYYY-MM-DDTHH:MM:SS.ffffffZ``) so text order is time order.  Columns
holding device values (``value``) are declared without a type so SQLite
keeps str and bytes as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import sqlite_utils

#: The final target states (records.TARGET_TERMINAL_STATES) as migration 7
#: wrote them into its partial index.  Frozen text, like every released
#: migration; the queries that should use the index repeat it verbatim,
#: because SQLite uses a partial index only when the query has the same terms.
FINAL_STATES_SQL = "('succeeded', 'failed', 'refused', 'cancelled', 'timedOut')"
#: The open target states (records.TARGET_OPEN_STATES), as migration 9's
#: partial index names them (the complement of FINAL_STATES_SQL, states being
#: constrained by the transition trigger).
OPEN_STATES_SQL = "('pending', 'inSession')"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[sqlite_utils.Database], None]


def _script(sql: str) -> Callable[[sqlite_utils.Database], None]:
    def apply(db: sqlite_utils.Database) -> None:
        # sqlite-utils runs the statements one by one inside the open
        # transaction (sqlite3's executescript would COMMIT it first).
        db.executescript(sql)

    return apply


V1_CORE = """
CREATE TABLE subscribers (
    subscriber_id TEXT PRIMARY KEY,
    msisdn TEXT,
    name TEXT,
    plan TEXT,
    attributes TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(attributes)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX subscribers_msisdn ON subscribers(msisdn);

CREATE TABLE devices (
    device_id TEXT PRIMARY KEY,
    msisdn TEXT,
    imsi TEXT,
    imei TEXT,
    subscriber_id TEXT REFERENCES subscribers(subscriber_id) ON DELETE SET NULL,
    man TEXT, mod TEXT, fwv TEXT, swv TEXT, hwv TEXT,
    lang TEXT, dmv TEXT, devtyp TEXT, oem TEXT,
    notification_url TEXT,
    auth_scheme TEXT,
    client_username TEXT,
    client_password TEXT,
    server_password TEXT,
    client_nonce BLOB,
    server_nonce BLOB,
    registered_at TEXT NOT NULL,
    last_seen TEXT
);
-- Not UNIQUE: an MSISDN can move to another device (SIM swap) before the
-- old registration is cleaned up; find_device reports ambiguity instead.
CREATE INDEX devices_msisdn ON devices(msisdn);
CREATE INDEX devices_imei ON devices(imei);
CREATE INDEX devices_imsi ON devices(imsi);
CREATE INDEX devices_subscriber ON devices(subscriber_id);
CREATE INDEX devices_man_mod ON devices(man, mod);

CREATE TABLE groups (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    selector TEXT CHECK (selector IS NULL OR json_valid(selector)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE group_members (
    group_name TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE ON UPDATE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,
    PRIMARY KEY (group_name, device_id)
) WITHOUT ROWID;
CREATE INDEX group_members_device ON group_members(device_id);

CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY,
    client_job_id TEXT,
    principal TEXT NOT NULL,
    operation TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'running', 'completed', 'cancelled', 'expired')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    not_before TEXT,
    not_after TEXT,
    expires_at TEXT,
    concurrency INTEGER CHECK (concurrency IS NULL OR concurrency > 0),
    atomic INTEGER NOT NULL DEFAULT 0 CHECK (atomic IN (0, 1)),
    delivery_mode TEXT NOT NULL DEFAULT 'pull'
        CHECK (delivery_mode IN ('pull', 'each', 'collated')),
    callback_url TEXT,
    params TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(params)),
    UNIQUE (principal, client_job_id)
);
CREATE INDEX jobs_created ON jobs(created_at, job_id);
CREATE INDEX jobs_principal_created ON jobs(principal, created_at, job_id);
CREATE INDEX jobs_state_created ON jobs(state, created_at, job_id);

CREATE TABLE job_commands (
    job_id TEXT NOT NULL REFERENCES jobs(job_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    action TEXT NOT NULL,
    uri TEXT,
    value,
    format TEXT,
    type TEXT,
    source_uri TEXT,
    correlator TEXT,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

-- device_id deliberately has no foreign key: a target can record that a
-- requested device is unknown (state 'refused'), and rows must survive
-- removal of the device so results stay retrievable.
CREATE TABLE job_targets (
    job_id TEXT NOT NULL REFERENCES jobs(job_id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'inSession', 'succeeded', 'failed',
                         'refused', 'cancelled', 'timedOut')),
    attempts INTEGER NOT NULL DEFAULT 0,
    refused_reason TEXT,
    started_at TEXT,
    finished_at TEXT,
    status_code INTEGER,
    error_code TEXT,
    message TEXT,
    params TEXT CHECK (params IS NULL OR json_valid(params)),
    PRIMARY KEY (job_id, device_id)
) WITHOUT ROWID;
-- Partial: only open work is looked up by device, and it stays small as
-- jobs finish.
CREATE INDEX job_targets_pending ON job_targets(device_id, job_id) WHERE state = 'pending';
CREATE INDEX job_targets_state ON job_targets(job_id, state);

CREATE TABLE results (
    job_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    command_seq INTEGER,
    uri TEXT,
    value,
    format TEXT,
    type TEXT,
    status_code INTEGER,
    PRIMARY KEY (job_id, device_id, seq),
    FOREIGN KEY (job_id, device_id) REFERENCES job_targets(job_id, device_id) ON DELETE CASCADE
) WITHOUT ROWID;

-- No foreign keys: the log must outlive purged jobs and devices.
CREATE TABLE transaction_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time TEXT NOT NULL,
    principal TEXT,
    operation TEXT NOT NULL,
    job_id TEXT,
    device_id TEXT,
    subscriber_id TEXT,
    summary TEXT,
    success INTEGER NOT NULL CHECK (success IN (0, 1)),
    device_count INTEGER,
    error_code TEXT
);
CREATE INDEX transaction_log_job ON transaction_log(job_id, id);
CREATE INDEX transaction_log_device ON transaction_log(device_id, id);
CREATE INDEX transaction_log_principal ON transaction_log(principal, id);
CREATE INDEX transaction_log_time ON transaction_log(time);
-- Append-only is enforced by the database too, not only by the API.
CREATE TRIGGER transaction_log_no_update BEFORE UPDATE ON transaction_log
BEGIN
    SELECT RAISE(ABORT, 'transaction_log is append-only');
END;
CREATE TRIGGER transaction_log_no_delete BEFORE DELETE ON transaction_log
BEGIN
    SELECT RAISE(ABORT, 'transaction_log is append-only');
END;
"""

V2_DELIVERY = """
CREATE TABLE acknowledgements (
    job_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    acknowledged_at TEXT NOT NULL,
    PRIMARY KEY (job_id, device_id, principal),
    FOREIGN KEY (job_id, device_id) REFERENCES job_targets(job_id, device_id) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE TABLE outbox (
    delivery_id TEXT PRIMARY KEY,
    job_id TEXT REFERENCES jobs(job_id) ON DELETE CASCADE,
    principal TEXT NOT NULL,
    callback_url TEXT NOT NULL,
    operation TEXT NOT NULL,
    payload TEXT NOT NULL CHECK (json_valid(payload)),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    next_attempt_at TEXT,
    delivered_at TEXT,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox(next_attempt_at)
    WHERE delivered_at IS NULL AND next_attempt_at IS NOT NULL;
CREATE INDEX outbox_job ON outbox(job_id);

-- group_name has no ON DELETE action: deleting a group that a
-- subscription uses is refused rather than silently dropping it.
CREATE TABLE subscriptions (
    subscription_id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    event_id TEXT NOT NULL,
    include_data INTEGER NOT NULL DEFAULT 0 CHECK (include_data IN (0, 1)),
    callback_url TEXT NOT NULL,
    device_ids TEXT CHECK (device_ids IS NULL OR json_valid(device_ids)),
    group_name TEXT REFERENCES groups(name) ON UPDATE CASCADE,
    selector TEXT CHECK (selector IS NULL OR json_valid(selector)),
    created_at TEXT NOT NULL,
    CHECK ((device_ids IS NOT NULL) + (group_name IS NOT NULL) + (selector IS NOT NULL) <= 1)
);
CREATE INDEX subscriptions_event ON subscriptions(event_id);
CREATE INDEX subscriptions_principal ON subscriptions(principal);
"""

V3_ALIAS_CARE_BILLING = """
ALTER TABLE devices ADD COLUMN alias TEXT;
CREATE UNIQUE INDEX devices_alias ON devices(alias);
ALTER TABLE jobs ADD COLUMN customer_care INTEGER NOT NULL DEFAULT 0
    CHECK (customer_care IN (0, 1));
ALTER TABLE transaction_log ADD COLUMN customer_care INTEGER NOT NULL DEFAULT 0
    CHECK (customer_care IN (0, 1));
ALTER TABLE transaction_log ADD COLUMN billing_account TEXT;
ALTER TABLE transaction_log ADD COLUMN billing_units INTEGER;
"""

V4_PUSH_SEQUENCE = """
ALTER TABLE outbox ADD COLUMN stream TEXT;
ALTER TABLE outbox ADD COLUMN sequence INTEGER
    CHECK (sequence IS NULL OR (sequence > 0 AND stream IS NOT NULL));
CREATE UNIQUE INDEX outbox_stream_sequence ON outbox(stream, sequence) WHERE stream IS NOT NULL;
"""

V5_PRINCIPAL_ALIASES = """
-- Per-principal device aliases (OES6), remembered when first shown so a
-- caller can address the device by the alias it was given.
CREATE TABLE principal_aliases (
    principal TEXT NOT NULL,
    alias TEXT NOT NULL,
    device_id TEXT NOT NULL,
    PRIMARY KEY (principal, alias)
);
"""

V6_TARGET_TRANSITIONS = """
-- A target's state changes only along records.TARGET_TRANSITIONS: final
-- states are final, refused is set only at creation.  Every writer (the
-- API's one transition function and its bulk claim/cancel/expire updates)
-- is held to it by the database.
CREATE TRIGGER job_targets_legal_state BEFORE UPDATE OF state ON job_targets
WHEN NOT (
    (OLD.state = 'pending'
     AND NEW.state IN ('inSession', 'succeeded', 'failed', 'cancelled', 'timedOut'))
    OR (OLD.state = 'inSession'
        AND NEW.state IN ('pending', 'inSession', 'succeeded', 'failed', 'cancelled', 'timedOut'))
)
BEGIN
    SELECT RAISE(ABORT, 'illegal target state change');
END;
-- In-session targets by age, for crash recovery and the lease sweep.
CREATE INDEX job_targets_in_session ON job_targets(started_at) WHERE state = 'inSession';
"""

def _announced_marker(db: sqlite_utils.Database) -> None:
    # Before this version a final target was announced (its pushes enqueued)
    # in the transaction that made it final, so every final target on file
    # has been announced already; new ones are announced after their state
    # change commits, in batches, and this column is what remembers it.
    db.executescript(
        f"""
ALTER TABLE job_targets ADD COLUMN announced_at TEXT;
UPDATE job_targets SET announced_at = coalesce(finished_at, '{_now_text()}')
    WHERE state IN {FINAL_STATES_SQL};
-- Partial: only final targets not yet announced, so it stays as small as
-- the announcing backlog however large the jobs are.  Queries must repeat
-- this WHERE (the planner matches the terms) to use it.
CREATE INDEX job_targets_unannounced ON job_targets(job_id, device_id)
    WHERE announced_at IS NULL AND state IN {FINAL_STATES_SQL};
"""
    )


V8_DEVICE_COMMANDS = """
-- A target's own commands (bulk jobs with per-device commands), run instead
-- of the job's common ones; read page by page with one range scan.
CREATE TABLE device_commands (
    job_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    action TEXT NOT NULL,
    uri TEXT,
    value,
    format TEXT,
    type TEXT,
    source_uri TEXT,
    correlator TEXT,
    PRIMARY KEY (job_id, device_id, seq),
    FOREIGN KEY (job_id, device_id) REFERENCES job_targets(job_id, device_id) ON DELETE CASCADE
) WITHOUT ROWID;
-- Until now they were JSON in the target's params ({"commands": [...]},
-- numbered by their "seq", else by position); move them and drop the JSON.
INSERT INTO device_commands (job_id, device_id, seq, action, uri, value, format, type, source_uri, correlator)
SELECT t.job_id, t.device_id, coalesce(json_extract(c.value, '$.seq'), c.key + 1),
       json_extract(c.value, '$.action'), json_extract(c.value, '$.uri'), json_extract(c.value, '$.value'),
       json_extract(c.value, '$.format'), json_extract(c.value, '$.type'),
       json_extract(c.value, '$.source_uri'), json_extract(c.value, '$.correlator')
FROM job_targets t, json_each(t.params, '$.commands') c
WHERE json_type(t.params, '$.commands') = 'array';
UPDATE job_targets
SET params = nullif(json_remove(params, '$.commands'), '{}')
WHERE json_type(params, '$.commands') IS NOT NULL;
"""

V9_UNANNOUNCED_INDEX = f"""
-- Same index, cheaper to maintain: a five-value IN list is evaluated on
-- every inserted row (about 2 us each, 9 % of a 100,000-target bulk submit,
-- bench/RESULTS.md 2026-12-08), a two-value NOT IN costs nothing measurable.
DROP INDEX job_targets_unannounced;
CREATE INDEX job_targets_unannounced ON job_targets(job_id, device_id)
    WHERE announced_at IS NULL AND state NOT IN {OPEN_STATES_SQL};
"""

V10_PUSH_CONSUMERS = """
-- Pushes are scheduled per consumer (callback URL): the consumers with a due
-- push are found by a loose scan of this index (one seek per consumer) and
-- each consumer's due pushes read from its own range, so a consumer with a
-- large backlog never hides another's.  Same terms as outbox_due.
CREATE INDEX outbox_consumer_due ON outbox(callback_url, next_attempt_at)
    WHERE delivered_at IS NULL AND next_attempt_at IS NOT NULL;
-- Parked pushes (neither delivered nor scheduled: the consumer stayed down
-- too long, or attempts ran out), listed and re-delivered by consumer.
CREATE INDEX outbox_parked ON outbox(callback_url)
    WHERE delivered_at IS NULL AND next_attempt_at IS NULL;
"""

MIGRATIONS: list[Migration] = [
    Migration(1, "core: devices, subscribers, groups, jobs, results, transaction log", _script(V1_CORE)),
    Migration(2, "result delivery: acknowledgements, outbox, event subscriptions", _script(V2_DELIVERY)),
    Migration(3, "device alias (OES6), customer-care flag, billing fields", _script(V3_ALIAS_CARE_BILLING)),
    Migration(4, "push outbox: per-stream (per-job) sequence numbers", _script(V4_PUSH_SEQUENCE)),
    Migration(5, "per-principal device aliases (OES6)", _script(V5_PRINCIPAL_ALIASES)),
    Migration(6, "legal target state changes only (trigger); in-session index", _script(V6_TARGET_TRANSITIONS)),
    Migration(7, "announced marker on final targets (announced after the state change commits)",
              _announced_marker),
    Migration(8, "per-device commands as rows (device_commands), moved out of target params JSON",
              _script(V8_DEVICE_COMMANDS)),
    Migration(9, "unannounced-target index by open states (cheaper on insert)", _script(V9_UNANNOUNCED_INDEX)),
    Migration(10, "push outbox: per-consumer due index, parked-push index", _script(V10_PUSH_CONSUMERS)),
]

LATEST_VERSION = MIGRATIONS[-1].version


def _now_text() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def current_version(db: sqlite_utils.Database) -> int:
    if not db["schema_version"].exists():
        return 0
    return db.conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def migrate(db: sqlite_utils.Database, target: int | None = None) -> int:
    """Bring the database to ``target`` (default: latest); return the version.

    ``target`` exists so tests can build files of an older version.
    """
    from dmwsi.store.base import SchemaError  # avoid an import cycle

    target = LATEST_VERSION if target is None else target
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not db["schema_version"].exists():
            if db.table_names():
                raise SchemaError("database has tables but no schema_version: not a dmwsi store")
            conn.execute(
                "CREATE TABLE schema_version ("
                " version INTEGER PRIMARY KEY,"
                " description TEXT NOT NULL,"
                " applied_at TEXT NOT NULL)"
            )
        version = current_version(db)
        if version > LATEST_VERSION:
            raise SchemaError(
                f"database schema version {version} is newer than this code ({LATEST_VERSION})"
            )
        for m in MIGRATIONS:
            if version < m.version <= target:
                m.apply(db)
                conn.execute(
                    "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                    (m.version, m.description, _now_text()),
                )
                version = m.version
        problems = conn.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise SchemaError(f"foreign key violations after migration: {problems[:5]}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return version
