"""The storage interface the services and the DM server program against.

Kept narrow on purpose: everything here must be implementable on
PostgreSQL as well as SQLite, so no method exposes SQL or connections.

Conventions:

* ``get_*``/``find_*`` return ``None`` for a missing record; methods that
  act on a record raise :class:`NotFound`.
* Every method that writes several rows does so in one transaction: on any
  error nothing it wrote remains.  :meth:`Store.transaction` groups several
  calls into one transaction (e.g. record a device result *and* enqueue its
  push: the transactional outbox).
* Paged methods return ``(rows, next_cursor)``; ``next_cursor`` is an
  opaque string, ``None`` on the last page.  Paging is keyset-based, so
  rows inserted while a caller pages are neither repeated nor cause skips.
* ``now`` parameters default to the current UTC time; timestamps are
  timezone-aware ``datetime`` objects.
* The transaction log is append-only: there is deliberately no method to
  change or remove a log row.
"""

from __future__ import annotations

import abc
import uuid
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import Any, Iterable, Sequence

from dmwsi.errors import DmwsiError
from dmwsi.selector import Clause
from dmwsi.records import (
    TARGET_STATES,
    TARGET_TERMINAL_STATES,
    Command,
    Device,
    DeviceResult,
    Job,
    JobTarget,
    LogEntry,
    OutboxPush,
    ResultItem,
    Subscriber,
    WakeTarget,
    WorkItem,
)


class StoreError(DmwsiError):
    """Base class of store errors."""


class NotFound(StoreError):
    """The record acted on does not exist."""


class ConflictError(StoreError):
    """A write violates a constraint (duplicate key, unknown reference...)."""


class DuplicateJob(ConflictError):
    """(principal, client_job_id) is already used; ``job_id`` is the existing job."""

    def __init__(self, principal: str, client_job_id: str, job_id: str):
        super().__init__(
            f"principal {principal!r} already has a job with client id {client_job_id!r}"
        )
        self.principal = principal
        self.client_job_id = client_job_id
        self.job_id = job_id


class UnknownDevices(ConflictError):
    """Devices named in a write are not registered."""

    def __init__(self, device_ids: Sequence[str]):
        shown = ", ".join(device_ids[:10]) + (" ..." if len(device_ids) > 10 else "")
        super().__init__(f"{len(device_ids)} unknown device(s): {shown}")
        self.device_ids = list(device_ids)


class IllegalTransition(ConflictError):
    """A target state change outside records.TARGET_TRANSITIONS (e.g. out of a final state)."""

    def __init__(self, job_id: str, device_id: str, old: str, new: str):
        super().__init__(f"target {device_id!r} of job {job_id!r} cannot go from {old} to {new}")
        self.old, self.new = old, new


class AmbiguousMatch(StoreError):
    """A lookup that must identify one record matched several."""


class InvalidCursor(StoreError, ValueError):
    """A paging cursor was not produced by the same method."""


class SchemaError(StoreError):
    """The database file is not a dmwsi store or is newer than this code."""


