"""Management tree of the simulated OMA DM 1.2 device.

A pure data structure with DM semantics: nodes and their run-time
properties, ACL evaluation, DDF-like access types, and the server-side
commands (Get, Add, Replace, Delete, Copy, Exec, Atomic) answering SyncML DM
status codes. It knows nothing about SyncML XML; the device client maps
commands to calls. Conventions: docs/omadm-reference.md §6 and §8.

One module per concept:

* ``status``: the status codes and ``TreeCommandError``;
* ``uri``: node URIs (parsing, escaping, ``*`` patterns);
* ``acl``: ACLs and access types;
* ``formats``: leaf Formats and the check of a value against its Format;
* ``node``: one node and its run-time properties;
* ``commands``: what the server-side commands take and give back;
* ``tnds``: ``?list=TNDS`` documents;
* ``dmtree``: ``DMTree`` itself and its limits (``TreeConfig``).

This package exports the public names of all of them.
"""
from dmwsi.sim.tree.acl import (ACL_COMMANDS, ADD, DELETE, DYNAMIC_INTERIOR_ACCESS, DYNAMIC_LEAF_ACCESS, EXEC,
                                EXECUTABLE, GET, GROWABLE, READ_ONLY, READ_REPLACE, REPLACE, REPLACE_ONLY,
                                acl_allows, creator_acl, format_acl, parse_acl)
from dmwsi.sim.tree.commands import AddHook, AtomicResult, ExecHandler, ExecRequest, GetResult, TreeCommand
from dmwsi.sim.tree.dmtree import DMTree, TreeConfig, TreeSnapshot
from dmwsi.sim.tree.formats import DEFAULT_LEAF_TYPE, INTERIOR_FORMAT, LEAF_FORMATS, coerce_value
from dmwsi.sim.tree.node import MAX_TITLE_BYTES, PROPERTIES, REPLACEABLE_PROPERTIES, VERNO_MODULUS, Node
from dmwsi.sim.tree.status import Status, TreeCommandError
from dmwsi.sim.tree.tnds import TNDS_FIELDS, TNDS_NAMESPACE, TNDS_XML_TYPE, tnds_document, tnds_fields
from dmwsi.sim.tree.uri import ParsedUri, escape_name, join_uri, matches_pattern, normalize_uri, parse_uri

__all__ = [
    "ACL_COMMANDS", "ADD", "DELETE", "DYNAMIC_INTERIOR_ACCESS", "DYNAMIC_LEAF_ACCESS", "EXEC", "EXECUTABLE",
    "GET", "GROWABLE", "READ_ONLY", "READ_REPLACE", "REPLACE", "REPLACE_ONLY", "acl_allows", "creator_acl",
    "format_acl", "parse_acl",
    "AddHook", "AtomicResult", "ExecHandler", "ExecRequest", "GetResult", "TreeCommand",
    "DMTree", "TreeConfig", "TreeSnapshot",
    "DEFAULT_LEAF_TYPE", "INTERIOR_FORMAT", "LEAF_FORMATS", "coerce_value",
    "MAX_TITLE_BYTES", "PROPERTIES", "REPLACEABLE_PROPERTIES", "VERNO_MODULUS", "Node",
    "Status", "TreeCommandError",
    "TNDS_FIELDS", "TNDS_NAMESPACE", "TNDS_XML_TYPE", "tnds_document", "tnds_fields",
    "ParsedUri", "escape_name", "join_uri", "matches_pattern", "normalize_uri", "parse_uri",
]
