"""DiagMon (``./DiagMon``, the reference's §14 proposal): diagnostics collected on request.

``DiagMonRunner`` answers Exec on a function's Collect/Start/Stop and on a
trap's Enable/Disable; collections are reported as Generic Alerts on
``poll()`` once their time has come.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Callable, Mapping

from lxml import etree

from dmwsi.sim.objects.alerts import AlertMarks, generic_alert
from dmwsi.sim.objects.ext import EXT_BATTERY_LEVEL_URI, EXT_FREE_MEMORY_URI, EXT_RADIO_SIGNAL_URI
from dmwsi.sim.objects.profile import DeviceProfile, full_rights_acl
from dmwsi.sim.tree import EXECUTABLE, READ_REPLACE, DMTree, ExecRequest, Status, join_uri, parse_uri

MO_DIAGMON = "urn:oma:mo:oma-diagmon:1.0"
# §14 [?]: written by analogy with SCOMO.
DIAGMON_ALERT_TYPE = "urn:oma:at:diagmon:1.0:OperationComplete"


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
        return Status.ACCEPTED_FOR_PROCESSING

    def _start(self, request: ExecRequest) -> int:
        function_uri = self._owner_uri(request)
        if any(session.function_uri == function_uri for session in self._sessions):
            return Status.COMMAND_NOT_ALLOWED
        duration = int(str(self.tree.read_value(f"{function_uri}/{self.names.config}/{self.names.duration}")))
        self.tree.set_value(f"{function_uri}/{self.names.status}", str(int(DiagMonStatus.COLLECTING)))
        self._sessions.append(_DiagMonSession(function_uri, request.uri, request.correlator,
                                              self._clock() + duration))
        return Status.ACCEPTED_FOR_PROCESSING

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