class Store(abc.ABC):
    """The store interface.  The public methods with a body check and
    normalise their arguments (the same for every implementation) and
    leave the storage to the abstract ``_`` method beneath them."""

    # --- life cycle ---------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None: ...

    @abc.abstractmethod
    def schema_version(self) -> int: ...

    @abc.abstractmethod
    def transaction(self) -> AbstractContextManager[None]:
        """Group several store calls into one atomic transaction (nestable)."""

    # --- devices ------------------------------------------------------------
    @abc.abstractmethod
    def upsert_device(self, device: Device, *, now: datetime | None = None) -> Device:
        """Insert or fully replace a device; ``registered_at`` of an existing
        device is kept. Unknown subscriber_id -> ConflictError."""

    @abc.abstractmethod
    def update_device(self, device_id: str, *, now: datetime | None = None, **fields: Any) -> Device:
        """Change some fields (e.g. last_seen, nonces, DevInfo). NotFound, TypeError."""

    @abc.abstractmethod
    def get_device(self, device_id: str) -> Device | None: ...

    def find_device(
        self,
        *,
        msisdn: str | None = None,
        imei: str | None = None,
        imsi: str | None = None,
        subscriber_id: str | None = None,
        alias: str | None = None,
    ) -> Device | None:
        """Look up by exactly one key; AmbiguousMatch if several devices match."""
        keys = dict(msisdn=msisdn, imei=imei, imsi=imsi, subscriber_id=subscriber_id, alias=alias)
        given = [(k, v) for k, v in keys.items() if v is not None]
        if len(given) != 1:
            raise TypeError("find_device takes exactly one of msisdn, imei, imsi, subscriber_id, alias")
        return self._find_device(*given[0])

    @abc.abstractmethod
    def _find_device(self, field: str, value: str) -> Device | None:
        """find_device by one Device field."""

    @abc.abstractmethod
    def select_devices(self, clauses: Iterable[Clause]) -> list[str]:
        """Device ids matching every clause, sorted. SelectorError if invalid."""

    @abc.abstractmethod
    def remember_aliases(self, principal: str, pairs: Iterable[tuple[str, str]]) -> None:
        """Record (alias, device_id) pairs shown to ``principal`` (idempotent)."""

    @abc.abstractmethod
    def device_for_alias(self, principal: str, alias: str) -> str | None:
        """The device behind an alias ``principal`` was given, if any."""

    @abc.abstractmethod
    def known_device_ids(self, device_ids: Iterable[str]) -> set[str]:
        """The subset of ``device_ids`` that are registered (one query per
        batch, for bulk jobs naming many devices)."""

    # --- subscribers --------------------------------------------------------
    @abc.abstractmethod
    def upsert_subscriber(self, subscriber: Subscriber, *, now: datetime | None = None) -> Subscriber: ...

    @abc.abstractmethod
    def get_subscriber(self, subscriber_id: str) -> Subscriber | None:
        """The subscriber with ``devices`` filled in."""

    # --- groups -------------------------------------------------------------
    @abc.abstractmethod
    def define_group(
        self,
        name: str,
        owner: str,
        members: Iterable[str] | None = None,
        selector: Iterable[Clause] | None = None,
        *,
        now: datetime | None = None,
    ) -> int:
        """Create or redefine a group; return its member count now.
        Static groups store members (UnknownDevices if any is unregistered);
        selector groups are resolved each time they are used."""

    @abc.abstractmethod
    def group_members(self, name: str) -> list[str]:
        """Sorted member device ids. NotFound."""

    # --- jobs ---------------------------------------------------------------
    @abc.abstractmethod
    def create_job(
        self,
        job: Job,
        commands: Iterable[Command] = (),
        targets: Iterable[str | JobTarget] = (),
        *,
        now: datetime | None = None,
    ) -> Job:
        """Store a job, its commands and targets atomically; returns the
        stored job (job_id, timestamps, state filled). DuplicateJob,
        ConflictError (e.g. a device listed twice)."""

    @abc.abstractmethod
    def get_job(self, job_id: str) -> Job | None: ...

    @abc.abstractmethod
    def find_job_by_client_id(self, principal: str, client_job_id: str) -> Job | None: ...

    def list_jobs(
        self,
        principal: str | None = None,
        state: str | None = None,
        after: str | None = None,
        limit: int = 50,
        *,
        operation: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> tuple[list[Job], str | None]:
        """Newest first; created_after inclusive, created_before exclusive."""
        equal = _given(principal=principal, state=state, operation=operation)
        return self._list_jobs(equal, created_after, created_before, after, check_limit(limit))

    @abc.abstractmethod
    def _list_jobs(
        self, equal: dict[str, Any], created_after: datetime | None, created_before: datetime | None,
        after: str | None, limit: int,
    ) -> tuple[list[Job], str | None]:
        """list_jobs with ``equal``: Job field -> required value."""

    @abc.abstractmethod
    def job_counts(self, job_id: str) -> dict[str, int]:
        """Targets per state, every TARGET_STATES key present. NotFound."""

    @abc.abstractmethod
    def job_commands(self, job_id: str) -> list[Command]: ...

    @abc.abstractmethod
    def get_target(self, job_id: str, device_id: str) -> JobTarget | None: ...

    @abc.abstractmethod
    def claim_targets(
        self, device_id: str, now: datetime | None = None, *, limit: int | None = None
    ) -> list[WorkItem]:
        """Atomically move the device's due targets (pending, job active,
        inside its window and not expired; oldest job first) to inSession
        (attempts+1, started_at), respecting job concurrency; each WorkItem
        carries the commands the device runs (its own, else the job's)."""

    @abc.abstractmethod
    def wakeable_targets(
        self, now: datetime | None = None, *, after: str | None = None, limit: int = 1000
    ) -> list[WakeTarget]:
        """Due pending targets (as claim_targets takes them), sorted by
        device id, each with its job's free concurrency slots (None: no
        limit); page round the fleet with after=<last device id returned>."""

    @abc.abstractmethod
    def in_session_targets(
        self, started_before: datetime | None = None, *, awaiting_alert: bool = False
    ) -> list[JobTarget]:
        """In-session targets started before ``started_before`` (None: all),
        oldest first: those a session holds (``awaiting_alert`` False) or
        those whose Exec was accepted and which wait for the device's
        Generic Alert (status_code STATUS_AWAITING_ALERT, ``awaiting_alert``
        True). For crash recovery and the lease sweep."""

    @abc.abstractmethod
    def set_target_state(
        self, job_id: str, device_id: str, state: str, *, now: datetime | None = None, **fields: Any
    ) -> bool:
        """The one transition function: set a target's state and result
        fields. Returns True when this call completed the job (its last open
        target became terminal). A change outside TARGET_TRANSITIONS ->
        IllegalTransition (nothing written)."""

    @abc.abstractmethod
    def unannounced_targets(self, job_id: str, limit: int) -> list[str]:
        """Up to ``limit`` device ids, sorted, of the job's targets in a final
        state whose pushes have not been announced yet (see mark_announced).
        Cheap however large the job: only the unannounced backlog is read."""

    @abc.abstractmethod
    def jobs_with_unannounced_targets(self) -> list[str]:
        """Ids, sorted, of jobs with final targets not yet announced (e.g.
        after a restart interrupted a batch of announcements)."""

    @abc.abstractmethod
    def mark_announced(self, job_id: str, device_ids: Iterable[str], *, now: datetime | None = None) -> None:
        """Record that these final targets were announced (their pushes
        enqueued); call it in the transaction that enqueues them.  Targets
        not final, already announced or unknown are left as they are."""

    @abc.abstractmethod
    def add_results(self, job_id: str, device_id: str, items: Iterable[ResultItem]) -> int:
        """Append result items for a target; returns how many. NotFound."""

    def job_results(
        self,
        job_id: str,
        after: str | None = None,
        limit: int = 100,
        *,
        include_unfinished: bool = False,
        unacknowledged_by: str | None = None,
        states: Iterable[str] | None = None,
        device_ids: Iterable[str] | None = None,
    ) -> tuple[list[DeviceResult], str | None]:
        """Targets with their items and the commands they run (their own,
        else the job's), ordered by device_id: finished ones by default,
        every one with include_unfinished, or those in ``states``;
        ``device_ids`` narrows them to those devices (a few at a time).
        A page costs the same few queries whatever its size. NotFound."""
        if states is not None:
            states = list(states)
            bad = set(states) - set(TARGET_STATES)
            if bad or not states:
                raise ValueError(f"bad target state filter {sorted(bad) or states!r}")
        elif not include_unfinished:
            states = list(TARGET_TERMINAL_STATES)
        devices = None if device_ids is None else list(device_ids)
        return self._job_results(job_id, after, check_limit(limit), states, devices, unacknowledged_by)

    @abc.abstractmethod
    def _job_results(
        self, job_id: str, after: str | None, limit: int, states: list[str] | None,
        device_ids: list[str] | None, unacknowledged_by: str | None,
    ) -> tuple[list[DeviceResult], str | None]:
        """job_results of targets in ``states`` (None: every state)."""

    @abc.abstractmethod
    def acknowledge(
        self,
        job_id: str,
        principal: str,
        upto_cursor: str | None = None,
        device_ids: Iterable[str] | None = None,
        *,
        now: datetime | None = None,
    ) -> int:
        """Acknowledge finished results up to a job_results cursor (inclusive),
        for the listed devices, or -- neither given -- every result finished
        so far; returns how many were newly acknowledged. Both given ->
        TypeError; unknown job -> NotFound."""

    @abc.abstractmethod
    def cancel_job(self, job_id: str, *, now: datetime | None = None) -> tuple[int, list[str]]:
        """Cancel every open target, pending or in session (cancellation is
        final: a later outcome cannot reopen it); returns (cancelled_count,
        device ids already finished)."""

    @abc.abstractmethod
    def expire_jobs(self, now: datetime | None = None) -> list[str]:
        """Expire pending targets of active jobs past expires_at/not_after;
        returns the ids of jobs that became expired."""

    # --- outbox -------------------------------------------------------------
    def enqueue_push(
        self,
        principal: str,
        callback_url: str,
        operation: str,
        payload: dict[str, Any],
        *,
        job_id: str | None = None,
        delivery_id: str | None = None,
        now: datetime | None = None,
        stream: str | None = None,
        sequence: int | None = None,
    ) -> str:
        """Queue a push, due now; returns its delivery id. ``stream`` and
        ``sequence`` (both or neither) number the push in its stream (see
        next_push_sequence); a used (stream, sequence) -> ConflictError."""
        if (stream is None) != (sequence is None):
            raise TypeError("enqueue_push takes both stream and sequence, or neither")
        if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 1):
            raise ValueError("sequence must be a positive integer")
        now = now or datetime.now(timezone.utc)
        push = OutboxPush(
            delivery_id=delivery_id or uuid.uuid4().hex, principal=principal, callback_url=callback_url,
            operation=operation, payload=payload, job_id=job_id, created_at=now, next_attempt_at=now,
            stream=stream, sequence=sequence,
        )
        self._insert_push(push)
        return push.delivery_id

    @abc.abstractmethod
    def _insert_push(self, push: OutboxPush) -> None:
        """Write a new push (enqueue_push checked it)."""

    @abc.abstractmethod
    def next_push_sequence(self, stream: str) -> int:
        """1 + the highest sequence enqueued on ``stream`` (1 for a new one).
        Call it and enqueue_push in one transaction(): the number is taken
        only by enqueueing a push with it, and the transaction makes the
        read and the write one atomic step."""

    @abc.abstractmethod
    def reschedule_push(self, delivery_id: str, next_attempt_at: datetime) -> bool:
        """Move a pending push's next attempt without counting an attempt
        (a push held back, not failed). False if it is delivered or
        abandoned. NotFound."""

    @abc.abstractmethod
    def pending_push_count(self, stream: str, *, below_sequence: int | None = None) -> int:
        """Pushes of ``stream`` neither delivered nor abandoned (only those
        numbered below ``below_sequence`` when given)."""

    @abc.abstractmethod
    def due_pushes(self, now: datetime | None = None, limit: int = 100, *,
                   callback_url: str | None = None) -> list[OutboxPush]:
        """Scheduled pushes due at ``now``, earliest first (then in enqueue
        order); only those to ``callback_url`` (one consumer) when given."""

    @abc.abstractmethod
    def due_consumers(self, now: datetime | None = None) -> list[str]:
        """The callback URLs (consumers) with at least one push due at
        ``now``, in URL order; cheap however many pushes each has waiting."""

    @abc.abstractmethod
    def park_pushes(self, callback_url: str, error: str, *, batch: int = 1000) -> int:
        """Park every scheduled push to ``callback_url`` (its consumer stayed
        down too long): not retried any more, ``last_error`` set to
        ``error``, kept for parked_pushes / redeliver_pushes. In transactions
        of at most ``batch`` pushes; returns how many were parked."""

    @abc.abstractmethod
    def parked_pushes(self, *, callback_url: str | None = None, job_id: str | None = None,
                      after: str | None = None, limit: int = 100) -> list[OutboxPush]:
        """Parked pushes (neither delivered nor scheduled: parked, or
        abandoned by mark_failed(..., None)), in enqueue order, filtered by
        consumer and/or job; ``after``: the last delivery id of the previous
        page (NotFound if there is no such push)."""

    @abc.abstractmethod
    def redeliver_pushes(self, *, delivery_ids: Iterable[str] | None = None, callback_url: str | None = None,
                         job_id: str | None = None, now: datetime | None = None,
                         batch: int = 1000) -> dict[str, int]:
        """Schedule parked pushes again, due ``now``, as a new retry series
        (attempts from 0); only parked ones among those selected (ids and/or
        consumer and/or job; at least one selector, else TypeError), in
        transactions of at most ``batch``. Delivery ids, payloads and
        sequences are unchanged. Returns {callback URL: pushes redelivered}."""

    @abc.abstractmethod
    def get_push(self, delivery_id: str) -> OutboxPush | None: ...

    @abc.abstractmethod
    def mark_delivered(self, delivery_id: str, *, now: datetime | None = None) -> None: ...

    @abc.abstractmethod
    def mark_failed(self, delivery_id: str, error: str, next_attempt_at: datetime | None) -> None:
        """Record a failed attempt; next_attempt_at=None abandons (parks) the
        push. Ignored for a push delivered or parked meanwhile. NotFound."""

    # --- transaction log (append-only) -------------------------------------
    @abc.abstractmethod
    def append_log(self, entry: LogEntry) -> int: ...

    def query_log(
        self,
        job_id: str | None = None,
        device_id: str | None = None,
        principal: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        after: str | None = None,
        limit: int = 100,
        *,
        operation: str | None = None,
        success: bool | None = None,
        subscriber_id: str | None = None,
    ) -> tuple[list[LogEntry], str | None]:
        """Oldest first; since inclusive, until exclusive."""
        equal = _given(job_id=job_id, device_id=device_id, principal=principal, operation=operation,
                       subscriber_id=subscriber_id, success=None if success is None else bool(success))
        return self._query_log(equal, since, until, after, check_limit(limit))

    @abc.abstractmethod
    def _query_log(
        self, equal: dict[str, Any], since: datetime | None, until: datetime | None, after: str | None,
        limit: int,
    ) -> tuple[list[LogEntry], str | None]:
        """query_log with ``equal``: LogEntry field -> required value."""


def check_limit(limit: int) -> int:
    """A page size: a positive integer (ValueError otherwise)."""
    if not isinstance(limit, int) or limit < 1:
        raise ValueError("limit must be a positive integer")
    return limit


def _given(**filters: Any) -> dict[str, Any]:
    """The filters a caller gave (None: not filtered on)."""
    return {k: v for k, v in filters.items() if v is not None}
