"""Who may do what on a node of the simulated tree: ACLs (§6.4) and DDF access types.

An ACL names, per command, the server ids allowed (``Get=*&Replace=srv1+srv2``);
a node without one inherits its nearest ancestor's. An access type is what
the device allows on a node at all, whoever asks.
"""
from __future__ import annotations

import re

from dmwsi.sim.tree.status import Status, TreeCommandError

# ACL commands (§6.4) and DDF AccessType values used by the simulator.
ADD, DELETE, EXEC, GET, REPLACE = "Add", "Delete", "Exec", "Get", "Replace"
ACL_COMMANDS = frozenset({ADD, DELETE, EXEC, GET, REPLACE})

READ_ONLY = frozenset({GET})
READ_REPLACE = frozenset({GET, REPLACE})
REPLACE_ONLY = frozenset({REPLACE})
EXECUTABLE = frozenset({GET, EXEC})
# Interior node accepting children the server adds.
GROWABLE = frozenset({GET, ADD})
# Access of nodes created by a server Add or Copy.
DYNAMIC_INTERIOR_ACCESS = frozenset({ADD, DELETE, GET, REPLACE})
DYNAMIC_LEAF_ACCESS = frozenset({DELETE, GET, REPLACE})

_ACL_SERVER_ID = re.compile(r"[^\s=&*+]+")


def parse_acl(acl: str) -> dict[str, frozenset[str]]:
    """Parse ``Get=*&Replace=srv1+srv2`` into {command: server ids}; '' is empty."""
    rights: dict[str, frozenset[str]] = {}
    if acl == "":
        return rights
    for entry in acl.split("&"):
        command, equals, ids = entry.partition("=")
        if not equals or command not in ACL_COMMANDS or ids == "":
            raise TreeCommandError(Status.BAD_REQUEST, f"malformed ACL entry {entry!r}")
        server_ids = ids.split("+")
        for server_id in server_ids:
            if server_id != "*" and not _ACL_SERVER_ID.fullmatch(server_id):
                raise TreeCommandError(Status.BAD_REQUEST, f"malformed ACL server id {server_id!r}")
        rights[command] = rights.get(command, frozenset()) | frozenset(server_ids)
    return rights


def format_acl(rights: dict[str, frozenset[str]]) -> str:
    return "&".join(
        f"{command}={'+'.join(sorted(rights[command]))}" for command in sorted(rights) if rights[command]
    )


def acl_allows(acl: str, command: str, server_id: str) -> bool:
    """Whether ``acl`` grants ``command`` to ``server_id`` (``*`` grants it to all)."""
    server_ids = parse_acl(acl).get(command, frozenset())
    return "*" in server_ids or server_id in server_ids


def creator_acl(inherited_acl: str, server_id: str) -> str:
    """§6.4: a server adding an interior node without Replace on the parent gets
    Add, Delete and Replace on it; the inherited rights are kept alongside."""
    rights = parse_acl(inherited_acl)
    for command in (ADD, DELETE, REPLACE):
        rights[command] = rights.get(command, frozenset()) | {server_id}
    return format_acl(rights)
