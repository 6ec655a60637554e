"""Standard management objects of the simulated device and their executors.

Builders create DevInfo, DevDetail, DMAcc (1.2 layout), FUMO, SCOMO, a
DiagMon subtree (the reference's §14 proposal) and a vendor ``./Ext`` area in
a ``DMTree`` from a device-profile dict. ``FumoStateMachine``,
``ScomoStateMachine`` and ``DiagMonRunner`` register Exec handlers that answer
202 and later, driven by an injected clock through ``poll()``, update the tree
and produce Generic Alert (1226) description dicts (reference §12, §13, §15)::

    {"type": ..., "source": uri, "target": uri | None, "format": ...,
     "mark": ..., "data": str, "correlator": str | None}
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

from lxml import etree

from dmwsi.sim.tree import (
    DYNAMIC_INTERIOR_ACCESS,
    EXECUTABLE,
    GROWABLE,
    READ_REPLACE,
    REPLACE_ONLY,
    DMTree,
    ExecRequest,
    Status,
    TreeConfig,
    join_uri,
    parse_uri,
)

MO_DEVINFO = "urn:oma:mo:oma-dm-devinfo:1.0"
MO_DEVDETAIL = "urn:oma:mo:oma-dm-devdetail:1.0"
MO_DMACC = "urn:oma:mo:oma-dm-dmacc:1.0"
MO_FUMO = "urn:oma:mo:oma-fumo:1.0"
MO_SCOMO = "urn:oma:mo:oma-scomo:1.0"
MO_DIAGMON = "urn:oma:mo:oma-diagmon:1.0"
MO_SIMULATOR_EXT = "urn:dmwsi:mo:simulator-ext:1.0"

DEVINFO_URI = "./DevInfo"
DEVDETAIL_URI = "./DevDetail"
DEVDETAIL_FWV_URI = "./DevDetail/FwV"
DMACC_URI = "./DMAcc"
FUMO_URI = "./FUMO"
SCOMO_URI = "./SCOMO"
EXT_URI = "./Ext"
EXT_BATTERY_LEVEL_URI = "./Ext/Battery/Level"
EXT_FREE_MEMORY_URI = "./Ext/Memory/Free"
EXT_RADIO_SIGNAL_URI = "./Ext/Radio/Signal"
EXT_PRIVATE_URI = "./Ext/Private"

AUTH_SCHEME_TO_AAUTH_TYPE = {"md5": "DIGEST", "digest": "DIGEST", "basic": "BASIC", "hmac": "HMAC"}
CLIENT_CREDENTIALS = "CLCRED"
SERVER_CREDENTIALS = "SRVCRED"

FUMO_ALERT_TYPE_PREFIX = "org.openmobilealliance.dm.firmwareupdate."
# §13.3 [?]: SCOMO 1.0 final; older drafts used
# "org.openmobilealliance.dm.softwarecomponent.OperationComplete".
SCOMO_ALERT_TYPE = "urn:oma:at:scomo:1.0:OperationComplete"
# §14 [?]: written by analogy with SCOMO.
DIAGMON_ALERT_TYPE = "urn:oma:at:diagmon:1.0:OperationComplete"


# --------------------------------------------------------------------------- profile


@dataclass(frozen=True)
class InstalledComponent:
    id: str
    name: str
    version: str
    description: str = ""
    active: bool = True


@dataclass(frozen=True)
class DeviceProfile:
    dev_id: str
    man: str
    mod: str
    fwv: str
    swv: str
    hwv: str
    lang: str
    dmv: str
    server_id: str
    server_password: str
    client_user: str
    client_password: str
    auth_scheme: str
    server_address: str = "http://localhost:8080/dm"
    server_name: str = ""
    dev_type: str = "phone"
    oem: str = ""
    large_objects: bool = True
    fumo_package: str = "pkg1"
    battery_level: int = 100
    free_memory: int = 512 * 1024 * 1024
    signal_dbm: int = -70
    components: tuple[InstalledComponent, ...] = ()

    @classmethod
    def from_dict(cls, profile: Mapping[str, Any]) -> DeviceProfile:
        values = dict(profile)
        values["components"] = tuple(InstalledComponent(**item) for item in values.get("components", ()))
        if values["auth_scheme"].lower() not in AUTH_SCHEME_TO_AAUTH_TYPE:
            raise ValueError(f"unknown auth_scheme {values['auth_scheme']!r}")
        return cls(**values)

    @property
    def aauth_type(self) -> str:
        return AUTH_SCHEME_TO_AAUTH_TYPE[self.auth_scheme.lower()]


def full_rights_acl(server_id: str) -> str:
    return f"Add={server_id}&Delete={server_id}&Exec={server_id}&Get={server_id}&Replace={server_id}"


def generic_alert(
    alert_type: str,
    source: str,
    data: str,
    *,
    format: str,
    mark: str,
    correlator: str | None,
    target: str | None = None,
) -> dict[str, str | None]:
    """Description of one Generic Alert (1226) Item for the session layer (§15)."""
    return {"type": alert_type, "source": source, "target": target, "format": format,
            "mark": mark, "data": data, "correlator": correlator}


@dataclass(frozen=True)
class AlertMarks:
    """Mark values [?] (§15); the simulator convention is informational/critical."""

    success: str = "informational"
    failure: str = "critical"


# --------------------------------------------------------------------------- builders


def build_devinfo(tree: DMTree, profile: DeviceProfile) -> str:
    tree.create_interior(DEVINFO_URI, type=MO_DEVINFO, acl="Get=*")
    for name, value in (("DevId", profile.dev_id), ("Man", profile.man), ("Mod", profile.mod),
                        ("DmV", profile.dmv), ("Lang", profile.lang)):
        tree.create_leaf(f"{DEVINFO_URI}/{name}", value)
    tree.create_interior(f"{DEVINFO_URI}/Ext")
    return DEVINFO_URI


def build_devdetail(tree: DMTree, profile: DeviceProfile) -> str:
    """DevDetail; the URI limits are those the tree enforces (``tree.config``)."""
    tree.create_interior(DEVDETAIL_URI, type=MO_DEVDETAIL, acl=full_rights_acl(profile.server_id))
    tree.create_interior(f"{DEVDETAIL_URI}/URI")
    for name, limit in (("MaxDepth", tree.config.max_depth), ("MaxTotLen", tree.config.max_total_length),
                        ("MaxSegLen", tree.config.max_segment_length)):
        tree.create_leaf(f"{DEVDETAIL_URI}/URI/{name}", str(limit))
    for name, value in (("DevTyp", profile.dev_type), ("OEM", profile.oem or profile.man),
                        ("FwV", profile.fwv), ("SwV", profile.swv), ("HwV", profile.hwv)):
        tree.create_leaf(f"{DEVDETAIL_URI}/{name}", value)
    tree.create_leaf(f"{DEVDETAIL_URI}/LrgObj", "true" if profile.large_objects else "false", format="bool")
    tree.create_interior(f"{DEVDETAIL_URI}/Ext")
    return DEVDETAIL_URI


def build_dmacc(tree: DMTree, profile: DeviceProfile) -> str:
    """DMAcc 1.2 account for the profile's server; returns the account URI."""
    if not tree.exists(DMACC_URI):
        tree.create_interior(DMACC_URI, access=GROWABLE, acl=full_rights_acl(profile.server_id))
    account = join_uri(parse_uri(DMACC_URI).segments + (profile.server_id,))
    tree.create_interior(account, type=MO_DMACC, access=READ_REPLACE)
    tree.create_leaf(f"{account}/AppID", "w7")
    tree.create_leaf(f"{account}/ServerID", profile.server_id, access=READ_REPLACE)
    tree.create_leaf(f"{account}/Name", profile.server_name or profile.server_id, access=READ_REPLACE)
    tree.create_leaf(f"{account}/PrefConRef", "", access=READ_REPLACE)
    address = urlsplit(profile.server_address)
    default_port = 443 if address.scheme == "https" else 80
    tree.create_interior(f"{account}/AppAddr", access=GROWABLE)
    tree.create_interior(f"{account}/AppAddr/1", access=READ_REPLACE)
    tree.create_leaf(f"{account}/AppAddr/1/Addr", profile.server_address, access=READ_REPLACE)
    tree.create_leaf(f"{account}/AppAddr/1/AddrType", "URI", access=READ_REPLACE)
    tree.create_interior(f"{account}/AppAddr/1/Port", access=GROWABLE)
    tree.create_interior(f"{account}/AppAddr/1/Port/1", access=READ_REPLACE)
    tree.create_leaf(f"{account}/AppAddr/1/Port/1/PortNbr", str(address.port or default_port),
                     access=READ_REPLACE)
    tree.create_leaf(f"{account}/AAuthPref", profile.aauth_type, access=READ_REPLACE)
    tree.create_interior(f"{account}/AppAuth", access=GROWABLE)
    for level, user, secret in ((CLIENT_CREDENTIALS, profile.client_user, profile.client_password),
                                (SERVER_CREDENTIALS, profile.server_id, profile.server_password)):
        auth = f"{account}/AppAuth/{level}"
        tree.create_interior(auth, access=READ_REPLACE)
        tree.create_leaf(f"{auth}/AAuthLevel", level, access=READ_REPLACE)
        tree.create_leaf(f"{auth}/AAuthType", profile.aauth_type, access=READ_REPLACE)
        tree.create_leaf(f"{auth}/AAuthName", user, access=READ_REPLACE)
        tree.create_leaf(f"{auth}/AAuthSecret", secret, access=REPLACE_ONLY)
        tree.create_leaf(f"{auth}/AAuthData", b"", format="bin", type="application/octet-stream",
                         access=REPLACE_ONLY)
    tree.create_interior(f"{account}/Ext")
    return account


