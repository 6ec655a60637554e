"""TNDS (Tree and Description Serialization, ``?list=TNDS``): a subtree as a DDF 1.2 document.

``tnds_fields`` reads the ``+Name``/``-Name`` modifiers of the query into the
run-time properties to write; ``tnds_document`` writes the subtree, leaving
out every node the asking server may not Get (the caller decides which).
"""
from __future__ import annotations

import base64
from typing import Callable

from lxml import etree

from dmwsi.sim.tree.node import Node
from dmwsi.sim.tree.status import Status, TreeCommandError
from dmwsi.sim.tree.uri import join_uri

TNDS_NAMESPACE = "syncml:dmddf1.2"
TNDS_XML_TYPE = "application/vnd.syncml.dmtnds+xml"
# Properties a TNDS document may carry, in DTD order of RTProperties, plus Value.
TNDS_FIELDS = ("ACL", "Format", "Name", "Size", "Title", "TStamp", "Type", "VerNo", "Value")

#: Whether the node at these segments is written (the asking server may Get it).
Visible = Callable[[tuple[str, ...], Node], bool]


def tnds_fields(modifiers: list[str], default_fields: tuple[str, ...]) -> tuple[str, ...]:
    """The fields to write for ``?list=TNDS+ACL+Format`` (only those) or
    ``?list=TNDS-Value`` (the defaults but those); no modifier: the defaults."""
    if not modifiers:
        return default_fields
    # A '+' may arrive decoded as a space.
    signs = {"-" if modifier[0] == "-" else "+" for modifier in modifiers}
    if len(signs) > 1:
        raise TreeCommandError(Status.BAD_REQUEST, "TNDS property list mixes '+' and '-'")
    names = [modifier[1:] for modifier in modifiers]
    unknown = [name for name in names if name not in TNDS_FIELDS]
    if unknown:
        raise TreeCommandError(Status.OPTIONAL_FEATURE_NOT_SUPPORTED, f"unsupported TNDS fields {unknown}")
    if signs == {"+"}:
        return tuple(name for name in TNDS_FIELDS if name in names)
    return tuple(name for name in default_fields if name not in names)


def tnds_document(segments: tuple[str, ...], node: Node, fields: tuple[str, ...], visible: Visible) -> str:
    """The MgmtTree document of the subtree at ``segments``."""
    tree_element = etree.Element(_tnds("MgmtTree"), nsmap={None: TNDS_NAMESPACE})
    etree.SubElement(tree_element, _tnds("VerDTD")).text = "1.2"
    _tnds_node(tree_element, segments, node, fields, visible, top=True)
    return etree.tostring(tree_element, encoding="unicode")


def _tnds_node(
    parent_element: etree._Element,
    segments: tuple[str, ...],
    node: Node,
    fields: tuple[str, ...],
    visible: Visible,
    *,
    top: bool,
) -> None:
    element = etree.SubElement(parent_element, _tnds("Node"))
    etree.SubElement(element, _tnds("NodeName")).text = node.name
    if top and segments:
        etree.SubElement(element, _tnds("Path")).text = join_uri(segments[:-1])
    properties = etree.SubElement(element, _tnds("RTProperties"))
    for name in fields:
        if name == "ACL" and node.acl:
            etree.SubElement(properties, _tnds("ACL")).text = node.acl
        elif name == "Format":
            etree.SubElement(etree.SubElement(properties, _tnds("Format")), _tnds(node.format))
        elif name == "Name":
            etree.SubElement(properties, _tnds("Name")).text = node.name
        elif name == "Size" and not node.is_interior:
            etree.SubElement(properties, _tnds("Size")).text = str(node.size)
        elif name == "Title" and node.title:
            etree.SubElement(properties, _tnds("Title")).text = node.title
        elif name == "TStamp":
            etree.SubElement(properties, _tnds("TStamp")).text = node.tstamp
        elif name == "Type" and (node.type or not node.is_interior):
            kind = "DDFName" if node.is_interior else "MIME"
            etree.SubElement(etree.SubElement(properties, _tnds("Type")), _tnds(kind)).text = node.type
        elif name == "VerNo":
            etree.SubElement(properties, _tnds("VerNo")).text = str(node.verno)
    if len(properties) == 0:
        element.remove(properties)
    if node.is_interior:
        for name, child in node.children.items():
            child_segments = segments + (name,)
            if visible(child_segments, child):
                _tnds_node(element, child_segments, child, fields, visible, top=False)
    elif "Value" in fields:
        value = node.value
        text = base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value
        etree.SubElement(element, _tnds("Value")).text = text


def _tnds(tag: str) -> str:
    return f"{{{TNDS_NAMESPACE}}}{tag}"
