"""Read the hand-authored WSDL/XSD contract into plain records.

The contract in wsdl/ and xsd/ is the single source of truth: nothing here
types an operation or a field twice. The reader is strict: every element and
every attribute of the WSDL and of the XSD files it pulls in is checked
against the subset below, and anything else is refused with a
:class:`ContractError` naming ``file:line`` and the construct, so a contract
edit can never be silently half-served.

The subset:

* WSDL 1.1: ``wsdl:definitions`` (name, targetNamespace) holding
  ``wsdl:documentation``, one ``wsdl:types`` whose one ``xs:schema`` only pulls
  XSD files in (``xs:include`` / ``xs:import`` with a schemaLocation; the types
  live in xsd/), messages of exactly one element part, one ``wsdl:portType``
  whose operations have documentation, one input, one output and any faults,
  one SOAP 1.1 document/literal ``wsdl:binding`` (``soap:operation``,
  ``soap:body`` / ``soap:fault`` with use="literal"), one ``wsdl:service``
  with one port and its ``soap:address``.
* XSD: ``xs:schema`` with elementFormDefault="qualified", xs:include /
  xs:import, ``xs:annotation``/``xs:documentation``; named ``xs:simpleType``
  restricting a built-in: on xs:string ``xs:enumeration`` (alone), or
  ``xs:length``, ``xs:minLength``, ``xs:maxLength`` and one ``xs:pattern``; on
  xs:int / xs:long ``xs:minInclusive``, ``xs:maxInclusive``,
  ``xs:minExclusive``, ``xs:maxExclusive``; named ``xs:complexType`` holding
  at most one ``xs:sequence`` of typed ``xs:element`` (name, type, minOccurs,
  maxOccurs, nillable, default); top-level typed ``xs:element``.
"""
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from dmwsi.errors import DmwsiError
from dmwsi.resources import WSDL_DIR

XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP_BINDING = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP_HTTP = "http://schemas.xmlsoap.org/soap/http"
CONTRACT_DIR = WSDL_DIR
MAIN_WSDL = CONTRACT_DIR / "dmwsi-1.0.wsdl"
CALLBACK_WSDL = CONTRACT_DIR / "dmwsi-callback-1.0.wsdl"
MAIN_NAMESPACE = "http://dmwsi.org/ns/dmwsi/1.0"
CALLBACK_NAMESPACE = "http://dmwsi.org/ns/dmwsi-callback/1.0"

BUILTINS = ("string", "int", "long", "boolean", "dateTime", "base64Binary")
# facet -> the built-in bases it may restrict (the facets the SOAP edge turns into spyne constraints)
FACETS = {
    "enumeration": ("string",),
    "length": ("string",), "minLength": ("string",), "maxLength": ("string",), "pattern": ("string",),
    "minInclusive": ("int", "long"), "maxInclusive": ("int", "long"),
    "minExclusive": ("int", "long"), "maxExclusive": ("int", "long"),
}
DEFAULT_BASES = ("string", "int", "long", "boolean")
_PREFIXES = {XS: "xs", WSDL: "wsdl", SOAP_BINDING: "soap"}
# Parsing the contract fetches nothing from the network and expands no entity.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, remove_blank_text=False)


class ContractError(DmwsiError):
    """The contract uses something outside the supported subset (``file:line: ...``)."""


@dataclass
class Field:
    name: str
    type: tuple          # QName as (namespace, local name)
    min_occurs: int = 1
    max_occurs: object = 1   # int or "unbounded"
    nillable: bool = False
    default: str = None      # the XSD default, as written
    documentation: str = ""

    @property
    def repeated(self):
        return self.max_occurs == "unbounded" or self.max_occurs > 1


@dataclass
class SimpleType:
    """A named restriction of a built-in type."""
    name: tuple
    base: tuple                     # (XS, built-in name)
    enumerations: list = field(default_factory=list)
    facets: dict = field(default_factory=dict)     # facet name -> int (lengths, bounds) or str (pattern)


@dataclass
class Fault:
    name: str
    element: tuple   # the fault message's element QName


@dataclass
class Operation:
    name: str
    documentation: str
    input: tuple     # element QName
    output: tuple
    faults: list = field(default_factory=list)   # [Fault]
    soap_action: str = ""