@dataclass(frozen=True)
class AppAuthCredentials:
    level: str
    auth_type: str
    name: str
    secret: str
    nonce: bytes


def find_dm_account(tree: DMTree, server_id: str) -> str | None:
    """URI of the DMAcc account (located by Type, §11.3) whose ServerID is ``server_id``."""
    for uri, node in tree.walk():
        server_id_node = node.children.get("ServerID")
        if node.type == MO_DMACC and server_id_node is not None and server_id_node.value == server_id:
            return uri
    return None


def _app_auth_uri(tree: DMTree, account_uri: str, level: str) -> str:
    for name, entry in tree.node(f"{account_uri}/AppAuth").children.items():
        level_node = entry.children.get("AAuthLevel")
        if level_node is not None and level_node.value == level:
            return join_uri(parse_uri(account_uri).segments + ("AppAuth", name))
    raise KeyError(f"{account_uri} has no AppAuth entry for {level}")


def read_app_auth(tree: DMTree, account_uri: str, level: str) -> AppAuthCredentials:
    """Credentials and stored nonce of one AppAuth level (CLCRED or SRVCRED)."""
    auth = _app_auth_uri(tree, account_uri, level)
    nonce = tree.read_value(f"{auth}/AAuthData")
    return AppAuthCredentials(
        level=level,
        auth_type=str(tree.read_value(f"{auth}/AAuthType")),
        name=str(tree.read_value(f"{auth}/AAuthName")),
        secret=str(tree.read_value(f"{auth}/AAuthSecret")),
        nonce=nonce if isinstance(nonce, bytes) else b"",
    )


