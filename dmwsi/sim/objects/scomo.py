"""SCOMO (``./SCOMO``, §13): software components downloaded, installed, removed, (de)activated.

``ScomoStateMachine`` prepares the nodes the server adds under Download/ and
Inventory/Delivered/, answers Exec on their operations with 202, moves
Status/State as the injected clock advances (``poll()``), fills the inventory
and produces the OperationComplete Generic Alerts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Callable, Mapping

from dmwsi.sim.objects.alerts import AlertMarks, generic_alert, succeeded
from dmwsi.sim.objects.profile import DeviceProfile, full_rights_acl
from dmwsi.sim.tree import (DYNAMIC_INTERIOR_ACCESS, EXECUTABLE, GROWABLE, READ_REPLACE, REPLACE_ONLY, DMTree,
                            ExecRequest, Status, join_uri, parse_uri)

MO_SCOMO = "urn:oma:mo:oma-scomo:1.0"
SCOMO_URI = "./SCOMO"
# §13.3 [?]: SCOMO 1.0 final; older drafts used
# "org.openmobilealliance.dm.softwarecomponent.OperationComplete".
SCOMO_ALERT_TYPE = "urn:oma:at:scomo:1.0:OperationComplete"

SCOMO_DOWNLOAD_OPERATIONS = ("Download", "DownloadInstall", "DownloadInstallInactive")
SCOMO_DELIVERED_OPERATIONS = ("Install", "InstallInactive", "Remove")
SCOMO_DEPLOYED_OPERATIONS = ("Activate", "Deactivate", "Remove")


def build_scomo(tree: DMTree, profile: DeviceProfile) -> str:
    """``./SCOMO`` per §13.1 with the profile's installed components."""
    tree.create_interior(SCOMO_URI, type=MO_SCOMO, acl=full_rights_acl(profile.server_id))
    tree.create_interior(f"{SCOMO_URI}/Download", access=GROWABLE)
    tree.create_interior(f"{SCOMO_URI}/Inventory")
    tree.create_interior(f"{SCOMO_URI}/Inventory/Delivered", access=GROWABLE)
    tree.create_interior(f"{SCOMO_URI}/Inventory/Deployed")
    tree.create_interior(f"{SCOMO_URI}/Ext")
    for component in profile.components:
        create_deployed_component(tree, SCOMO_URI, component.id, pkg_id_ref=component.id,
                                  name=component.name, description=component.description,
                                  version=component.version, active=component.active, permanent=True)
    return SCOMO_URI


def create_deployed_component(
    tree: DMTree,
    scomo_uri: str,
    node_name: str,
    *,
    pkg_id_ref: str,
    name: str,
    description: str,
    version: str,
    active: bool,
    permanent: bool,
) -> str:
    component = join_uri(parse_uri(scomo_uri).segments + ("Inventory", "Deployed", node_name))
    tree.create_interior(component, permanent=permanent)
    for leaf, value in (("ID", node_name), ("PkgIDRef", pkg_id_ref), ("Name", name),
                        ("Description", description), ("Version", version)):
        tree.create_leaf(f"{component}/{leaf}", value, permanent=permanent)
    state = DeployedState.ACTIVE if active else DeployedState.INACTIVE
    tree.create_leaf(f"{component}/State", str(int(state)), format="int", permanent=permanent)
    tree.create_leaf(f"{component}/Status", str(int(DeployedStatus.IDLE)), format="int", permanent=permanent)
    _create_operations(tree, component, SCOMO_DEPLOYED_OPERATIONS, permanent=permanent)
    return component


def _create_operations(tree: DMTree, parent: str, operations: tuple[str, ...], *, permanent: bool) -> None:
    tree.create_interior(f"{parent}/Operations", permanent=permanent)
    for operation in operations:
        tree.create_interior(f"{parent}/Operations/{operation}", access=EXECUTABLE, permanent=permanent)


