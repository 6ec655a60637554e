"""The whole simulated device tree: every management object built from one profile, with its executors."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from dmwsi.sim.objects.devdetail import build_devdetail
from dmwsi.sim.objects.devinfo import build_devinfo
from dmwsi.sim.objects.diagmon import DiagMonRunner, build_diagmon
from dmwsi.sim.objects.dmacc import build_dmacc
from dmwsi.sim.objects.ext import build_ext
from dmwsi.sim.objects.fumo import FumoScript, FumoStateMachine, build_fumo
from dmwsi.sim.objects.profile import DeviceProfile
from dmwsi.sim.objects.scomo import ScomoScript, ScomoStateMachine, build_scomo
from dmwsi.sim.tree import DMTree, TreeConfig

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


def supported_management_objects(tree: DMTree) -> list[tuple[str, str]]:
    """``(mo_id, root_uri)`` for every interior node carrying an MO identifier Type."""
    return [(node.type, uri) for uri, node in tree.walk() if node.is_interior and node.type]