def store_nonce(tree: DMTree, account_uri: str, level: str, nonce: bytes) -> None:
    """Keep the raw nonce for ``level`` in its AAuthData (§9.2)."""
    tree.set_value(f"{_app_auth_uri(tree, account_uri, level)}/AAuthData", nonce)


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


@dataclass(frozen=True)
class DiagMonNames:
    """Every DiagMon node name in one place: the subtree is a proposal (§14)."""

    root: str = "DiagMon"
    name: str = "Name"
    status: str = "Status"
    config: str = "Config"
    interval: str = "Interval"
    duration: str = "Duration"
    report_uri: str = "ReportURI"
    data: str = "Data"
    operations: str = "Operations"
    start: str = "Start"
    stop: str = "Stop"
    collect: str = "Collect"
    trap: str = "Trap"
    condition: str = "Condition"
    enabled: str = "Enabled"
    enable: str = "Enable"
    disable: str = "Disable"


DIAGMON_NAMES = DiagMonNames()
# Diagnostic function name -> tree values it collects.
DIAGMON_FUNCTIONS: Mapping[str, tuple[str, ...]] = {
    "RadioStats": (EXT_RADIO_SIGNAL_URI,),
    "BatteryLog": (EXT_BATTERY_LEVEL_URI,),
    "MemoryStats": (EXT_FREE_MEMORY_URI,),
}
# Trap name -> condition text.
DIAGMON_TRAPS: Mapping[str, str] = {"LowBattery": f"{EXT_BATTERY_LEVEL_URI}<15"}


