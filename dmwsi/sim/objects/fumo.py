"""FUMO (``./FUMO/<pkg>``, §12): firmware download and update, run by a scripted state machine.

``FumoStateMachine`` answers Exec on Download, Update and DownloadAndUpdate
with 202, moves State as the injected clock advances (``poll()``) and
produces the Generic Alert that reports the result.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Callable

from dmwsi.sim.objects.alerts import AlertMarks, generic_alert, succeeded
from dmwsi.sim.objects.devdetail import DEVDETAIL_FWV_URI
from dmwsi.sim.objects.profile import DeviceProfile, full_rights_acl
from dmwsi.sim.tree import EXECUTABLE, READ_REPLACE, REPLACE_ONLY, DMTree, ExecRequest, Status, parse_uri

MO_FUMO = "urn:oma:mo:oma-fumo:1.0"
FUMO_URI = "./FUMO"
FUMO_ALERT_TYPE_PREFIX = "org.openmobilealliance.dm.firmwareupdate."


def build_fumo(tree: DMTree, profile: DeviceProfile) -> str:
    """``./FUMO/<pkg>`` per §12.1; returns the FUMO MO URI."""
    tree.create_interior(FUMO_URI, acl=full_rights_acl(profile.server_id))
    mo = f"{FUMO_URI}/{profile.fumo_package}"
    tree.create_interior(mo, type=MO_FUMO)
    tree.create_leaf(f"{mo}/PkgName", "")
    tree.create_leaf(f"{mo}/PkgVersion", "")
    for operation in ("Download", "Update", "DownloadAndUpdate"):
        tree.create_interior(f"{mo}/{operation}", access=EXECUTABLE)
    tree.create_leaf(f"{mo}/Download/PkgURL", "", access=READ_REPLACE)
    tree.create_leaf(f"{mo}/Update/PkgData", b"", format="bin", type="application/octet-stream",
                     access=REPLACE_ONLY)
    tree.create_leaf(f"{mo}/DownloadAndUpdate/PkgURL", "", access=READ_REPLACE)
    tree.create_leaf(f"{mo}/State", str(int(FumoState.IDLE)), format="int")
    tree.create_interior(f"{mo}/Ext")
    return mo


class FumoState(IntEnum):
    IDLE = 10
    DOWNLOAD_FAILED = 20
    DOWNLOAD_PROGRESSING = 30
    DOWNLOAD_COMPLETE = 40
    READY_TO_UPDATE = 50
    UPDATE_PROGRESSING = 60
    UPDATE_FAILED_HAVE_DATA = 70
    UPDATE_FAILED_NO_DATA = 80
    UPDATE_SUCCESSFUL_HAVE_DATA = 90
    UPDATE_SUCCESSFUL_NO_DATA = 100


FUMO_BUSY_STATES = frozenset({FumoState.DOWNLOAD_PROGRESSING, FumoState.UPDATE_PROGRESSING})
FUMO_PACKAGE_PRESENT_STATES = frozenset({FumoState.DOWNLOAD_COMPLETE, FumoState.READY_TO_UPDATE})
FUMO_RESULT_SUCCESS = 200
FUMO_RESULT_BAD_URL = 411


@dataclass(frozen=True)
class FumoScript:
    """Scripted behaviour of one firmware update (durations in clock seconds)."""

    download_seconds: float = 5.0
    update_seconds: float = 10.0
    download_result: int = FUMO_RESULT_SUCCESS
    update_result: int = FUMO_RESULT_SUCCESS
    # Terminal states 90/70 (package kept) instead of 100/80.
    keep_package_after_update: bool = False
    # On success, written to PkgVersion and ./DevDetail/FwV when set.
    new_firmware_version: str | None = None
    # §12.3 [?]: alert Source is the executed node ("operation") or the MO root ("mo").
    alert_source: str = "operation"
    marks: AlertMarks = AlertMarks()


@dataclass
class _FumoJob:
    operation: str
    exec_uri: str
    correlator: str | None
    phase: str  # "download" or "update"
    due: float
    download_result: int


class FumoStateMachine:
    """Executes FUMO Download / Update / DownloadAndUpdate (§12.2–12.4).

    Exec answers 202 and starts the job; 405 when an operation is already in
    progress (State 30/60) or, for Update, when no package is present (neither
    State 40/50 nor Update/PkgData). ``poll()`` advances the job according to
    the clock and returns the Generic Alert produced when it ends.
    """

    def __init__(self, tree: DMTree, mo_uri: str, clock: Callable[[], float],
                 script: FumoScript = FumoScript()) -> None:
        self.tree = tree
        self.mo_uri = mo_uri
        self.script = script
        self._clock = clock
        self._job: _FumoJob | None = None
        self.history: list[int] = [self.state]
        for operation in ("Download", "Update", "DownloadAndUpdate"):
            tree.register_exec(f"{mo_uri}/{operation}", self._exec)

    @property
    def state(self) -> int:
        return int(str(self.tree.read_value(f"{self.mo_uri}/State")))

    def _enter(self, state: FumoState) -> None:
        self.tree.set_value(f"{self.mo_uri}/State", str(int(state)))
        self.history.append(int(state))

    def _exec(self, request: ExecRequest) -> int:
        operation = parse_uri(request.uri).segments[-1]
        if self.state in FUMO_BUSY_STATES:
            return Status.COMMAND_NOT_ALLOWED
        now = self._clock()
        if operation == "Update":
            has_pushed_package = bool(self.tree.read_value(f"{self.mo_uri}/Update/PkgData"))
            if self.state not in FUMO_PACKAGE_PRESENT_STATES and not has_pushed_package:
                return Status.COMMAND_NOT_ALLOWED
            self._start_update()
            self._job = _FumoJob(operation, request.uri, request.correlator, "update",
                                 now + self.script.update_seconds, FUMO_RESULT_SUCCESS)
            return Status.ACCEPTED_FOR_PROCESSING
        url = self.tree.read_value(f"{request.uri}/PkgURL")
        download_result = self.script.download_result if url else FUMO_RESULT_BAD_URL
        self._enter(FumoState.DOWNLOAD_PROGRESSING)
        self._job = _FumoJob(operation, request.uri, request.correlator, "download",
                             now + self.script.download_seconds, download_result)
        return Status.ACCEPTED_FOR_PROCESSING

    def _start_update(self) -> None:
        if self.state != FumoState.READY_TO_UPDATE:
            self._enter(FumoState.READY_TO_UPDATE)
        self._enter(FumoState.UPDATE_PROGRESSING)

    def poll(self) -> list[dict[str, str | None]]:
        """Advance the running job to the current clock time; return finished alerts."""
        alerts = []
        now = self._clock()
        while self._job is not None and self._job.due <= now:
            alert = self._advance(self._job)
            if alert is not None:
                alerts.append(alert)
        return alerts

    def _advance(self, job: _FumoJob) -> dict[str, str | None] | None:
        if job.phase == "download":
            if not succeeded(job.download_result, FUMO_RESULT_SUCCESS):
                self._enter(FumoState.DOWNLOAD_FAILED)
                return self._finish(job, job.download_result)
            self._enter(FumoState.DOWNLOAD_COMPLETE)
            if job.operation == "Download":
                return self._finish(job, job.download_result)
            self._start_update()
            job.phase = "update"
            job.due += self.script.update_seconds
            return None
        result = self.script.update_result
        keep = self.script.keep_package_after_update
        if succeeded(result, FUMO_RESULT_SUCCESS):
            self._enter(FumoState.UPDATE_SUCCESSFUL_HAVE_DATA if keep else FumoState.UPDATE_SUCCESSFUL_NO_DATA)
            if self.script.new_firmware_version is not None:
                self.tree.set_value(f"{self.mo_uri}/PkgVersion", self.script.new_firmware_version)
                if self.tree.exists(DEVDETAIL_FWV_URI):
                    self.tree.set_value(DEVDETAIL_FWV_URI, self.script.new_firmware_version)
        else:
            self._enter(FumoState.UPDATE_FAILED_HAVE_DATA if keep else FumoState.UPDATE_FAILED_NO_DATA)
        if not keep:
            self.tree.set_value(f"{self.mo_uri}/Update/PkgData", b"")
        return self._finish(job, result)

    def _finish(self, job: _FumoJob, result: int) -> dict[str, str | None]:
        self._job = None
        marks = self.script.marks
        return generic_alert(
            FUMO_ALERT_TYPE_PREFIX + job.operation.lower(),
            job.exec_uri if self.script.alert_source == "operation" else self.mo_uri,
            str(result),
            format="int",
            mark=marks.success if succeeded(result, FUMO_RESULT_SUCCESS) else marks.failure,
            correlator=job.correlator,
        )