class DownloadStatus(IntEnum):
    IDLE = 10
    DOWNLOAD_FAILED = 20
    DOWNLOAD_PROGRESSING = 30
    DOWNLOAD_COMPLETE = 40
    INSTALL_PROGRESSING = 50
    INSTALL_FAILED_WITH_DATA = 60
    INSTALL_FAILED_WITHOUT_DATA = 70


class DeliveredStatus(IntEnum):
    IDLE = 10
    REMOVE_FAILED = 20
    REMOVE_PROGRESSING = 30
    INSTALL_PROGRESSING = 40
    INSTALL_FAILED_WITH_DATA = 50


class DeliveredState(IntEnum):
    DELIVERED = 10
    INSTALLED = 20


class DeployedStatus(IntEnum):
    IDLE = 10
    REMOVE_FAILED = 20
    REMOVE_PROGRESSING = 30
    ACTIVATE_FAILED = 40
    ACTIVATE_PROGRESSING = 50
    DEACTIVATE_FAILED = 60
    DEACTIVATE_PROGRESSING = 70


class DeployedState(IntEnum):
    INACTIVE = 10
    ACTIVE = 20


SCOMO_RESULT_SUCCESS = 1200
# Result codes that end a Download* operation during its download phase.
SCOMO_DOWNLOAD_FAILURE_RESULTS = frozenset({1402, 1403, 1404, 1500, 1501} | set(range(1550, 1600)))


@dataclass(frozen=True)
class ScomoScript:
    """Scripted SCOMO behaviour; ``results`` maps an operation name to its result code."""

    download_seconds: float = 5.0
    install_seconds: float = 5.0
    remove_seconds: float = 1.0
    activation_seconds: float = 1.0
    results: Mapping[str, int] = field(default_factory=dict)
    installed_version: str = "1.0"
    alert_type: str = SCOMO_ALERT_TYPE
    # §13.3 [?]: implementations send "xml" or "text/plain".
    alert_format: str = "xml"
    marks: AlertMarks = AlertMarks()


@dataclass
class _ScomoJob:
    operation: str
    exec_uri: str
    item_uri: str  # Download/<pkg>, Inventory/Delivered/<pkg> or Inventory/Deployed/<c>
    correlator: str | None
    phase: str  # "download", "install", "remove", "activation"
    due: float