class DiagMonStatus(IntEnum):
    IDLE = 10
    COLLECTING = 20
    REPORTING = 30
    FAILED = 40


def build_diagmon(tree: DMTree, profile: DeviceProfile, names: DiagMonNames = DIAGMON_NAMES) -> str:
    root = f"./{names.root}"
    tree.create_interior(root, type=MO_DIAGMON, acl=full_rights_acl(profile.server_id))
    for function in DIAGMON_FUNCTIONS:
        base = f"{root}/{function}"
        tree.create_interior(base)
        tree.create_leaf(f"{base}/{names.name}", function)
        tree.create_leaf(f"{base}/{names.status}", str(int(DiagMonStatus.IDLE)), format="int")
        tree.create_interior(f"{base}/{names.config}")
        tree.create_leaf(f"{base}/{names.config}/{names.interval}", "60", format="int", access=READ_REPLACE)
        tree.create_leaf(f"{base}/{names.config}/{names.duration}", "300", format="int", access=READ_REPLACE)
        tree.create_leaf(f"{base}/{names.config}/{names.report_uri}", "", access=READ_REPLACE)
        tree.create_leaf(f"{base}/{names.data}", "", format="xml")
        tree.create_interior(f"{base}/{names.operations}")
        for operation in (names.start, names.stop, names.collect):
            tree.create_interior(f"{base}/{names.operations}/{operation}", access=EXECUTABLE)
    tree.create_interior(f"{root}/{names.trap}")
    for trap, condition in DIAGMON_TRAPS.items():
        base = f"{root}/{names.trap}/{trap}"
        tree.create_interior(base)
        tree.create_leaf(f"{base}/{names.condition}", condition, access=READ_REPLACE)
        tree.create_leaf(f"{base}/{names.enabled}", "false", format="bool")
        tree.create_interior(f"{base}/{names.operations}")
        for operation in (names.enable, names.disable):
            tree.create_interior(f"{base}/{names.operations}/{operation}", access=EXECUTABLE)
    return root


def build_ext(tree: DMTree, profile: DeviceProfile) -> str:
    """Vendor area with values the simulator updates via ``tree.set_value``.
    ``./Ext/Private`` withholds Get from the DM server (ACL test target)."""
    server_id = profile.server_id
    # Growable: servers may add their own vendor configuration here.
    tree.create_interior(EXT_URI, type=MO_SIMULATOR_EXT, acl=full_rights_acl(server_id), access=GROWABLE)
    for group in ("Battery", "Memory", "Radio"):
        tree.create_interior(f"{EXT_URI}/{group}")
    tree.create_leaf(EXT_BATTERY_LEVEL_URI, str(profile.battery_level), format="int")
    tree.create_leaf(EXT_FREE_MEMORY_URI, str(profile.free_memory), format="int")
    tree.create_leaf(EXT_RADIO_SIGNAL_URI, str(profile.signal_dbm), format="int")
    tree.create_interior(EXT_PRIVATE_URI, acl=f"Add={server_id}&Delete={server_id}&Replace={server_id}",
                         access=GROWABLE)
    tree.create_leaf(f"{EXT_PRIVATE_URI}/Location", "", access=READ_REPLACE)
    return EXT_URI