@dataclass
class Contract:
    """What a WSDL (with the schemas it pulls in) declares."""
    path: Path
    target_namespace: str
    name: str                   # portType name
    service_name: str
    operations: dict = field(default_factory=dict)      # name -> Operation
    complex_types: dict = field(default_factory=dict)   # QName -> [Field]
    simple_types: dict = field(default_factory=dict)    # QName -> SimpleType
    elements: dict = field(default_factory=dict)        # QName -> type QName
    type_docs: dict = field(default_factory=dict)       # type QName -> documentation
    element_docs: dict = field(default_factory=dict)    # top-level element QName -> documentation
    schema_files: list = field(default_factory=list)    # every XSD file pulled in, in reading order

    @property
    def enums(self):
        """QName -> values, for the string enumerations."""
        return {q: t.enumerations for q, t in self.simple_types.items() if t.enumerations}

    def standalone_elements(self):
        """Top-level elements no operation message uses (such as FaultDetail)."""
        used = {q for op in self.operations.values() for q in (op.input, op.output)}
        return [q for q in self.elements if q not in used]

    def fields_of(self, element_qname):
        return self.complex_types[self.elements[element_qname]]


class _Document:
    """One parsed contract file, and the refusal that names a place in it."""

    def __init__(self, path):
        self.path = path
        try:
            self.root = etree.parse(str(path), PARSER).getroot()
        except (OSError, etree.XMLSyntaxError) as error:
            raise ContractError(f"{path}: cannot read the contract file: {error}") from None

    def refuse(self, node, what):
        raise ContractError(f"{self.path}:{node.sourceline}: {what}")

    def children(self, node, allowed, attributes=(), required=()):
        """node's element children, after checking its attributes and children against the subset."""
        for name in node.attrib:
            if name not in attributes:
                self.refuse(node, f"attribute {_attribute_name(name)} on {_name(node)} is not supported")
        for name in required:
            if node.get(name) is None:
                self.refuse(node, f"{_name(node)} needs attribute {name}")
        if node.text and node.text.strip():
            self.refuse(node, f"text content in {_name(node)} is not supported")
        kids = []
        for child in node:
            if child.tail and child.tail.strip():
                self.refuse(child, f"text content in {_name(node)} is not supported")
            if not isinstance(child.tag, str):
                continue       # comments, processing instructions
            if child.tag not in allowed:
                self.refuse(child, f"{_name(child)} in {_name(node)} is not supported")
            kids.append(child)
        return kids

    def documentation(self, node):
        """The text of an xs:documentation / wsdl:documentation (plain text: no attributes, no markup)."""
        if node.attrib:
            self.refuse(node, f"attributes on {_name(node)} are not supported")
        for child in node:
            if isinstance(child.tag, str):
                self.refuse(child, f"markup in {_name(node)} is not supported")
        return " ".join("".join(node.itertext()).split())

    def qname(self, node, attribute):
        prefixed = node.get(attribute)
        prefix, _, local = prefixed.rpartition(":")
        ns = node.nsmap.get(prefix or None)
        if ns is None:
            self.refuse(node, f"unknown prefix in {attribute}={prefixed!r}")
        return ns, local


def _name(node):
    q = etree.QName(node)
    return f"{_PREFIXES.get(q.namespace, '{' + str(q.namespace) + '}')}:{q.localname}"


def _attribute_name(name):
    q = etree.QName(name)
    return f"{{{q.namespace}}}{q.localname}" if q.namespace else q.localname


def _xs(name):
    return f"{{{XS}}}{name}"


def _wsdl(name):
    return f"{{{WSDL}}}{name}"


def _soap(name):
    return f"{{{SOAP_BINDING}}}{name}"


def _annotation(doc, node, kids):
    """The xs:documentation text of node's xs:annotation (kids: node's checked children)."""
    texts = []
    for kid in kids:
        if kid.tag == _xs("annotation"):
            texts.extend(doc.documentation(d) for d in doc.children(kid, {_xs("documentation")}))
    return " ".join(texts)


def _integer(doc, node, attribute, low=0):
    text = node.get(attribute)
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = None
    if value is None or value < low:
        doc.refuse(node, f"{attribute}={text!r} on {_name(node)} is not an integer >= {low}")
    return value


# --- XSD -------------------------------------------------------------------------------------

def _read_schema_file(path, namespace, contract, reading, origin, node):
    path = path.resolve()
    if path in reading:
        return
    reading.add(path)
    if not path.is_file():
        origin.refuse(node, f"schemaLocation {node.get('schemaLocation')!r}: no such file")
    doc = _Document(path)
    if doc.root.tag != _xs("schema"):
        origin.refuse(node, f"{path.name} is not an XML Schema document")
    if doc.root.get("targetNamespace") != namespace:
        origin.refuse(node, f"{path.name} has targetNamespace {doc.root.get('targetNamespace')!r}, "
                            f"not {namespace!r}")
    contract.schema_files.append(path)
    _read_schema(doc, contract, reading)


