"""DevInfo (``./DevInfo``): who the device is; sent in every package 1."""
from __future__ import annotations

from dmwsi.sim.objects.profile import DeviceProfile
from dmwsi.sim.tree import DMTree

MO_DEVINFO = "urn:oma:mo:oma-dm-devinfo:1.0"
DEVINFO_URI = "./DevInfo"


def build_devinfo(tree: DMTree, profile: DeviceProfile) -> str:
    tree.create_interior(DEVINFO_URI, type=MO_DEVINFO, acl="Get=*")
    for name, value in (("DevId", profile.dev_id), ("Man", profile.man), ("Mod", profile.mod),
                        ("DmV", profile.dmv), ("Lang", profile.lang)):
        tree.create_leaf(f"{DEVINFO_URI}/{name}", value)
    tree.create_interior(f"{DEVINFO_URI}/Ext")
    return DEVINFO_URI