def supported_management_objects(tree: DMTree) -> list[tuple[str, str]]:
    """``(mo_id, root_uri)`` for every interior node carrying an MO identifier Type."""
    return [(node.type, uri) for uri, node in tree.walk() if node.is_interior and node.type]


# --------------------------------------------------------------------------- FUMO


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


def is_fumo_success(result_code: int) -> bool:
    return 200 <= result_code <= 299


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
            return Status.ACCEPTED
        url = self.tree.read_value(f"{request.uri}/PkgURL")
        download_result = self.script.download_result if url else FUMO_RESULT_BAD_URL
        self._enter(FumoState.DOWNLOAD_PROGRESSING)
        self._job = _FumoJob(operation, request.uri, request.correlator, "download",
                             now + self.script.download_seconds, download_result)
        return Status.ACCEPTED

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
            if not is_fumo_success(job.download_result):
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
        if is_fumo_success(result):
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
            mark=marks.success if is_fumo_success(result) else marks.failure,
            correlator=job.correlator,
        )


# --------------------------------------------------------------------------- SCOMO


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


def is_scomo_success(result_code: int) -> bool:
    return 1200 <= result_code <= 1299


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
        return Status.ACCEPTED

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
        failed = not is_scomo_success(result)
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
            job.operation == "Download" and not is_scomo_success(result))
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
                             mark=marks.success if is_scomo_success(result) else marks.failure,
                             correlator=job.correlator, target=target)


# --------------------------------------------------------------------------- DiagMon


@dataclass
class _DiagMonSession:
    function_uri: str
    exec_uri: str
    correlator: str | None
    due: float


class DiagMonRunner:
    """Executes the proposed DiagMon operations (§14).

    Collect: snapshot the function's values into Data, answer 202 and report on
    the next ``poll()``. Start: Status 20 (collecting), answer 202, collect and
    report once Config/Duration seconds have passed. Stop: cancel, Status 10,
    answer 200. Trap Enable/Disable: set Enabled, answer 200.
    """

    def __init__(self, tree: DMTree, root_uri: str, clock: Callable[[], float],
                 names: DiagMonNames = DIAGMON_NAMES, marks: AlertMarks = AlertMarks()) -> None:
        self.tree = tree
        self.root_uri = root_uri
        self.names = names
        self.marks = marks
        self._clock = clock
        self._sessions: list[_DiagMonSession] = []
        operations = f"{root_uri}/*/{names.operations}"
        tree.register_exec(f"{operations}/{names.collect}", self._collect)
        tree.register_exec(f"{operations}/{names.start}", self._start)
        tree.register_exec(f"{operations}/{names.stop}", self._stop)
        trap_operations = f"{root_uri}/{names.trap}/*/{names.operations}"
        tree.register_exec(f"{trap_operations}/{names.enable}", self._enable_trap)
        tree.register_exec(f"{trap_operations}/{names.disable}", self._disable_trap)

    @staticmethod
    def _owner_uri(request: ExecRequest) -> str:
        return join_uri(parse_uri(request.uri).segments[:-2])

    def _collect(self, request: ExecRequest) -> int:
        self._sessions.append(_DiagMonSession(self._owner_uri(request), request.uri, request.correlator,
                                              self._clock()))
        return Status.ACCEPTED

    def _start(self, request: ExecRequest) -> int:
        function_uri = self._owner_uri(request)
        if any(session.function_uri == function_uri for session in self._sessions):
            return Status.COMMAND_NOT_ALLOWED
        duration = int(str(self.tree.read_value(f"{function_uri}/{self.names.config}/{self.names.duration}")))
        self.tree.set_value(f"{function_uri}/{self.names.status}", str(int(DiagMonStatus.COLLECTING)))
        self._sessions.append(_DiagMonSession(function_uri, request.uri, request.correlator,
                                              self._clock() + duration))
        return Status.ACCEPTED

    def _stop(self, request: ExecRequest) -> int:
        function_uri = self._owner_uri(request)
        self._sessions = [session for session in self._sessions if session.function_uri != function_uri]
        self.tree.set_value(f"{function_uri}/{self.names.status}", str(int(DiagMonStatus.IDLE)))
        return Status.OK

    def _enable_trap(self, request: ExecRequest) -> int:
        self.tree.set_value(f"{self._owner_uri(request)}/{self.names.enabled}", "true")
        return Status.OK

    def _disable_trap(self, request: ExecRequest) -> int:
        self.tree.set_value(f"{self._owner_uri(request)}/{self.names.enabled}", "false")
        return Status.OK

    def poll(self) -> list[dict[str, str | None]]:
        """Report every collection whose time has come."""
        now = self._clock()
        due = [session for session in self._sessions if session.due <= now]
        self._sessions = [session for session in self._sessions if session.due > now]
        return [self._report(session) for session in due]

    def _report(self, session: _DiagMonSession) -> dict[str, str | None]:
        function = parse_uri(session.function_uri).segments[-1]
        values = etree.Element("Values")
        for uri in DIAGMON_FUNCTIONS.get(function, ()):
            etree.SubElement(values, "Value", uri=uri).text = str(self.tree.read_value(uri))
        collected = etree.tostring(values, encoding="unicode")
        self.tree.set_value(f"{session.function_uri}/{self.names.data}", collected)
        self.tree.set_value(f"{session.function_uri}/{self.names.status}", str(int(DiagMonStatus.IDLE)))
        return generic_alert(DIAGMON_ALERT_TYPE, session.exec_uri,
                             f"<ResultCode>200</ResultCode>{collected}", format="xml",
                             mark=self.marks.success, correlator=session.correlator)


