"""What the DM session engine exchanges with the rest of the server.

The engine knows nothing about jobs, SOAP or storage: it asks a ``Backend``
for a device's account and pending work, and hands back what the device
answered. ``dmwsi.jobs.backend`` implements it on the store. Commands and
returned items are the records every layer uses (``dmwsi.records.Command``,
``dmwsi.records.ResultItem``): one record per concept, no translation.
"""
from dataclasses import dataclass, field
from typing import Protocol

ACTIONS = ("Add", "Replace", "Delete", "Get", "Exec", "Copy")


@dataclass
class DeviceAccount:
    """A device's DM credentials as the server holds them (DMAcc mirror)."""
    device_id: str
    auth_scheme: str            # "basic" | "md5" | "hmac"
    client_username: str
    client_password: str
    server_id: str
    server_password: str
    client_nonce: bytes = b""   # issued by the server; the device's next Cred/HMAC uses it
    server_nonce: bytes = b""   # issued by the device; the server's Cred and package 0 use it


@dataclass
class WorkUnit:
    """The commands one job wants run on one device, in one session."""
    job_id: str
    commands: list              # dmwsi.records.Command, values as text, Exec correlators as sent
    atomic: bool = False
    sequence: bool = False      # wrap in a DM Sequence (ignored when atomic)
    customer_care: bool = False
    # SetDeviceData: "Replace, or Add when the node does not exist": a Replace
    # the device answers 404 is sent again as an Add (not inside an Atomic).
    add_if_missing: bool = False


@dataclass
class CommandOutcome:
    seq: int
    status: int | None = None           # None: the device never answered it
    results: list = field(default_factory=list)    # dmwsi.records.ResultItem (uri, value, format, type)
    # A failure the status alone does not tell (a large object's chunk answered
    # without 213): a per-device error code of dmwsi.errors.CODES, and why.
    error: str | None = None
    detail: str | None = None
    # (action, status) of earlier tries in this session: the Replace's 404
    # before the Add that took its place. ``status`` is the last try's.
    earlier: list = field(default_factory=list)

    @property
    def failed(self):
        return self.error is not None or not 200 <= self.status < 300


@dataclass
class GenericAlert:
    """A device-originated alert (1226 Generic Alert, 1224 client event)."""
    code: int
    correlator: str | None
    source: str | None
    target: str | None
    type: str | None
    format: str | None
    mark: str | None
    data: str | None


class Backend(Protocol):
    def account(self, device_id: str) -> DeviceAccount | None:
        """The device's account, or None if the device is not registered."""

    def device_seen(self, device_id: str, devinfo: dict) -> DeviceAccount | None:
        """Record DevInfo from package 1; register an unknown device when policy
        allows (returning its new account), else return None."""

    def save_nonces(self, device_id: str, client_nonce: bytes | None = None,
                    server_nonce: bytes | None = None) -> None:
        """Persist nonces so the next session (and package 0) can use them."""

    def claim_work(self, device_id: str) -> list:
        """Pending WorkUnits for the device, now marked in session."""

    def unit_finished(self, device_id: str, unit: WorkUnit, outcomes: list) -> None:
        """Every command of ``unit`` has a status: record them and their results."""

    def unit_interrupted(self, device_id: str, unit: WorkUnit, reason: str) -> None:
        """The session ended before ``unit`` finished: requeue or fail it."""

    def device_alert(self, device_id: str, alert: GenericAlert) -> int:
        """A Generic Alert or client event; returns the DM status to answer."""
