"""SyncML DM 1.2 messages: data model, lenient parser, strict serializer.

``parse`` accepts what real clients send (reference §2 and the fixture
README): any or no namespace, SyncML 1.1 roots, Meta on the command instead of
the item, Alert children in either order, pretty-printing whitespace, a
DOCTYPE (what libwbxml's decoder emits), unknown commands.  ``serialize``
writes exactly one form: DTD child order (§2.1), root namespace
``SYNCML:SYNCML1.2``, every MetInf element with ``xmlns="syncml:metinf"``,
UTF-8 with an XML declaration.  Device parsers are order-sensitive.

Identifiers (SessionID, MsgID, CmdID, MsgRef, CmdRef) are kept as the strings
found on the wire; status and alert codes are ints (see ``codes``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import ClassVar, Union

from lxml import etree
from dmwsi.errors import DmwsiError

SYNCML_NS = "SYNCML:SYNCML1.2"
METINF_NS = "syncml:metinf"

# Credential / challenge types (reference §9); the Meta Type of Cred and Chal.
AUTH_BASIC = "syncml:auth-basic"
AUTH_MD5 = "syncml:auth-md5"
AUTH_MAC = "syncml:auth-MAC"


class ProtocolError(DmwsiError, ValueError):
    """The bytes are not a usable SyncML message."""


# --------------------------------------------------------------------------
# Data model
# --------------------------------------------------------------------------


@dataclass(kw_only=True)
class Meta:
    """MetInf values; None means absent (receivers default to chr/text/plain)."""

    format: str | None = None
    type: str | None = None
    mark: str | None = None
    size: int | None = None
    version: str | None = None
    next_nonce: str | None = None
    max_msg_size: int | None = None
    max_obj_size: int | None = None
    emi: list[str] = field(default_factory=list)

    def merged(self, default: Meta | None) -> Meta:
        """Copy of self with absent values taken from ``default``."""
        if default is None:
            return replace(self, emi=list(self.emi))
        values = {}
        for f in fields(self):
            mine = getattr(self, f.name)
            values[f.name] = mine if mine not in (None, []) else getattr(default, f.name)
        values["emi"] = list(values["emi"])
        return Meta(**values)


@dataclass(kw_only=True)
class Cred:
    """SyncHdr credentials (the only place DM allows Cred besides Status)."""

    type: str | None = None  # e.g. AUTH_MD5; absent on the wire means basic
    format: str | None = None  # normally "b64"
    data: str = ""


@dataclass(kw_only=True)
class Chal:
    """Challenge in a Status; ``next_nonce`` is the Base64 text as sent."""

    type: str | None = None
    format: str | None = None
    next_nonce: str | None = None


@dataclass(kw_only=True)
class Item:
    target: str | None = None  # Target/LocURI
    target_name: str | None = None  # Target/LocName
    source: str | None = None
    source_name: str | None = None
    source_parent: str | None = None  # DS only, kept for leniency
    target_parent: str | None = None
    meta: Meta | None = None
    data: str | None = None  # text as sent (b64 stays b64)
    # True when Data held child elements (TNDS, DevInf): ``data`` is then the
    # raw inner XML and is written back as elements, not escaped text.
    data_xml: bool = False
    more_data: bool = False


@dataclass(kw_only=True)
class _ItemCommand:
    cmd_id: str | None = None  # None only when a client omitted it (answer 400)
    no_resp: bool = False
    meta: Meta | None = None
    items: list[Item] = field(default_factory=list)


@dataclass(kw_only=True)
class Add(_ItemCommand):
    tag: ClassVar[str] = "Add"


@dataclass(kw_only=True)
class Replace(_ItemCommand):
    tag: ClassVar[str] = "Replace"


@dataclass(kw_only=True)
class Copy(_ItemCommand):
    tag: ClassVar[str] = "Copy"


@dataclass(kw_only=True)
class Delete(_ItemCommand):
    tag: ClassVar[str] = "Delete"


@dataclass(kw_only=True)
class Get(_ItemCommand):
    tag: ClassVar[str] = "Get"
    lang: str | None = None


@dataclass(kw_only=True)
class Exec(_ItemCommand):
    tag: ClassVar[str] = "Exec"
    correlator: str | None = None


@dataclass(kw_only=True)
class Alert:
    tag: ClassVar[str] = "Alert"
    cmd_id: str | None = None
    no_resp: bool = False
    data: int | None = None  # alert code, see codes.AlertCode
    correlator: str | None = None
    items: list[Item] = field(default_factory=list)


@dataclass(kw_only=True)
class Atomic:
    tag: ClassVar[str] = "Atomic"
    cmd_id: str | None = None
    no_resp: bool = False
    meta: Meta | None = None
    commands: list[Command] = field(default_factory=list)


@dataclass(kw_only=True)
class Sequence:
    tag: ClassVar[str] = "Sequence"
    cmd_id: str | None = None
    no_resp: bool = False
    meta: Meta | None = None
    commands: list[Command] = field(default_factory=list)


@dataclass(kw_only=True)
class Status:
    tag: ClassVar[str] = "Status"
    cmd_id: str | None = None
    msg_ref: str | None = None
    cmd_ref: str  # "0" = the SyncHdr
    cmd: str  # element name of the referenced command
    target_refs: list[str] = field(default_factory=list)
    source_refs: list[str] = field(default_factory=list)
    cred: Cred | None = None
    chal: Chal | None = None
    code: int  # the Status <Data>
    items: list[Item] = field(default_factory=list)


@dataclass(kw_only=True)
class Results:
    tag: ClassVar[str] = "Results"
    cmd_id: str | None = None
    msg_ref: str | None = None
    cmd_ref: str
    meta: Meta | None = None
    target_ref: str | None = None
    source_ref: str | None = None
    items: list[Item] = field(default_factory=list)


@dataclass(kw_only=True)
class UnknownCommand:
    """A SyncBody child DM does not define (DS Sync/Map/Put...): answer 400/406."""

    tag: str
    cmd_id: str | None = None
    xml: str = ""  # the element as received, re-emitted verbatim by serialize


Command = Union[Add, Replace, Copy, Delete, Get, Exec, Alert, Atomic, Sequence, Status, Results, UnknownCommand]


@dataclass(kw_only=True)
class SyncHdr:
    ver_dtd: str = "1.2"
    ver_proto: str = "DM/1.2"
    session_id: str
    msg_id: str
    target: str  # Target/LocURI: the recipient
    target_name: str | None = None
    source: str  # Source/LocURI: the sender
    source_name: str | None = None  # device user name for MD5 (§9.2)
    resp_uri: str | None = None
    no_resp: bool = False
    cred: Cred | None = None
    meta: Meta | None = None  # max_msg_size / max_obj_size live here


@dataclass(kw_only=True)
class Message:
    header: SyncHdr
    body: list[Command] = field(default_factory=list)
    final: bool


# --------------------------------------------------------------------------
# Parsing (lenient)
# --------------------------------------------------------------------------

# Entities and DTDs are never loaded: the input comes from untrusted devices.
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, remove_comments=True, remove_pis=True
)


def _local(el) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _kids(el):
    return [c for c in el if isinstance(c.tag, str)]


def _child(el, name: str):
    for c in _kids(el):
        if _local(c) == name:
            return c
    return None


def _text(el, name: str | None = None) -> str | None:
    """Stripped text of ``el`` (or of its first child ``name``); None if absent."""
    if name is not None:
        el = _child(el, name)
        if el is None:
            return None
    return (el.text or "").strip()


def _int(value: str, where: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ProtocolError(f"{where}: expected an integer, got {value!r}") from None


def _loc(el, name: str) -> tuple[str | None, str | None]:
    """(LocURI, LocName) of a Target/Source child."""
    sub = _child(el, name)
    if sub is None:
        return None, None
    return _text(sub, "LocURI"), _text(sub, "LocName")


# (element, attribute, type) in MetInf DTD order; shared by parse and serialize.
_META_FIELDS = (
    ("Format", "format", str),
    ("Type", "type", str),
    ("Mark", "mark", str),
    ("Size", "size", int),
    ("Version", "version", str),
    ("NextNonce", "next_nonce", str),
    ("MaxMsgSize", "max_msg_size", int),
    ("MaxObjSize", "max_obj_size", int),
)
_META_BY_TAG = {tag: (attr, kind) for tag, attr, kind in _META_FIELDS}


def _parse_meta(el, meta: Meta | None = None) -> Meta:
    meta = meta or Meta()
    for c in _kids(el):
        name = _local(c)
        if name == "MetInf":  # some old clients wrap MetInf elements
            _parse_meta(c, meta)
        elif name == "EMI":
            meta.emi.append(_text(c))
        elif name in _META_BY_TAG:
            attr, kind = _META_BY_TAG[name]
            value = _text(c)
            setattr(meta, attr, _int(value, f"Meta/{name}") if kind is int else value)
        # Anchor, Mem, FieldLevel...: DS-only, ignored
    return meta


def _opt_meta(el) -> Meta | None:
    m = _child(el, "Meta")
    return None if m is None else _parse_meta(m)


def _parse_data(el) -> tuple[str, bool]:
    """Data text, or the raw inner XML when Data holds elements (TNDS)."""
    kids = _kids(el)
    if not kids:
        return el.text or "", False
    raw = (el.text or "") + "".join(etree.tostring(k, encoding="unicode", with_tail=True) for k in kids)
    return raw.strip(), True


def _parse_item(el) -> Item:
    item = Item()
    item.target, item.target_name = _loc(el, "Target")
    item.source, item.source_name = _loc(el, "Source")
    item.source_parent = _loc(el, "SourceParent")[0]
    item.target_parent = _loc(el, "TargetParent")[0]
    item.meta = _opt_meta(el)
    data = _child(el, "Data")
    if data is not None:
        item.data, item.data_xml = _parse_data(data)
    item.more_data = _child(el, "MoreData") is not None
    return item


def _parse_items(el, inherited: Meta | None = None) -> list[Item]:
    items = [_parse_item(c) for c in _kids(el) if _local(c) == "Item"]
    if inherited is not None:
        # Meta on the command is the default for its items (koneki sends it
        # there); merging means consumers only ever look at item.meta.
        for item in items:
            item.meta = item.meta.merged(inherited) if item.meta else inherited.merged(None)
    return items


def _parse_cred(el) -> Cred:
    meta = _opt_meta(el) or Meta()
    return Cred(type=meta.type, format=meta.format, data=_text(el, "Data") or "")


def _parse_chal(el) -> Chal:
    meta = _opt_meta(el) or Meta()
    return Chal(type=meta.type, format=meta.format, next_nonce=meta.next_nonce)


_ITEM_COMMANDS = {cls.tag: cls for cls in (Add, Replace, Copy, Delete, Get, Exec)}


def _parse_command(el) -> Command:
    name = _local(el)
    cmd_id = _text(el, "CmdID")
    no_resp = _child(el, "NoResp") is not None
    if name in _ITEM_COMMANDS:
        meta = _opt_meta(el)
        cmd = _ITEM_COMMANDS[name](cmd_id=cmd_id, no_resp=no_resp, meta=meta, items=_parse_items(el, meta))
        if isinstance(cmd, Get):
            cmd.lang = _text(el, "Lang")
        elif isinstance(cmd, Exec):
            cmd.correlator = _text(el, "Correlator")
        return cmd
    if name == "Alert":
        # Children are looked up by name, so Correlator may precede Data (§2.1 [?]).
        data = _text(el, "Data")
        return Alert(
            cmd_id=cmd_id,
            no_resp=no_resp,
            data=None if not data else _int(data, f"Alert {cmd_id}/Data"),
            correlator=_text(el, "Correlator"),
            items=_parse_items(el),
        )
    if name in ("Atomic", "Sequence"):
        cls = Atomic if name == "Atomic" else Sequence
        inner = [
            _parse_command(c) for c in _kids(el) if _local(c) not in ("CmdID", "NoResp", "Meta", "Cred")
        ]
        return cls(cmd_id=cmd_id, no_resp=no_resp, meta=_opt_meta(el), commands=inner)
    if name == "Status":
        cmd_ref, code = _text(el, "CmdRef"), _text(el, "Data")
        if cmd_ref is None or code is None:
            raise ProtocolError(f"Status {cmd_id}: CmdRef and Data are required")
        cred, chal = _child(el, "Cred"), _child(el, "Chal")
        return Status(
            cmd_id=cmd_id,
            msg_ref=_text(el, "MsgRef"),
            cmd_ref=cmd_ref,
            cmd=_text(el, "Cmd") or "",
            target_refs=[_text(c) for c in _kids(el) if _local(c) == "TargetRef"],
            source_refs=[_text(c) for c in _kids(el) if _local(c) == "SourceRef"],
            cred=None if cred is None else _parse_cred(cred),
            chal=None if chal is None else _parse_chal(chal),
            code=_int(code, f"Status {cmd_id}/Data"),
            items=_parse_items(el),
        )
    if name == "Results":
        cmd_ref = _text(el, "CmdRef")
        if cmd_ref is None:
            raise ProtocolError(f"Results {cmd_id}: CmdRef is required")
        meta = _opt_meta(el)
        return Results(
            cmd_id=cmd_id,
            msg_ref=_text(el, "MsgRef"),
            cmd_ref=cmd_ref,
            meta=meta,
            target_ref=_text(el, "TargetRef"),
            source_ref=_text(el, "SourceRef"),
            items=_parse_items(el, meta),
        )
    return UnknownCommand(tag=name, cmd_id=cmd_id, xml=etree.tostring(el, encoding="unicode", with_tail=False))


def _parse_header(el) -> SyncHdr:
    def required(name):
        value = _text(el, name)
        if not value:
            raise ProtocolError(f"SyncHdr: missing {name}")
        return value

    target, target_name = _loc(el, "Target")
    source, source_name = _loc(el, "Source")
    if not target or not source:
        raise ProtocolError("SyncHdr: missing Target/LocURI or Source/LocURI")
    cred = _child(el, "Cred")
    return SyncHdr(
        ver_dtd=_text(el, "VerDTD") or "",
        ver_proto=_text(el, "VerProto") or "",
        session_id=required("SessionID"),
        msg_id=required("MsgID"),
        target=target,
        target_name=target_name,
        source=source,
        source_name=source_name,
        resp_uri=_text(el, "RespURI") or None,
        no_resp=_child(el, "NoResp") is not None,
        cred=None if cred is None else _parse_cred(cred),
        meta=_opt_meta(el),
    )


def parse(xml: bytes) -> Message:
    """Parse one SyncML DM message; raise ProtocolError if it is not one."""
    if isinstance(xml, str):
        xml = xml.encode("utf-8")
    # Tolerate stray whitespace around the document and NUL terminators.
    xml = xml.strip(b" \t\r\n\x00")
    if not xml:
        raise ProtocolError("empty message")
    try:
        root = etree.fromstring(xml, _PARSER)
    except etree.XMLSyntaxError as e:
        raise ProtocolError(f"not well-formed XML: {e}") from None
    if _local(root) != "SyncML":
        raise ProtocolError(f"root element is <{_local(root)}>, expected <SyncML>")
    hdr, body = _child(root, "SyncHdr"), _child(root, "SyncBody")
    if hdr is None or body is None:
        raise ProtocolError("SyncML needs both SyncHdr and SyncBody")
    commands, final = [], False
    for el in _kids(body):
        if _local(el) == "Final":
            final = True
        else:
            commands.append(_parse_command(el))
    return Message(header=_parse_header(hdr), body=commands, final=final)


# --------------------------------------------------------------------------
# Serialization (strict, DTD order of reference §2.1)
# --------------------------------------------------------------------------


def _sub(parent, name: str, text: str | None = None):
    el = etree.SubElement(parent, f"{{{SYNCML_NS}}}{name}")
    if text is not None:
        el.text = str(text)
    return el


def _flag(parent, name: str, on: bool) -> None:
    if on:
        _sub(parent, name)


def _opt(parent, name: str, text) -> None:
    if text is not None:
        _sub(parent, name, text)


def _write_metinf(parent, name: str, text) -> None:
    # Each MetInf element declares its own namespace, as devices expect (§2).
    el = etree.SubElement(parent, f"{{{METINF_NS}}}{name}", nsmap={None: METINF_NS})
    el.text = str(text)


def _write_meta(parent, meta: Meta | None) -> None:
    if meta is None:
        return
    el = _sub(parent, "Meta")
    for tag, attr, _ in _META_FIELDS:
        value = getattr(meta, attr)
        if value is not None:
            _write_metinf(el, tag, value)
    for emi in meta.emi:
        _write_metinf(el, "EMI", emi)


def _write_loc(parent, name: str, uri: str | None, loc_name: str | None = None) -> None:
    if uri is None:
        return
    el = _sub(parent, name)
    _sub(el, "LocURI", uri)
    _opt(el, "LocName", loc_name)


def _write_cred(parent, cred: Cred | None) -> None:
    if cred is None:
        return
    el = _sub(parent, "Cred")
    if cred.type is not None or cred.format is not None:
        _write_meta(el, Meta(format=cred.format, type=cred.type))
    _sub(el, "Data", cred.data)


def _write_data(parent, item: Item) -> None:
    if item.data is None:
        return
    el = _sub(parent, "Data")
    if not item.data_xml:
        el.text = item.data
        return
    try:
        frag = etree.fromstring(f'<Data xmlns="{SYNCML_NS}">{item.data}</Data>', _PARSER)
    except etree.XMLSyntaxError as e:
        raise ValueError(f"Item.data_xml is set but data is not XML: {e}") from None
    el.text = frag.text
    el.extend(list(frag))


def _write_item(parent, item: Item) -> None:
    el = _sub(parent, "Item")
    _write_loc(el, "Target", item.target, item.target_name)
    _write_loc(el, "Source", item.source, item.source_name)
    _write_loc(el, "SourceParent", item.source_parent)
    _write_loc(el, "TargetParent", item.target_parent)
    _write_meta(el, item.meta)
    _write_data(el, item)
    _flag(el, "MoreData", item.more_data)


def _write_items(parent, cmd, exactly_one: bool = False) -> None:
    n = len(cmd.items)
    if (exactly_one and n != 1) or n == 0:
        raise ValueError(f"{cmd.tag} {cmd.cmd_id}: needs {'exactly one' if exactly_one else 'at least one'} Item")
    for item in cmd.items:
        _write_item(parent, item)


def _write_command(parent, cmd: Command, correlator_first: bool) -> None:
    if isinstance(cmd, UnknownCommand):
        parent.append(etree.fromstring(cmd.xml, _PARSER))
        return
    if cmd.cmd_id is None:
        raise ValueError(f"{cmd.tag}: cmd_id is required")
    el = _sub(parent, cmd.tag)
    _sub(el, "CmdID", cmd.cmd_id)
    if isinstance(cmd, _ItemCommand):
        _flag(el, "NoResp", cmd.no_resp)
        if isinstance(cmd, Get):
            _opt(el, "Lang", cmd.lang)
        _write_meta(el, cmd.meta)
        if isinstance(cmd, Exec):
            _opt(el, "Correlator", cmd.correlator)
        _write_items(el, cmd, exactly_one=isinstance(cmd, Exec))
    elif isinstance(cmd, Alert):
        _flag(el, "NoResp", cmd.no_resp)
        data = None if cmd.data is None else str(int(cmd.data))
        # DTD order is Data, Correlator; the Synthesis toolkit writes the
        # reverse (§2.1 [?]), so the order is switchable.
        pair = [("Data", data), ("Correlator", cmd.correlator)]
        for name, value in reversed(pair) if correlator_first else pair:
            _opt(el, name, value)
        for item in cmd.items:
            _write_item(el, item)
    elif isinstance(cmd, (Atomic, Sequence)):
        _flag(el, "NoResp", cmd.no_resp)
        _write_meta(el, cmd.meta)
        if not cmd.commands:
            raise ValueError(f"{cmd.tag} {cmd.cmd_id}: needs at least one command")
        for inner in cmd.commands:
            _write_command(el, inner, correlator_first)
    elif isinstance(cmd, Status):
        _opt(el, "MsgRef", cmd.msg_ref)
        _sub(el, "CmdRef", cmd.cmd_ref)
        _sub(el, "Cmd", cmd.cmd)
        for ref in cmd.target_refs:
            _sub(el, "TargetRef", ref)
        for ref in cmd.source_refs:
            _sub(el, "SourceRef", ref)
        _write_cred(el, cmd.cred)
        if cmd.chal is not None:
            chal = _sub(el, "Chal")
            _write_meta(chal, Meta(format=cmd.chal.format, type=cmd.chal.type, next_nonce=cmd.chal.next_nonce))
        _sub(el, "Data", str(int(cmd.code)))
        for item in cmd.items:
            _write_item(el, item)
    elif isinstance(cmd, Results):
        _opt(el, "MsgRef", cmd.msg_ref)
        _sub(el, "CmdRef", cmd.cmd_ref)
        _write_meta(el, cmd.meta)
        _opt(el, "TargetRef", cmd.target_ref)
        _opt(el, "SourceRef", cmd.source_ref)
        _write_items(el, cmd)
    else:
        raise TypeError(f"not a SyncML command: {cmd!r}")


def _write_header(parent, hdr: SyncHdr) -> None:
    el = _sub(parent, "SyncHdr")
    _sub(el, "VerDTD", hdr.ver_dtd)
    _sub(el, "VerProto", hdr.ver_proto)
    _sub(el, "SessionID", hdr.session_id)
    _sub(el, "MsgID", hdr.msg_id)
    _write_loc(el, "Target", hdr.target, hdr.target_name)
    _write_loc(el, "Source", hdr.source, hdr.source_name)
    _opt(el, "RespURI", hdr.resp_uri)
    _flag(el, "NoResp", hdr.no_resp)
    _write_cred(el, hdr.cred)
    _write_meta(el, hdr.meta)


def serialize(msg: Message, *, alert_correlator_first: bool = False) -> bytes:
    """UTF-8 XML for ``msg`` in DTD order; ValueError if ``msg`` breaks the DTD."""
    root = etree.Element(f"{{{SYNCML_NS}}}SyncML", nsmap={None: SYNCML_NS})
    _write_header(root, msg.header)
    body = _sub(root, "SyncBody")
    for cmd in msg.body:
        _write_command(body, cmd, alert_correlator_first)
    _flag(body, "Final", msg.final)
    return b'<?xml version="1.0" encoding="UTF-8"?>' + etree.tostring(root, encoding="UTF-8", xml_declaration=False)