# --------------------------------------------------------------------------- device


DEFAULT_DEVICE_TREE_CONFIG = TreeConfig(max_depth=16, max_total_length=255, max_segment_length=64)


@dataclass
class SimulatedDeviceTree:
    tree: DMTree
    profile: DeviceProfile
    dm_account_uri: str
    fumo: FumoStateMachine
    scomo: ScomoStateMachine
    diagmon: DiagMonRunner

    def poll(self) -> list[dict[str, str | None]]:
        """Generic Alerts of every operation that finished by now."""
        return self.fumo.poll() + self.scomo.poll() + self.diagmon.poll()

    def supported_objects(self) -> list[tuple[str, str]]:
        return supported_management_objects(self.tree)


def build_device_tree(
    profile: Mapping[str, Any],
    *,
    clock: Callable[[], float] = time.time,
    config: TreeConfig = DEFAULT_DEVICE_TREE_CONFIG,
    fumo_script: FumoScript = FumoScript(),
    scomo_script: ScomoScript = ScomoScript(),
) -> SimulatedDeviceTree:
    """The complete simulated device tree for ``profile`` (root ACL ``Add=*&Get=*``)."""
    device_profile = DeviceProfile.from_dict(profile)
    tree = DMTree(config, clock=clock)
    build_devinfo(tree, device_profile)
    build_devdetail(tree, device_profile)
    account = build_dmacc(tree, device_profile)
    fumo_uri = build_fumo(tree, device_profile)
    scomo_uri = build_scomo(tree, device_profile)
    diagmon_uri = build_diagmon(tree, device_profile)
    build_ext(tree, device_profile)
    return SimulatedDeviceTree(
        tree=tree,
        profile=device_profile,
        dm_account_uri=account,
        fumo=FumoStateMachine(tree, fumo_uri, clock, fumo_script),
        scomo=ScomoStateMachine(tree, scomo_uri, clock, scomo_script),
        diagmon=DiagMonRunner(tree, diagmon_uri, clock),
    )
