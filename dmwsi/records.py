"""Domain records exchanged with a :class:`dmwsi.store.base.Store`.

Plain dataclasses, no storage logic.  Conventions shared by every record:

* timestamps are timezone-aware UTC ``datetime`` objects (the SQLite
  implementation stores them as fixed-width ISO-8601 UTC text, so they
  sort and compare correctly as text);
* ``params``/``payload``/``attributes`` are JSON-serialisable dicts;
* ``value`` fields hold ``str`` or ``bytes`` as the device sent them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dmwsi.selector import Clause

# --- job life cycle ---------------------------------------------------------

#: Job created, no device has started yet.
JOB_PENDING = "pending"
#: At least one target has been claimed by a DM session.
JOB_RUNNING = "running"
#: Every target reached a terminal state.
JOB_COMPLETED = "completed"
#: CancelJob: every open target (pending or in session) was cancelled.
JOB_CANCELLED = "cancelled"
#: expires_at / not_after passed: pending targets were expired.
JOB_EXPIRED = "expired"

JOB_STATES = (JOB_PENDING, JOB_RUNNING, JOB_COMPLETED, JOB_CANCELLED, JOB_EXPIRED)
JOB_ACTIVE_STATES = (JOB_PENDING, JOB_RUNNING)
JOB_TERMINAL_STATES = (JOB_COMPLETED, JOB_CANCELLED, JOB_EXPIRED)

# --- per-device target life cycle -------------------------------------------

TARGET_PENDING = "pending"          # waiting for a DM session with the device
TARGET_IN_SESSION = "inSession"  # claimed by a DM session
TARGET_SUCCEEDED = "succeeded"
TARGET_FAILED = "failed"
TARGET_REFUSED = "refused"          # refused by policy (e.g. secondary DM server)
TARGET_CANCELLED = "cancelled"
TARGET_TIMED_OUT = "timedOut"

TARGET_STATES = (
    TARGET_PENDING,
    TARGET_IN_SESSION,
    TARGET_SUCCEEDED,
    TARGET_FAILED,
    TARGET_REFUSED,
    TARGET_CANCELLED,
    TARGET_TIMED_OUT,
)
TARGET_OPEN_STATES = (TARGET_PENDING, TARGET_IN_SESSION)
TARGET_TERMINAL_STATES = (
    TARGET_SUCCEEDED,
    TARGET_FAILED,
    TARGET_REFUSED,
    TARGET_CANCELLED,
    TARGET_TIMED_OUT,
)

#: The legal state changes of a target (a new target starts pending, or
#: final, e.g. refused).  A final state is final: nothing leaves it, so a
#: late answer for a cancelled or failed-over target cannot reopen it.
#: inSession -> inSession updates a held target (e.g. Exec accepted, now
#: awaiting its Generic Alert); refused is only ever set at creation.
#: Migration 6's trigger enforces the same table in the database.
TARGET_TRANSITIONS = {
    TARGET_PENDING: frozenset((TARGET_IN_SESSION, TARGET_SUCCEEDED, TARGET_FAILED, TARGET_CANCELLED,
                               TARGET_TIMED_OUT)),
    TARGET_IN_SESSION: frozenset((TARGET_PENDING, TARGET_IN_SESSION, TARGET_SUCCEEDED, TARGET_FAILED,
                                  TARGET_CANCELLED, TARGET_TIMED_OUT)),
}


def transition_allowed(old: str, new: str) -> bool:
    """Whether a target may go from state ``old`` to state ``new``."""
    return new in TARGET_TRANSITIONS.get(old, ())


#: A target in session with this status_code had its Exec accepted (202) and
#: waits for the device's Generic Alert: no session holds it any more.
STATUS_AWAITING_ALERT = 202

# --- result delivery (OES4) ------------------------------------------------------

DELIVERY_PULL = "pull"                    # GetJobResults only
DELIVERY_EACH = "each"        # one DeviceResult push per device
DELIVERY_COLLATED = "collated"  # one ResultsAvailable push per job
DELIVERY_MODES = (DELIVERY_PULL, DELIVERY_EACH, DELIVERY_COLLATED)


@dataclass
class Device:
    device_id: str
    alias: str | None = None  # opaque alias (OES6); unique when set
    msisdn: str | None = None
    imsi: str | None = None
    imei: str | None = None
    subscriber_id: str | None = None
    # DevInfo / DevDetail
    man: str | None = None
    mod: str | None = None
    fwv: str | None = None
    swv: str | None = None
    hwv: str | None = None
    lang: str | None = None
    dmv: str | None = None
    devtyp: str | None = None
    oem: str | None = None
    notification_url: str | None = None
    # DM session authentication
    auth_scheme: str | None = None
    client_username: str | None = None
    client_password: str | None = None
    server_password: str | None = None
    client_nonce: bytes | None = None
    server_nonce: bytes | None = None
    registered_at: datetime | None = None  # set by the store on first insert
    last_seen: datetime | None = None


@dataclass
class Subscriber:
    subscriber_id: str
    msisdn: str | None = None
    name: str | None = None
    plan: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: Filled by ``get_subscriber``; ignored by ``upsert_subscriber``.
    devices: list[Device] = field(default_factory=list)


@dataclass
class Job:
    principal: str
    operation: str
    job_id: str | None = None  # generated by the store when None
    client_job_id: str | None = None  # caller's own id, unique per principal
    state: str = JOB_PENDING
    created_at: datetime | None = None
    updated_at: datetime | None = None
    not_before: datetime | None = None  # schedule window start
    not_after: datetime | None = None  # no target is started after this
    expires_at: datetime | None = None  # pending targets expire at this time
    concurrency: int | None = None  # max targets in progress at once
    atomic: bool = False
    delivery_mode: str = DELIVERY_PULL
    callback_url: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    customer_care: bool = False


@dataclass
class Command:
    """A management command of a job: common to its targets, or one of a
    target's own commands (JobTarget.commands)."""

    action: str  # Add, Replace, Delete, Get, Exec, Copy, ...
    uri: str | None = None
    value: str | bytes | None = None
    format: str | None = None
    type: str | None = None
    source_uri: str | None = None  # Copy
    correlator: str | None = None  # Exec
    seq: int | None = None  # order inside the job; assigned 1.. when None
    job_id: str | None = None  # filled when read back