class ScomoStateMachine:
    """Executes SCOMO operations (§13): Download*, Install*, Remove, (De)Activate.

    Nodes the server adds under ``Download/`` or ``Inventory/Delivered/`` get
    their Status/State and Operations children from the device. Exec answers
    202 (405 while the same item has an operation running); ``poll()`` moves
    Status/State values, fills the inventory and returns OperationComplete
    alerts with Source = executed node and Target = resulting component.
    """

    def __init__(self, tree: DMTree, scomo_uri: str, clock: Callable[[], float],
                 script: ScomoScript = ScomoScript()) -> None:
        self.tree = tree
        self.scomo_uri = scomo_uri
        self.script = script
        self._clock = clock
        self._jobs: list[_ScomoJob] = []
        tree.on_add(f"{scomo_uri}/Download/*", self._prepare_download_entry)
        tree.on_add(f"{scomo_uri}/Inventory/Delivered/*", self._prepare_delivered_entry)
        for operation in SCOMO_DOWNLOAD_OPERATIONS:
            tree.register_exec(f"{scomo_uri}/Download/*/Operations/{operation}", self._exec)
        for operation in SCOMO_DELIVERED_OPERATIONS:
            tree.register_exec(f"{scomo_uri}/Inventory/Delivered/*/Operations/{operation}", self._exec)
        for operation in SCOMO_DEPLOYED_OPERATIONS:
            tree.register_exec(f"{scomo_uri}/Inventory/Deployed/*/Operations/{operation}", self._exec)

    # ----------------------------------------------------------- tree preparation

    def _prepare_download_entry(self, uri: str) -> None:
        if self.tree.node(uri).is_interior:
            self.tree.create_leaf(f"{uri}/Status", str(int(DownloadStatus.IDLE)), format="int", permanent=False)
            _create_operations(self.tree, uri, SCOMO_DOWNLOAD_OPERATIONS, permanent=False)

    def _prepare_delivered_entry(self, uri: str) -> None:
        if not self.tree.node(uri).is_interior:
            return
        if not self.tree.exists(f"{uri}/Data"):
            self.tree.create_leaf(f"{uri}/Data", b"", format="bin", type="application/octet-stream",
                                  access=REPLACE_ONLY, permanent=False)
        self.tree.create_leaf(f"{uri}/Status", str(int(DeliveredStatus.IDLE)), format="int", permanent=False)
        self.tree.create_leaf(f"{uri}/State", str(int(DeliveredState.DELIVERED)), format="int",
                              permanent=False)
        _create_operations(self.tree, uri, SCOMO_DELIVERED_OPERATIONS, permanent=False)

    # ----------------------------------------------------------- exec

    def _exec(self, request: ExecRequest) -> int:
        segments = parse_uri(request.uri).segments
        operation = segments[-1]
        item_uri = join_uri(segments[:-2])
        if any(job.item_uri == item_uri for job in self._jobs):
            return Status.COMMAND_NOT_ALLOWED
        collection = segments[-4]
        now = self._clock()
        if collection == "Download":
            self._set_status(item_uri, DownloadStatus.DOWNLOAD_PROGRESSING)
            phase, due = "download", now + self.script.download_seconds
        elif operation == "Remove":
            self._set_status(item_uri, DeliveredStatus.REMOVE_PROGRESSING
                             if collection == "Delivered" else DeployedStatus.REMOVE_PROGRESSING)
            phase, due = "remove", now + self.script.remove_seconds
        elif collection == "Delivered":
            self._set_status(item_uri, DeliveredStatus.INSTALL_PROGRESSING)
            phase, due = "install", now + self.script.install_seconds
        else:
            self._set_status(item_uri, DeployedStatus.ACTIVATE_PROGRESSING
                             if operation == "Activate" else DeployedStatus.DEACTIVATE_PROGRESSING)
            phase, due = "activation", now + self.script.activation_seconds
        self._jobs.append(_ScomoJob(operation, request.uri, item_uri, request.correlator, phase, due))
        return Status.ACCEPTED_FOR_PROCESSING

    def _set_status(self, item_uri: str, status: IntEnum) -> None:
        self.tree.set_value(f"{item_uri}/Status", str(int(status)))

    # ----------------------------------------------------------- progress

    def poll(self) -> list[dict[str, str | None]]:
        """Advance running operations to the current clock time; return finished alerts."""
        alerts = []
        now = self._clock()
        while True:
            due_jobs = sorted((job for job in self._jobs if job.due <= now), key=lambda job: job.due)
            if not due_jobs:
                return alerts
            alert = self._advance(due_jobs[0])
            if alert is not None:
                alerts.append(alert)

    def _result(self, operation: str) -> int:
        return self.script.results.get(operation, SCOMO_RESULT_SUCCESS)

    def _advance(self, job: _ScomoJob) -> dict[str, str | None] | None:
        result = self._result(job.operation)
        failed = not succeeded(result, SCOMO_RESULT_SUCCESS)
        if job.phase == "download":
            return self._finish_download_phase(job, result)
        if job.phase == "install":
            if failed:
                self._set_status(job.item_uri, DownloadStatus.INSTALL_FAILED_WITHOUT_DATA
                                 if job.operation.startswith("Download") else DeliveredStatus.INSTALL_FAILED_WITH_DATA)
                return self._finish(job, result, target=job.item_uri)
            return self._finish(job, result, target=self._install(job))
        if job.phase == "remove":
            if failed:
                in_delivered = parse_uri(job.item_uri).segments[-2] == "Delivered"
                self._set_status(job.item_uri, DeliveredStatus.REMOVE_FAILED
                                 if in_delivered else DeployedStatus.REMOVE_FAILED)
            else:
                self.tree.remove_node(job.item_uri)
            return self._finish(job, result, target=job.item_uri)
        if failed:
            self._set_status(job.item_uri, DeployedStatus.ACTIVATE_FAILED
                             if job.operation == "Activate" else DeployedStatus.DEACTIVATE_FAILED)
        else:
            state = DeployedState.ACTIVE if job.operation == "Activate" else DeployedState.INACTIVE
            self.tree.set_value(f"{job.item_uri}/State", str(int(state)))
            self._set_status(job.item_uri, DeployedStatus.IDLE)
        return self._finish(job, result, target=job.item_uri)

    def _finish_download_phase(self, job: _ScomoJob, result: int) -> dict[str, str | None] | None:
        download_failed = result in SCOMO_DOWNLOAD_FAILURE_RESULTS or (
            job.operation == "Download" and not succeeded(result, SCOMO_RESULT_SUCCESS))
        if download_failed:
            self._set_status(job.item_uri, DownloadStatus.DOWNLOAD_FAILED)
            return self._finish(job, result, target=job.item_uri)
        if job.operation == "Download":
            self._set_status(job.item_uri, DownloadStatus.DOWNLOAD_COMPLETE)
            return self._finish(job, result, target=self._deliver(job.item_uri))
        self._set_status(job.item_uri, DownloadStatus.INSTALL_PROGRESSING)
        job.phase = "install"
        job.due += self.script.install_seconds
        return None

    def _package_leaf(self, item_uri: str, leaf: str, default: str) -> str:
        uri = f"{item_uri}/{leaf}"
        return str(self.tree.read_value(uri)) if self.tree.exists(uri) else default

    def _deliver(self, download_uri: str) -> str:
        """Create Inventory/Delivered/<pkg> from a downloaded package."""
        name = parse_uri(download_uri).segments[-1]
        delivered = join_uri(parse_uri(self.scomo_uri).segments + ("Inventory", "Delivered", name))
        if self.tree.exists(delivered):
            self.tree.remove_node(delivered)
        self.tree.create_interior(delivered, access=DYNAMIC_INTERIOR_ACCESS, permanent=False)
        for leaf, default in (("PkgID", name), ("Name", name), ("Description", "")):
            self.tree.create_leaf(f"{delivered}/{leaf}", self._package_leaf(download_uri, leaf, default),
                                  access=READ_REPLACE, permanent=False)
        self._prepare_delivered_entry(delivered)
        return delivered

    def _install(self, job: _ScomoJob) -> str:
        """Create (or replace) Inventory/Deployed/<pkg> for a finished install."""
        name = parse_uri(job.item_uri).segments[-1]
        deployed = join_uri(parse_uri(self.scomo_uri).segments + ("Inventory", "Deployed", name))
        if self.tree.exists(deployed):
            self.tree.remove_node(deployed)
        component = create_deployed_component(
            self.tree, self.scomo_uri, name,
            pkg_id_ref=self._package_leaf(job.item_uri, "PkgID", name),
            name=self._package_leaf(job.item_uri, "Name", name),
            description=self._package_leaf(job.item_uri, "Description", ""),
            version=self.script.installed_version,
            active=not job.operation.endswith("Inactive"),
            permanent=False,
        )
        if job.operation.startswith("Download"):
            self._set_status(job.item_uri, DownloadStatus.IDLE)
        else:
            self.tree.set_value(f"{job.item_uri}/State", str(int(DeliveredState.INSTALLED)))
            self._set_status(job.item_uri, DeliveredStatus.IDLE)
        return component

    def _finish(self, job: _ScomoJob, result: int, *, target: str) -> dict[str, str | None]:
        self._jobs.remove(job)
        identifier = parse_uri(target).segments[-1]
        data = f"<ResultCode>{result}</ResultCode><Identifier>{identifier}</Identifier>"
        marks = self.script.marks
        return generic_alert(self.script.alert_type, job.exec_uri, data, format=self.script.alert_format,
                             mark=marks.success if succeeded(result, SCOMO_RESULT_SUCCESS) else marks.failure,
                             correlator=job.correlator, target=target)
