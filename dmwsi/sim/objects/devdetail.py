"""DevDetail (``./DevDetail``): firmware, software and hardware versions and the URI limits."""
from __future__ import annotations

from dmwsi.sim.objects.profile import DeviceProfile, full_rights_acl
from dmwsi.sim.tree import DMTree

MO_DEVDETAIL = "urn:oma:mo:oma-dm-devdetail:1.0"
DEVDETAIL_URI = "./DevDetail"
DEVDETAIL_FWV_URI = "./DevDetail/FwV"


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