@dataclass
class JobTarget:
    device_id: str
    state: str = TARGET_PENDING
    attempts: int = 0
    refused_reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    status_code: int | None = None
    error_code: str | None = None
    message: str | None = None
    params: dict[str, Any] | None = None  # per-device parameters
    job_id: str | None = None  # filled when read back
    #: The device's own commands, run instead of the job's (None: the job's).
    #: Given to create_job; read back as WorkItem.commands and
    #: DeviceResult.commands (a JobTarget read back leaves it None).
    commands: list[Command] | None = None


@dataclass
class ResultItem:
    """One item a device returned (Results / Status for a command)."""

    uri: str | None = None
    value: str | bytes | None = None
    format: str | None = None
    type: str | None = None
    status_code: int | None = None
    command_seq: int | None = None  # the job command this answers, if known
    seq: int | None = None  # assigned by the store


@dataclass
class DeviceResult:
    """A row of GetJobResults: one target with the items it returned."""

    job_id: str
    device_id: str
    state: str
    attempts: int = 0
    refused_reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    status_code: int | None = None
    error_code: str | None = None
    message: str | None = None
    items: list[ResultItem] = field(default_factory=list)
    #: The commands the device runs: its own, else the job's (what the
    #: items' command_seq refer to).
    commands: list[Command] = field(default_factory=list)


@dataclass
class WorkItem:
    """Work a DM session should do with one device for one job."""

    job: Job
    target: JobTarget
    commands: list[Command]  # the device's own, else the job's


@dataclass(frozen=True)
class WakeTarget:
    """A device with due work in one job, for the wake-up scan."""

    device_id: str
    job_id: str
    free_slots: int | None  # the job's concurrency minus targets in session; None: unlimited


@dataclass
class OutboxPush:
    delivery_id: str
    principal: str
    callback_url: str
    operation: str  # callback operation: DeviceResult, ResultsAvailable, ...
    payload: dict[str, Any]
    job_id: str | None = None
    attempts: int = 0
    created_at: datetime | None = None
    #: None once delivered or abandoned.
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    last_error: str | None = None
    #: Per-stream push counter (OES4): ``stream`` is what the counter counts
    #: (e.g. ``job:<job id>``, see dmwsi.jobs.outbox), ``sequence`` 1, 2, ...
    #: in enqueue order (the payload's ``sequence``); both None
    #: for an unsequenced push.
    stream: str | None = None
    sequence: int | None = None


@dataclass
class Subscription:
    """An event subscription (EI7), as event pushes address it.

    At most one of ``device_ids``, ``group`` and ``selector`` is set; none
    means every device (the service layer still applies the principal's
    device scope when publishing).
    """

    principal: str
    event_id: str  # e.g. an alert type; "*" matches every event
    callback_url: str
    include_data: bool = False
    device_ids: list[str] | None = None
    group: str | None = None
    selector: list[Clause] | None = None
    subscription_id: str | None = None  # generated by the store when None
    created_at: datetime | None = None


@dataclass
class LogEntry:
    """A transaction-log row (EI1-4). Append-only."""

    operation: str
    success: bool
    principal: str | None = None
    job_id: str | None = None
    device_id: str | None = None
    subscriber_id: str | None = None
    summary: str | None = None
    device_count: int | None = None
    error_code: str | None = None
    customer_care: bool = False
    billing_account: str | None = None
    billing_units: int | None = None
    time: datetime | None = None  # defaults to now on append
    id: int | None = None  # assigned on append
