"""One node of the simulated tree with its run-time properties (§6.2)."""
from __future__ import annotations

from dataclasses import dataclass, field

from dmwsi.sim.tree.formats import INTERIOR_FORMAT

PROPERTIES = ("ACL", "Format", "Name", "Size", "Title", "TStamp", "Type", "VerNo")
REPLACEABLE_PROPERTIES = frozenset({"ACL", "Name", "Title"})
MAX_TITLE_BYTES = 255
VERNO_MODULUS = 0x10000


@dataclass
class Node:
    """One node with its run-time properties. Interior nodes have Format ``node``."""

    name: str
    format: str
    type: str
    value: str | bytes | None
    tstamp: str
    access: frozenset[str]
    permanent: bool
    acl: str = ""
    title: str = ""
    verno: int = 0
    children: dict[str, Node] = field(default_factory=dict)

    @property
    def is_interior(self) -> bool:
        return self.format == INTERIOR_FORMAT

    @property
    def size(self) -> int | None:
        """Bytes of the raw value; None for interior nodes."""
        if self.is_interior:
            return None
        if isinstance(self.value, bytes):
            return len(self.value)
        return len((self.value or "").encode("utf-8"))