class _Reading:
    """What one load_contract call tracks: the files read, and the type references to check at the end."""

    def __init__(self):
        self.files = set()
        self.references = []     # (document, node, type QName)
        self.defaults = []       # (document, node, Field)

    def __contains__(self, path):
        return path in self.files

    def add(self, path):
        self.files.add(path)

    def refer(self, doc, node, qname):
        self.references.append((doc, node, qname))
        return qname

    def check(self, contract):
        """Every type a field or a top-level element names is defined (types may be used before they are)."""
        known = set(contract.complex_types) | set(contract.simple_types) | {(XS, b) for b in BUILTINS}
        for doc, node, qname in self.references:
            if qname not in known:
                doc.refuse(node, f"type {{{qname[0]}}}{qname[1]} is not defined (or not a supported built-in)")
        for doc, node, f in self.defaults:
            simple = contract.simple_types.get(f.type)
            base = simple.base if simple else f.type
            if base[0] != XS or base[1] not in DEFAULT_BASES:
                doc.refuse(node, f"{f.name}: a default on a {base[1]} is not supported "
                                 f"(only on {', '.join(DEFAULT_BASES)} and their restrictions)")


def _read_schema(doc, contract, reading):
    schema = doc.root
    kids = doc.children(schema, {_xs(n) for n in ("annotation", "include", "import", "simpleType", "complexType",
                                                  "element")},
                        ("targetNamespace", "elementFormDefault", "version"), ("targetNamespace",))
    if schema.get("elementFormDefault") != "qualified":
        doc.refuse(schema, 'xs:schema needs elementFormDefault="qualified"')
    tns = schema.get("targetNamespace")
    _annotation(doc, schema, kids)
    for child in kids:
        tag = etree.QName(child).localname
        if tag in ("include", "import"):
            _pull_in(doc, child, tns, contract, reading)
        elif tag == "complexType":
            _read_complex_type(doc, child, tns, contract, reading)
        elif tag == "simpleType":
            _read_simple_type(doc, child, tns, contract)
        elif tag == "element":
            notes = doc.children(child, {_xs("annotation")}, ("name", "type"), ("name", "type"))
            qname = (tns, child.get("name"))
            contract.elements[qname] = reading.refer(doc, child, doc.qname(child, "type"))
            contract.element_docs[qname] = _annotation(doc, child, notes)


def _pull_in(doc, node, tns, contract, reading):
    """xs:include (same namespace) or xs:import (another one) of an XSD file."""
    if etree.QName(node).localname == "include":
        doc.children(node, (), ("schemaLocation",), ("schemaLocation",))
        namespace = tns
    else:
        doc.children(node, (), ("namespace", "schemaLocation"), ("namespace", "schemaLocation"))
        namespace = node.get("namespace")
        if namespace == tns:
            doc.refuse(node, "xs:import of the schema's own namespace (use xs:include)")
    _read_schema_file(doc.path.parent / node.get("schemaLocation"), namespace, contract, reading, doc, node)


def _read_complex_type(doc, node, tns, contract, reading):
    kids = doc.children(node, {_xs("annotation"), _xs("sequence")}, ("name",), ("name",))
    qname = (tns, node.get("name"))
    sequences = [k for k in kids if k.tag == _xs("sequence")]
    if len(sequences) > 1:
        doc.refuse(sequences[1], f"{qname[1]}: more than one xs:sequence is not supported")
    fields = []
    for sequence in sequences:
        for el in doc.children(sequence, {_xs("element")}):
            notes = doc.children(el, {_xs("annotation")},
                                 ("name", "type", "minOccurs", "maxOccurs", "nillable", "default"), ("name", "type"))
            max_occurs = el.get("maxOccurs", "1")
            nillable = el.get("nillable", "false")
            if nillable not in ("true", "false"):
                doc.refuse(el, f"nillable={nillable!r} is not a boolean")
            f = Field(
                name=el.get("name"),
                type=reading.refer(doc, el, doc.qname(el, "type")),
                min_occurs=_integer(doc, el, "minOccurs") if el.get("minOccurs") else 1,
                max_occurs="unbounded" if max_occurs == "unbounded" else (
                    _integer(doc, el, "maxOccurs", 1) if el.get("maxOccurs") else 1),
                nillable=nillable == "true",
                default=el.get("default"),
                documentation=_annotation(doc, el, notes),
            )
            if f.default is not None:
                reading.defaults.append((doc, el, f))
            if f.max_occurs != "unbounded" and f.min_occurs > f.max_occurs:
                doc.refuse(el, f"{f.name}: minOccurs is larger than maxOccurs")
            fields.append(f)
    contract.complex_types[qname] = fields
    contract.type_docs[qname] = _annotation(doc, node, kids)


