"""The simulated device's management tree: ``DMTree`` and its limits, ``TreeConfig``.

The server-side commands (Get, Add, Replace, Delete, Copy, Exec, Atomic)
check ACLs and access types and answer SyncML DM status codes; the
device-side methods build and change the tree without those checks.
"""
from __future__ import annotations

import copy
import functools
import re
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from dmwsi.records import ResultItem
from dmwsi.sim.tree.acl import (ADD, DELETE, DYNAMIC_INTERIOR_ACCESS, DYNAMIC_LEAF_ACCESS, EXEC, GET,
                                GROWABLE, READ_ONLY, REPLACE, acl_allows, creator_acl, parse_acl)
from dmwsi.sim.tree.commands import AddHook, AtomicResult, ExecHandler, ExecRequest, GetResult, TreeCommand
from dmwsi.sim.tree.formats import DEFAULT_LEAF_TYPE, INTERIOR_FORMAT, coerce_value
from dmwsi.sim.tree.node import MAX_TITLE_BYTES, PROPERTIES, REPLACEABLE_PROPERTIES, VERNO_MODULUS, Node
from dmwsi.sim.tree.status import Status, TreeCommandError
from dmwsi.sim.tree.tnds import TNDS_XML_TYPE, tnds_document, tnds_fields
from dmwsi.sim.tree.uri import ParsedUri, escape_name, join_uri, matches_pattern, normalize_uri, parse_uri


@dataclass(frozen=True)
class TreeConfig:
    """Device limits and the behaviours the reference marks uncertain [?].

    Limits of 0 mean unlimited (DevDetail/URI semantics).
    """

    max_depth: int = 0
    max_total_length: int = 0
    max_segment_length: int = 0
    max_nodes: int = 0
    # §6.1: the reference answers 404 when the parent of an added node is
    # missing; True creates the missing interior parents instead.
    auto_create_parents: bool = False
    # §6.1 [?]: Replace on a missing node is 404 by spec, an implicit Add on Windows.
    replace_missing_adds: bool = False
    # ``?list=TNDS`` without +/- modifiers: which fields to serialize [?].
    tnds_default_fields: tuple[str, ...] = ("ACL", "Format", "Title", "TStamp", "Type", "VerNo", "Value")


@dataclass(frozen=True)
class TreeSnapshot:
    root: Node


def _answers_status(command: Callable[..., None]) -> Callable[..., int]:
    """A server-side command written to raise ``TreeCommandError``, as the
    command a session calls: it answers the status code, 200 when it completed."""

    @functools.wraps(command)
    def answered(*args, **kwargs) -> int:
        try:
            command(*args, **kwargs)
        except TreeCommandError as error:
            return error.status
        return Status.OK

    return answered


