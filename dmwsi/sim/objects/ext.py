"""The simulator's vendor area (``./Ext``): battery, memory and radio values, and a private node."""
from __future__ import annotations

from dmwsi.sim.objects.profile import DeviceProfile, full_rights_acl
from dmwsi.sim.tree import GROWABLE, READ_REPLACE, DMTree

MO_SIMULATOR_EXT = "urn:dmwsi:mo:simulator-ext:1.0"
EXT_URI = "./Ext"
EXT_BATTERY_LEVEL_URI = "./Ext/Battery/Level"
EXT_FREE_MEMORY_URI = "./Ext/Memory/Free"
EXT_RADIO_SIGNAL_URI = "./Ext/Radio/Signal"
EXT_PRIVATE_URI = "./Ext/Private"


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