def _read_simple_type(doc, node, tns, contract):
    kids = doc.children(node, {_xs("annotation"), _xs("restriction")}, ("name",), ("name",))
    qname = (tns, node.get("name"))
    restrictions = [k for k in kids if k.tag == _xs("restriction")]
    if len(restrictions) != 1:
        doc.refuse(node, f"{qname[1]}: a simpleType needs exactly one xs:restriction")
    restriction = restrictions[0]
    facets = doc.children(restriction, {_xs(f) for f in FACETS}, ("base",), ("base",))
    base = doc.qname(restriction, "base")
    if base[0] != XS or base[1] not in BUILTINS:
        doc.refuse(restriction, f"{qname[1]}: restriction of {base[1]} (only of a built-in: {', '.join(BUILTINS)})")
    simple = SimpleType(name=qname, base=base)
    for facet in facets:
        doc.children(facet, (), ("value",), ("value",))
        name = etree.QName(facet).localname
        if base[1] not in FACETS[name]:
            doc.refuse(facet, f"{qname[1]}: xs:{name} on xs:{base[1]} is not supported")
        value = facet.get("value")
        if name == "enumeration":
            simple.enumerations.append(value)
        elif name in simple.facets:
            doc.refuse(facet, f"{qname[1]}: xs:{name} given twice")
        elif name == "pattern":
            simple.facets[name] = value
        else:
            simple.facets[name] = _integer(doc, facet, "value", 0 if name.endswith("Length") or name == "length"
                                           else -2**63)
    if simple.enumerations and simple.facets:
        doc.refuse(restriction, f"{qname[1]}: xs:enumeration together with other facets is not supported")
    contract.simple_types[qname] = simple
    contract.type_docs[qname] = _annotation(doc, node, kids)


# --- WSDL ------------------------------------------------------------------------------------

def _one(doc, parent, kids, tag):
    found = [k for k in kids if k.tag == tag]
    if len(found) != 1:
        doc.refuse(found[1] if found else parent, f"{_name(parent)} needs exactly one {tag.split('}')[1]}")
    return found[0]


def _read_types(doc, types, contract, reading):
    for schema in doc.children(types, {_xs("schema")}):
        if contract.schema_files:
            doc.refuse(schema, "more than one xs:schema in wsdl:types is not supported")
        pulls = doc.children(schema, {_xs("include"), _xs("import")}, ("targetNamespace", "elementFormDefault"),
                             ("targetNamespace",))
        if not pulls:
            doc.refuse(schema, "the xs:schema in wsdl:types pulls no XSD file in")
        for pull in pulls:
            _pull_in(doc, pull, schema.get("targetNamespace"), contract, reading)


def _read_messages(doc, kids):
    messages = {}
    for message in kids:
        if message.tag != _wsdl("message"):
            continue
        parts = doc.children(message, {_wsdl("part")}, ("name",), ("name",))
        part = _one(doc, message, parts, _wsdl("part"))
        doc.children(part, (), ("name", "element"), ("name", "element"))
        messages[(doc.root.get("targetNamespace"), message.get("name"))] = doc.qname(part, "element")
    return messages


def _read_port_type(doc, port_type, messages, contract):
    def message_of(node):
        qname = doc.qname(node, "message")
        if qname not in messages:
            doc.refuse(node, f"message {qname[1]} is not defined")
        element = messages[qname]
        if element not in contract.elements:
            doc.refuse(node, f"message {qname[1]}: element {element[1]} is not defined")
        return element

    for op in doc.children(port_type, {_wsdl("operation")}, ("name",), ("name",)):
        kids = doc.children(op, {_wsdl(n) for n in ("documentation", "input", "output", "fault")}, ("name",))
        for kid in kids:
            if kid.tag == _wsdl("documentation"):
                continue
            if kid.tag == _wsdl("fault"):
                doc.children(kid, (), ("name", "message"), ("name", "message"))
            else:
                doc.children(kid, (), ("message",), ("message",))
        contract.operations[op.get("name")] = Operation(
            name=op.get("name"),
            documentation=" ".join(doc.documentation(k) for k in kids if k.tag == _wsdl("documentation")),
            input=message_of(_one(doc, op, kids, _wsdl("input"))),
            output=message_of(_one(doc, op, kids, _wsdl("output"))),
            faults=[Fault(k.get("name"), message_of(k)) for k in kids if k.tag == _wsdl("fault")],
        )