class DMTree:
    """The device's management tree.

    Server-side commands (``get``, ``add``, ``replace``, ``delete``, ``copy``,
    ``exec``, ``atomic``) check ACLs and access types and return status codes.
    Device-side methods (``create_interior``, ``create_leaf``, ``set_value``,
    ``read_value``, ``remove_node``) are used by the simulator and by the
    management-object builders; they skip ACL checks and raise
    ``TreeCommandError`` on misuse.
    """

    def __init__(
        self,
        config: TreeConfig = TreeConfig(),
        clock: Callable[[], float] = time.time,
        root_acl: str = "Add=*&Get=*",
    ) -> None:
        parse_acl(root_acl)
        if root_acl == "":
            raise TreeCommandError(Status.BAD_REQUEST, "the root ACL must have a value")
        self.config = config
        self._clock = clock
        self._root = Node(
            name=".",
            format=INTERIOR_FORMAT,
            type="",
            value=None,
            tstamp=self._now(),
            access=GROWABLE,
            permanent=True,
            acl=root_acl,
        )
        self._exec_handlers: list[tuple[str, ExecHandler]] = []
        self._add_hooks: list[tuple[str, AddHook]] = []

    # ----------------------------------------------------------- registration

    def register_exec(self, pattern: str, handler: ExecHandler) -> None:
        """Run ``handler`` for Exec on nodes matching ``pattern`` (``*`` = one segment)."""
        self._exec_handlers.append((normalize_uri(pattern), handler))

    def on_add(self, pattern: str, hook: AddHook) -> None:
        """Call ``hook(uri)`` after a server Add/Copy created a node matching ``pattern``."""
        self._add_hooks.append((normalize_uri(pattern), hook))

    # ----------------------------------------------------------- device side

    def create_interior(
        self,
        uri: str,
        *,
        type: str = "",
        acl: str = "",
        access: frozenset[str] = READ_ONLY,
        permanent: bool = True,
        title: str = "",
    ) -> Node:
        return self._create(uri, INTERIOR_FORMAT, type, None, leaf=False, acl=acl, access=access,
                            permanent=permanent, title=title)

    def create_leaf(
        self,
        uri: str,
        value: str | bytes | None,
        *,
        format: str = "chr",
        type: str = DEFAULT_LEAF_TYPE,
        acl: str = "",
        access: frozenset[str] = READ_ONLY,
        permanent: bool = True,
        title: str = "",
    ) -> Node:
        return self._create(uri, format, type, value, leaf=True, acl=acl, access=access, permanent=permanent,
                            title=title)

    def _create(self, uri: str, format_: str, type_: str, value: str | bytes | None, *, leaf: bool, acl: str,
                access: frozenset[str], permanent: bool, title: str) -> Node:
        parse_acl(acl)
        if leaf:
            format_, value = coerce_value(format_, value)
        return self._attach(
            uri, Node(name="", format=format_, type=type_, value=value, tstamp=self._now(),
                      access=access, permanent=permanent, acl=acl, title=title)
        )

    def set_value(self, uri: str, value: str | bytes | None) -> None:
        """Device-side update of a leaf value (keeps its Format)."""
        node = self.node(uri)
        if node.is_interior:
            raise TreeCommandError(Status.COMMAND_NOT_ALLOWED, f"{uri} is an interior node")
        _, node.value = coerce_value(node.format, value)
        self._touch(node)

    def read_value(self, uri: str) -> str | bytes | None:
        return self.node(uri).value

    def remove_node(self, uri: str) -> None:
        """Device-side delete of a node and its subtree."""
        segments = parse_uri(uri).segments
        if not segments:
            raise TreeCommandError(Status.COMMAND_NOT_ALLOWED, "the root cannot be removed")
        parent = self._require(segments[:-1])
        if segments[-1] not in parent.children:
            raise TreeCommandError(Status.NOT_FOUND, f"{uri} does not exist")
        del parent.children[segments[-1]]
        self._touch(parent)

    def node(self, uri: str) -> Node:
        """The node at ``uri``; treat it as read-only (use the methods to change it)."""
        return self._require(parse_uri(uri).segments)

    def exists(self, uri: str) -> bool:
        try:
            return self._find(parse_uri(uri).segments) is not None
        except TreeCommandError:
            return False

    def walk(self, uri: str = ".") -> Iterator[tuple[str, Node]]:
        """Depth-first (pre-order) ``(uri, node)`` pairs of the subtree at ``uri``."""
        segments = parse_uri(uri).segments
        yield from self._walk(segments, self._require(segments))

    def snapshot(self) -> TreeSnapshot:
        return TreeSnapshot(copy.deepcopy(self._root))

    def restore(self, snapshot: TreeSnapshot) -> None:
        self._root = copy.deepcopy(snapshot.root)

    # ----------------------------------------------------------- server side: Get

    def get(self, uri: str, server_id: str) -> tuple[int, GetResult | None]:
        try:
            return Status.OK, self._get(uri, server_id)
        except TreeCommandError as error:
            return error.status, None

    def _get(self, uri: str, server_id: str) -> GetResult:
        parsed = self._parse_checked(uri)
        node = self._require(parsed.segments)
        self._check_acl(parsed.segments, GET, server_id)
        if parsed.query_key == "prop":
            return GetResult((self._property_item(parsed, node),))
        if parsed.query_key == "list":
            return self._list(parsed, node, server_id)
        if parsed.query_key is not None:
            raise TreeCommandError(Status.OPTIONAL_FEATURE_NOT_SUPPORTED, f"unsupported query in {uri}")
        self._check_access(node, GET, parsed.path)
        return GetResult((self._value_item(parsed.path, node, with_data=True),))

    def _property_item(self, parsed: ParsedUri, node: Node) -> ResultItem:
        name = parsed.query_value
        if name not in PROPERTIES:
            raise TreeCommandError(Status.OPTIONAL_FEATURE_NOT_SUPPORTED, f"unsupported property {name!r}")
        if name == "Size" and node.is_interior:
            raise TreeCommandError(Status.OPTIONAL_FEATURE_NOT_SUPPORTED, "Size is a leaf-only property")
        value = {
            "ACL": node.acl,
            "Format": node.format,
            "Name": node.name,
            "Size": str(node.size),
            "Title": node.title,
            "TStamp": node.tstamp,
            "Type": node.type,
            "VerNo": str(node.verno),
        }[name]
        return ResultItem(uri=parsed.path + parsed.query, format="chr", type=DEFAULT_LEAF_TYPE, value=value)

    @staticmethod
    def _value_item(uri: str, node: Node, *, with_data: bool) -> ResultItem:
        if node.is_interior:
            data = "/".join(escape_name(name) for name in node.children) if with_data else None
            return ResultItem(uri=uri, format=INTERIOR_FORMAT, type=node.type, value=data)
        return ResultItem(uri=uri, format=node.format, type=node.type, value=node.value if with_data else None)

    def _list(self, parsed: ParsedUri, node: Node, server_id: str) -> GetResult:
        attribute, *modifiers = re.split(r"(?=[+\- ])", parsed.query_value or "")
        if attribute in ("Struct", "StructData") and not modifiers:
            self._check_access(node, GET, parsed.path)
            with_data = attribute == "StructData"
            return GetResult(tuple(
                self._value_item(uri, visible, with_data=with_data and not visible.is_interior)
                for uri, visible in self._readable_subtree(parsed.segments, node, server_id)
            ))
        if attribute == "TNDS":
            self._check_access(node, GET, parsed.path)
            fields = tnds_fields(modifiers, self.config.tnds_default_fields)
            document = tnds_document(parsed.segments, node, fields,
                                     lambda segments, child: self._readable(segments, child, server_id))
            return GetResult((ResultItem(uri=parsed.path + parsed.query, format="xml", type=TNDS_XML_TYPE,
                                         value=document),))
        raise TreeCommandError(Status.OPTIONAL_FEATURE_NOT_SUPPORTED, f"unsupported list {parsed.query_value!r}")

    def _readable_subtree(
        self, segments: tuple[str, ...], node: Node, server_id: str
    ) -> Iterator[tuple[str, Node]]:
        """The subtree minus nodes (and their subtrees) the server may not Get."""
        yield join_uri(segments), node
        for name, child in node.children.items():
            child_segments = segments + (name,)
            if self._readable(child_segments, child, server_id):
                yield from self._readable_subtree(child_segments, child, server_id)

    def _readable(self, segments: tuple[str, ...], node: Node, server_id: str) -> bool:
        """Whether the server may Get this node (access type and ACL)."""
        return GET in node.access and self._allowed(segments, GET, server_id)

    # ----------------------------------------------------------- server side: Add

    @_answers_status
    def add(self, uri: str, value: str | bytes | None, format: str | None, type: str | None,
            server_id: str) -> None:
        parsed = self._parse_checked(uri)
        if parsed.query_key is not None:
            raise TreeCommandError(Status.COMMAND_NOT_ALLOWED, "properties cannot be added")
        self._add_node(parsed, value, format, type, server_id)

    def _add_node(self, parsed: ParsedUri, value: str | bytes | None, format_: str | None,
                  type_: str | None, server_id: str) -> None:
        if not parsed.segments:
            raise TreeCommandError(Status.ALREADY_EXISTS, "the root exists")
        if (format_ or "chr") == INTERIOR_FORMAT:
            if value not in (None, "", b""):
                raise TreeCommandError(Status.BAD_REQUEST, "an interior node carries no data")
            new_node = self._new_dynamic_node(INTERIOR_FORMAT, type_ or "", None)
        else:
            stored_format, stored_value = coerce_value(format_ or "chr", value)
            new_node = self._new_dynamic_node(stored_format, type_ or DEFAULT_LEAF_TYPE, stored_value)
        self._insert_dynamic(parsed, new_node, server_id)

    def _new_dynamic_node(self, format_: str, type_: str, value: str | bytes | None) -> Node:
        access = DYNAMIC_INTERIOR_ACCESS if format_ == INTERIOR_FORMAT else DYNAMIC_LEAF_ACCESS
        return Node(name="", format=format_, type=type_, value=value, tstamp=self._now(),
                    access=access, permanent=False)

    def _insert_dynamic(self, parsed: ParsedUri, new_node: Node, server_id: str) -> None:
        """Server-side insertion shared by Add and Copy (ACL, access, limits, hooks)."""
        parent_segments = parsed.segments[:-1]
        existing_depth = self._existing_prefix_length(parent_segments)
        if existing_depth < len(parent_segments) and not self.config.auto_create_parents:
            raise TreeCommandError(Status.NOT_FOUND, f"parent of {parsed.path} does not exist")
        anchor_segments = parent_segments[:existing_depth]
        anchor = self._require(anchor_segments)
        self._check_acl(anchor_segments, ADD, server_id)
        if existing_depth == len(parent_segments) and parsed.segments[-1] in anchor.children:
            raise TreeCommandError(Status.ALREADY_EXISTS, f"{parsed.path} already exists")
        if not anchor.is_interior or ADD not in anchor.access:
            raise TreeCommandError(Status.COMMAND_NOT_ALLOWED, f"{join_uri(anchor_segments)} accepts no new children")
        missing_parents = parent_segments[existing_depth:]
        added_count = len(missing_parents) + sum(1 for _ in self._walk((), new_node))
        if self.config.max_nodes and self._node_count() + added_count > self.config.max_nodes:
            raise TreeCommandError(Status.DEVICE_FULL, "the tree is full")
        parent = anchor
        for name in missing_parents:
            created = self._new_dynamic_node(INTERIOR_FORMAT, "", None)
            self._link(parent, name, created)
            parent = created
        self._link(parent, parsed.segments[-1], new_node)
        topmost_new = anchor.children[missing_parents[0] if missing_parents else parsed.segments[-1]]
        if topmost_new.is_interior and not self._allowed(anchor_segments, REPLACE, server_id):
            topmost_new.acl = creator_acl(self._effective_acl(anchor_segments), server_id)
        self._touch(anchor)
        for pattern, hook in self._add_hooks:
            if matches_pattern(pattern, parsed.path):
                hook(parsed.path)

    # ----------------------------------------------------------- server side: Replace

    @_answers_status
    def replace(self, uri: str, value: str | bytes | None, format: str | None, type: str | None,
                server_id: str) -> None:
        parsed = self._parse_checked(uri)
        node = self._find(parsed.segments)
        if node is None:
            if self.config.replace_missing_adds and parsed.query_key is None:
                self._add_node(parsed, value, format, type, server_id)
                return
            raise TreeCommandError(Status.NOT_FOUND, f"{parsed.path} does not exist")
        if parsed.query_key == "prop":
            self._replace_property(parsed, node, value, server_id)
            return
        if parsed.query_key is not None:
            raise TreeCommandError(Status.OPTIONAL_FEATURE_NOT_SUPPORTED, f"unsupported query in {uri}")
        self._check_acl(parsed.segments, REPLACE, server_id)
        self._check_access(node, REPLACE, parsed.path)
        if node.is_interior:
            raise TreeCommandError(Status.COMMAND_NOT_ALLOWED, "an interior node has no value to replace")
        stored_format, stored_value = coerce_value(format or node.format, value)
        if stored_format != node.format and node.permanent:
            raise TreeCommandError(Status.UNSUPPORTED_MEDIA_TYPE, f"{parsed.path} only holds {node.format}")
        node.format, node.value = stored_format, stored_value
        if type and not node.permanent:
            node.type = type
        self._touch(node)

    def _replace_property(self, parsed: ParsedUri, node: Node, value: str | bytes | None,
                          server_id: str) -> None:
        name = parsed.query_value
        if name not in PROPERTIES:
            raise TreeCommandError(Status.OPTIONAL_FEATURE_NOT_SUPPORTED, f"unsupported property {name!r}")
        if name not in REPLACEABLE_PROPERTIES:
            raise TreeCommandError(Status.COMMAND_NOT_ALLOWED, f"property {name} is read-only")
        text = value.decode("utf-8") if isinstance(value, bytes) else (value or "")
        if name == "ACL":
            self._replace_acl(parsed.segments, node, text, server_id)
            return
        self._check_acl(parsed.segments, REPLACE, server_id)
        self._check_access(node, REPLACE, parsed.path)
        if name == "Title":
            if len(text.encode("utf-8")) > MAX_TITLE_BYTES:
                raise TreeCommandError(Status.REQUEST_ENTITY_TOO_LARGE, "Title exceeds 255 bytes")
            node.title = text
            self._touch(node)
            return
        self._rename(parsed.segments, node, text)

    def _replace_acl(self, segments: tuple[str, ...], node: Node, acl: str, server_id: str) -> None:
        parent_may_replace = bool(segments) and self._allowed(segments[:-1], REPLACE, server_id)
        node_may_replace = node.is_interior and self._allowed(segments, REPLACE, server_id)
        if not (parent_may_replace or node_may_replace):
            raise TreeCommandError(Status.PERMISSION_DENIED, f"no right to change the ACL of {join_uri(segments)}")
        parse_acl(acl)
        if not segments and acl == "":
            raise TreeCommandError(Status.COMMAND_NOT_ALLOWED, "the root ACL must keep a value")
        node.acl = acl
        self._touch(node)

    def _rename(self, segments: tuple[str, ...], node: Node, new_name: str) -> None:
        if node.permanent:
            raise TreeCommandError(Status.COMMAND_NOT_ALLOWED, f"{join_uri(segments)} is permanent")
        if new_name == "":
            raise TreeCommandError(Status.BAD_REQUEST, "a node name cannot be empty")
        new_segments = segments[:-1] + (new_name,)
        self._check_limits(new_segments)
        parent = self._require(segments[:-1])
        if new_name in parent.children:
            raise TreeCommandError(Status.ALREADY_EXISTS, f"{join_uri(new_segments)} already exists")
        parent.children = {
            (new_name if name == node.name else name): child for name, child in parent.children.items()
        }
        node.name = new_name
        self._touch(node)
        self._touch(parent)

    # ----------------------------------------------------------- server side: Delete

    @_answers_status
    def delete(self, uri: str, server_id: str) -> None:
        parsed, node = self._command_target(uri, DELETE, server_id, "properties cannot be deleted")
        if any(member.permanent for _, member in self._walk(parsed.segments, node)):
            raise TreeCommandError(Status.COMMAND_NOT_ALLOWED, f"{parsed.path} is or contains a permanent node")
        self.remove_node(parsed.path)

    # ----------------------------------------------------------- server side: Copy

    @_answers_status
    def copy(self, source: str, target: str, server_id: str) -> None:
        source_parsed = self._parse_checked(source)
        target_parsed = self._parse_checked(target)
        if source_parsed.query_key is not None or target_parsed.query_key is not None:
            raise TreeCommandError(Status.COMMAND_NOT_ALLOWED, "properties cannot be copied")
        source_node = self._require(source_parsed.segments)
        self._check_acl(source_parsed.segments, GET, server_id)
        self._check_access(source_node, GET, source_parsed.path)
        if not target_parsed.segments:
            raise TreeCommandError(Status.ALREADY_EXISTS, "the root exists")
        duplicate = self._copy_readable(source_parsed.segments, source_node, server_id)
        self._insert_dynamic(target_parsed, duplicate, server_id)

    def _copy_readable(self, segments: tuple[str, ...], node: Node, server_id: str) -> Node:
        duplicate = self._new_dynamic_node(node.format, node.type, node.value)
        duplicate.title = node.title
        for name, child in node.children.items():
            child_segments = segments + (name,)
            if self._readable(child_segments, child, server_id):
                self._link(duplicate, name, self._copy_readable(child_segments, child, server_id))
        return duplicate

    # ----------------------------------------------------------- server side: Exec

    def exec(self, uri: str, data: str | None, correlator: str | None, server_id: str) -> int:
        try:
            parsed, _ = self._command_target(uri, EXEC, server_id, "properties cannot be executed")
        except TreeCommandError as error:
            return error.status
        for pattern, handler in self._exec_handlers:
            if matches_pattern(pattern, parsed.path):
                return handler(ExecRequest(parsed.path, data, correlator, server_id))
        return Status.COMMAND_NOT_IMPLEMENTED

    # ----------------------------------------------------------- server side: Atomic

    def atomic(self, commands: Sequence[TreeCommand], server_id: str) -> AtomicResult:
        """All-or-nothing execution (§6.1/§8).

        On the first failure the tree is restored: members that had succeeded
        report 216 (or 516 for an Exec, whose handler's effects outside the
        tree cannot be undone), the failed member keeps its code, the rest
        report 215 and the Atomic itself 507. Get is not allowed inside an
        Atomic (405), following the Windows behaviour in the reference.
        """
        before = self.snapshot()
        statuses: list[int] = []
        for command in commands:
            status = self._run_in_atomic(command, server_id)
            statuses.append(status)
            if status not in (Status.OK, Status.ACCEPTED_FOR_PROCESSING):
                break
        else:
            return AtomicResult(Status.OK, tuple(statuses))
        self.restore(before)
        rolled_back = [
            Status.ATOMIC_ROLLBACK_FAILED if command.verb == "Exec" else Status.ATOMIC_ROLLBACK_OK
            for command in commands[: len(statuses) - 1]
        ]
        not_executed = [Status.NOT_EXECUTED] * (len(commands) - len(statuses))
        return AtomicResult(Status.ATOMIC_FAILED, tuple(rolled_back + [statuses[-1]] + not_executed))

    def _run_in_atomic(self, command: TreeCommand, server_id: str) -> int:
        if command.verb == "Add":
            return self.add(command.target, command.value, command.format, command.type, server_id)
        if command.verb == "Replace":
            return self.replace(command.target, command.value, command.format, command.type, server_id)
        if command.verb == "Delete":
            return self.delete(command.target, server_id)
        if command.verb == "Copy":
            if command.source is None:
                return Status.BAD_REQUEST
            return self.copy(command.source, command.target, server_id)
        if command.verb == "Exec":
            data = command.value.decode("utf-8") if isinstance(command.value, bytes) else command.value
            return self.exec(command.target, data, command.correlator, server_id)
        if command.verb == "Get":
            return Status.COMMAND_NOT_ALLOWED
        return Status.BAD_REQUEST

    # ----------------------------------------------------------- internals

    def _now(self) -> str:
        return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))

    def _touch(self, node: Node) -> None:
        node.tstamp = self._now()
        node.verno = (node.verno + 1) % VERNO_MODULUS

    def _command_target(self, uri: str, command: str, server_id: str,
                        on_property: str) -> tuple[ParsedUri, Node]:
        """The node a Delete or Exec acts on, once the URI, the ACL and the
        access type allow ``command``; a property URI is refused with ``on_property``."""
        parsed = self._parse_checked(uri)
        if parsed.query_key is not None:
            raise TreeCommandError(Status.COMMAND_NOT_ALLOWED, on_property)
        node = self._require(parsed.segments)
        self._check_acl(parsed.segments, command, server_id)
        self._check_access(node, command, parsed.path)
        return parsed, node

    def _parse_checked(self, uri: str) -> ParsedUri:
        parsed = parse_uri(uri)
        self._check_limits(parsed.segments)
        return parsed

    def _check_limits(self, segments: tuple[str, ...]) -> None:
        """414 when DevDetail/URI limits are exceeded. Depth counts segments below
        the root; lengths are measured on the escaped form without the ``./``."""
        escaped = [escape_name(name) for name in segments]
        config = self.config
        if config.max_depth and len(segments) > config.max_depth:
            raise TreeCommandError(Status.URI_TOO_LONG, f"depth {len(segments)} > {config.max_depth}")
        if config.max_total_length and len("/".join(escaped)) > config.max_total_length:
            raise TreeCommandError(Status.URI_TOO_LONG, f"URI longer than {config.max_total_length}")
        if config.max_segment_length and any(len(name) > config.max_segment_length for name in escaped):
            raise TreeCommandError(Status.URI_TOO_LONG, f"segment longer than {config.max_segment_length}")

    def _find(self, segments: Sequence[str]) -> Node | None:
        node = self._root
        for name in segments:
            node = node.children.get(name)
            if node is None:
                return None
        return node

    def _require(self, segments: Sequence[str]) -> Node:
        node = self._find(segments)
        if node is None:
            raise TreeCommandError(Status.NOT_FOUND, f"{join_uri(segments)} does not exist")
        return node

    def _existing_prefix_length(self, segments: Sequence[str]) -> int:
        node = self._root
        for depth, name in enumerate(segments):
            child = node.children.get(name)
            if child is None:
                return depth
            node = child
        return len(segments)

    def _attach(self, uri: str, node: Node) -> Node:
        segments = self._parse_checked(uri).segments
        if not segments:
            raise TreeCommandError(Status.ALREADY_EXISTS, "the root exists")
        parent = self._require(segments[:-1])
        if not parent.is_interior:
            raise TreeCommandError(Status.COMMAND_NOT_ALLOWED, f"{join_uri(segments[:-1])} is a leaf")
        if segments[-1] in parent.children:
            raise TreeCommandError(Status.ALREADY_EXISTS, f"{join_uri(segments)} already exists")
        self._link(parent, segments[-1], node)
        return node

    @staticmethod
    def _link(parent: Node, name: str, node: Node) -> None:
        node.name = name
        parent.children[name] = node

    def _walk(self, segments: tuple[str, ...], node: Node) -> Iterator[tuple[str, Node]]:
        yield join_uri(segments), node
        for name, child in node.children.items():
            yield from self._walk(segments + (name,), child)

    def _node_count(self) -> int:
        return sum(1 for _ in self._walk((), self._root))

    def _effective_acl(self, segments: Sequence[str]) -> str:
        """ACL of the nearest node (itself or an ancestor) whose ACL has a value."""
        acl = self._root.acl
        node = self._root
        for name in segments:
            node = node.children[name]
            if node.acl:
                acl = node.acl
        return acl

    def _allowed(self, segments: Sequence[str], command: str, server_id: str) -> bool:
        return acl_allows(self._effective_acl(segments), command, server_id)

    def _check_acl(self, segments: Sequence[str], command: str, server_id: str) -> None:
        if not self._allowed(segments, command, server_id):
            raise TreeCommandError(
                Status.PERMISSION_DENIED, f"{server_id} may not {command} {join_uri(segments)}"
            )

    @staticmethod
    def _check_access(node: Node, command: str, uri: str) -> None:
        if command not in node.access:
            raise TreeCommandError(Status.COMMAND_NOT_ALLOWED, f"{command} is not allowed on {uri}")
