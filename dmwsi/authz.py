"""Authorization (OES7): roles → operations, device scope, node rules.

Read from the ``[roles.<name>]`` tables of the policy file (conf/policy.toml)
whose ``[principals]`` say who has which role. Default deny: a principal
may do only what one of its roles grants.

    [roles.external]
    operations = ["SetDeviceData", "GetJobStatus"]   # "*" = every operation
    devices = { groups = ["partner-a"] }             # "all" | {groups, selector, ids}
    nodes = [ { path = "./Browser/Favorites/**", actions = ["Replace", "Add"] } ]
    permissions = []                                 # e.g. "see-identity", "all-logs"
    max_batch = 10000                                # larger bulk requests are refused whole

Node paths: ``*`` matches one URI segment, ``**`` any number (including
none); a query (``?list=``, ``?prop=``) is not part of the path.
"""
import re
from dataclasses import dataclass, field

from dmwsi.dm.uri import BadUri, path_of
from dmwsi.selector import parse_selector
from dmwsi.store.base import NotFound
from dmwsi.errors import DmwsiError

ACTIONS = ("Get", "Replace", "Add", "Delete", "Exec", "Copy")
SEE_IDENTITY = "see-identity"
ALL_LOGS = "all-logs"
ALL_JOBS = "all-jobs"              # see every principal's jobs and their results
CANCEL_ANY_JOB = "cancel-any-job"  # cancel / acknowledge jobs of other principals


class AuthzError(DmwsiError, ValueError):
    """The policy's roles are malformed."""


@dataclass
class NodeRule:
    pattern: re.Pattern
    prefix: str           # the literal part before the first wildcard, for tree listings
    actions: frozenset


@dataclass
class Role:
    name: str
    operations: frozenset = frozenset()
    all_devices: bool = False
    groups: tuple = ()
    selector: list | None = None
    device_ids: frozenset = frozenset()
    nodes: list = field(default_factory=list)
    permissions: frozenset = frozenset()
    max_batch: int | None = None


def _compile(path):
    try:
        path = path_of(path if path not in ("**", "*") else "./" + path)
    except BadUri as e:
        raise AuthzError(f"node rule path {path!r}: {e}")
    parts, regex = path.split("/"), ["\\."]
    prefix = []
    literal = True
    for part in parts[1:]:
        if part == "**":
            regex.append("(?:/[^/]+)*")
            literal = False
        elif part == "*":
            regex.append("/[^/]+")
            literal = False
        else:
            regex.append("/" + re.escape(part))
            if literal:
                prefix.append(part)
    return re.compile("".join(regex) + "$"), "/".join(["."] + prefix)


def _role(name, table):
    unknown = set(table) - {"operations", "devices", "nodes", "permissions", "max_batch", "description"}
    if unknown:
        raise AuthzError(f"role {name!r}: unknown keys {sorted(unknown)}")
    devices = table.get("devices", {})
    role = Role(name=name, operations=frozenset(table.get("operations", [])),
                permissions=frozenset(table.get("permissions", [])), max_batch=table.get("max_batch"))
    if devices == "all":
        role.all_devices = True
    elif isinstance(devices, dict):
        role.groups = tuple(devices.get("groups", ()))
        role.device_ids = frozenset(devices.get("ids", ()))
        role.selector = parse_selector(devices["selector"]) if devices.get("selector") else None
    else:
        raise AuthzError(f"role {name!r}: devices must be \"all\" or a table")
    for rule in table.get("nodes", []):
        bad = set(rule.get("actions", [])) - set(ACTIONS)
        if bad:
            raise AuthzError(f"role {name!r}: unknown node actions {sorted(bad)}")
        pattern, prefix = _compile(rule["path"])
        role.nodes.append(NodeRule(pattern, prefix, frozenset(rule["actions"])))
    return role


def _may_meet(rule, root):
    """Could ``rule`` match ``root`` or a node below it? (An over-estimate is
    safe: listings are filtered node by node.)"""
    if root == "." or rule.pattern.match(root):
        return True
    if rule.prefix == root or rule.prefix.startswith(root + "/"):
        return True                       # the rule is about something inside the subtree
    return root.startswith(rule.prefix + "/") and rule.pattern.pattern != re.escape(rule.prefix)


class Authorizer:
    def __init__(self, roles):
        self.roles = roles            # name -> Role

    @classmethod
    def from_policy(cls, raw):
        return cls({name: _role(name, table) for name, table in raw.get("roles", {}).items()})

    def _of(self, role_names):
        return [self.roles[r] for r in role_names if r in self.roles]

    def may_call(self, role_names, operation):
        return any("*" in r.operations or operation in r.operations for r in self._of(role_names))

    def has(self, role_names, permission):
        return any(permission in r.permissions for r in self._of(role_names))

    def may_touch(self, role_names, uri, action):
        """May the caller run ``action`` on the node at ``uri``? A
        non-canonical URI matches no rule (callers' URIs were refused before)."""
        try:
            path = path_of(uri)
        except BadUri:
            return False
        return any(action in rule.actions and rule.pattern.match(path)
                   for r in self._of(role_names) for rule in r.nodes)

    def may_list(self, role_names, root):
        """May the caller read anything in the subtree at ``root``? (Listings
        are then filtered node by node with ``may_touch``.)"""
        try:
            root = path_of(root)
        except BadUri:
            return False
        return any("Get" in rule.actions and _may_meet(rule, root)
                   for r in self._of(role_names) for rule in r.nodes)

    def max_batch(self, role_names):
        limits = [r.max_batch for r in self._of(role_names)]
        return None if not limits or None in limits else max(limits)

    def all_devices(self, role_names):
        """Does a role reach every device? (Only then may the caller learn that a device does not exist.)"""
        return any(r.all_devices for r in self._of(role_names))

    def out_of_scope(self, store, role_names, device_ids):
        """The devices (of ``device_ids``) no role of the caller may reach.
        Store errors propagate: a scope is never silently shrunk or grown."""
        roles = self._of(role_names)
        if any(r.all_devices for r in roles):
            return set()
        allowed = set()
        for r in roles:
            allowed |= r.device_ids
            for group in r.groups:
                try:
                    allowed.update(store.group_members(group))
                except NotFound:           # a group not (yet) defined grants nothing
                    pass
            if r.selector:
                allowed.update(store.select_devices(r.selector))
        return set(device_ids) - allowed