def _literal_body(doc, node, tag, attributes):
    body = _one(doc, node, doc.children(node, {tag}), tag)
    doc.children(body, (), attributes, ("use",))
    if body.get("use") != "literal":
        doc.refuse(body, f"use={body.get('use')!r} (only literal)")
    return body


def _read_binding(doc, binding, port_type, contract):
    if doc.qname(binding, "type") != (doc.root.get("targetNamespace"), port_type.get("name")):
        doc.refuse(binding, "the binding is not of the portType")
    kids = doc.children(binding, {_soap("binding"), _wsdl("operation")}, ("name", "type"), ("name", "type"))
    soap = _one(doc, binding, kids, _soap("binding"))
    doc.children(soap, (), ("style", "transport"), ("transport",))
    if soap.get("style", "document") != "document" or soap.get("transport") != SOAP_HTTP:
        doc.refuse(soap, "only document style over SOAP/HTTP is supported")
    bound = {}
    for op in kids:
        if op.tag != _wsdl("operation"):
            continue
        name = op.get("name")
        if name not in contract.operations or name in bound:
            doc.refuse(op, f"binding operation {name!r} is not a portType operation (or is bound twice)")
        parts = doc.children(op, {_soap("operation"), _wsdl("input"), _wsdl("output"), _wsdl("fault")}, ("name",))
        action = _one(doc, op, parts, _soap("operation"))
        doc.children(action, (), ("soapAction", "style"))
        if action.get("style", "document") != "document":
            doc.refuse(action, "only document style is supported")
        _literal_body(doc, _one(doc, op, parts, _wsdl("input")), _soap("body"), ("use",))
        _literal_body(doc, _one(doc, op, parts, _wsdl("output")), _soap("body"), ("use",))
        faults = set()
        for fault in (p for p in parts if p.tag == _wsdl("fault")):
            doc.children(fault, {_soap("fault")}, ("name",), ("name",))
            soap_fault = _literal_body(doc, fault, _soap("fault"), ("name", "use"))
            if soap_fault.get("name") != fault.get("name"):
                doc.refuse(soap_fault, "soap:fault name differs from its wsdl:fault")
            faults.add(fault.get("name"))
        if faults != {f.name for f in contract.operations[name].faults}:
            doc.refuse(op, f"{name}: the bound faults differ from the portType's")
        contract.operations[name].soap_action = action.get("soapAction", "")
        bound[name] = op
    missing = sorted(set(contract.operations) - set(bound))
    if missing:
        doc.refuse(binding, f"portType operation(s) {', '.join(missing)} not bound")


def _read_service(doc, service, binding):
    kids = doc.children(service, {_wsdl("documentation"), _wsdl("port")}, ("name",), ("name",))
    for kid in kids:
        if kid.tag == _wsdl("documentation"):
            doc.documentation(kid)
    port = _one(doc, service, kids, _wsdl("port"))
    address = _one(doc, port, doc.children(port, {_soap("address")}, ("name", "binding"), ("name", "binding")),
                   _soap("address"))
    doc.children(address, (), ("location",), ("location",))
    if doc.qname(port, "binding") != (doc.root.get("targetNamespace"), binding.get("name")):
        doc.refuse(port, "the port is not of the binding")


def load_contract(path=MAIN_WSDL):
    """Parse a WSDL of the contract into a :class:`Contract` (ContractError outside the subset)."""
    doc = _Document(Path(path).resolve())
    root = doc.root
    if root.tag != _wsdl("definitions"):
        doc.refuse(root, "the document is not a wsdl:definitions")
    kids = doc.children(root, {_wsdl(n) for n in ("documentation", "types", "message", "portType", "binding",
                                                  "service")},
                        ("name", "targetNamespace"), ("targetNamespace",))
    port_type = _one(doc, root, kids, _wsdl("portType"))
    binding = _one(doc, root, kids, _wsdl("binding"))
    service = _one(doc, root, kids, _wsdl("service"))
    contract = Contract(path=doc.path, target_namespace=root.get("targetNamespace"), name=port_type.get("name"),
                        service_name=service.get("name"))
    reading = _Reading()
    for kid in kids:
        if kid.tag == _wsdl("documentation"):
            doc.documentation(kid)
        elif kid.tag == _wsdl("types"):
            _read_types(doc, kid, contract, reading)
    _read_port_type(doc, port_type, _read_messages(doc, kids), contract)
    _read_binding(doc, binding, port_type, contract)
    _read_service(doc, service, binding)
    reading.check(contract)
    return contract
