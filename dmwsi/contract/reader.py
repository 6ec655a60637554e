"""Read the hand-authored WSDL/XSD contract into plain records.

The contract in wsdl/ and xsd/ is the single source of truth: nothing here
types an operation or a field twice. Only the XSD subset the contract uses is
understood (named complexTypes holding one sequence of typed elements, string
enumerations, a handful of built-in types); anything else is refused loudly
so a contract edit can never be silently half-served.
"""
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from dmwsi.resources import WSDL_DIR

XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
CONTRACT_DIR = WSDL_DIR
MAIN_WSDL = CONTRACT_DIR / "dmwsi-1.0.wsdl"
CALLBACK_WSDL = CONTRACT_DIR / "dmwsi-callback-1.0.wsdl"
MAIN_NAMESPACE = "http://dmwsi.org/ns/dmwsi/1.0"
CALLBACK_NAMESPACE = "http://dmwsi.org/ns/dmwsi-callback/1.0"



class ContractError(ValueError):
    """The contract uses something outside the supported subset."""


@dataclass
class Field:
    name: str
    type: tuple          # QName as (namespace, local name)
    min_occurs: int = 1
    max_occurs: object = 1   # int or "unbounded"

    @property
    def repeated(self):
        return self.max_occurs == "unbounded" or self.max_occurs > 1


@dataclass
class Operation:
    name: str
    documentation: str
    input: tuple     # element QName
    output: tuple


@dataclass
class Contract:
    """What a WSDL (with the schemas it pulls in) declares."""
    path: Path
    target_namespace: str
    name: str                   # portType / binding name
    service_name: str
    operations: dict = field(default_factory=dict)      # name -> Operation
    complex_types: dict = field(default_factory=dict)   # QName -> [Field]
    enums: dict = field(default_factory=dict)           # QName -> [value]
    elements: dict = field(default_factory=dict)        # QName -> type QName
    documentation: dict = field(default_factory=dict)   # QName -> text

    def standalone_elements(self):
        """Top-level elements no operation message uses (such as FaultDetail)."""
        used = {q for op in self.operations.values() for q in (op.input, op.output)}
        return [q for q in self.elements if q not in used]

    def fields_of(self, element_qname):
        return self.complex_types[self.elements[element_qname]]


def _qname(node, prefixed):
    prefix, _, local = prefixed.rpartition(":")
    ns = node.nsmap.get(prefix or None)
    if ns is None:
        raise ContractError(f"unknown prefix in {prefixed!r} (line {node.sourceline})")
    return ns, local


def _doc(node):
    text = node.findtext(f"{{{XS}}}annotation/{{{XS}}}documentation")
    return " ".join(text.split()) if text else ""


def _read_schema(schema, base, contract, seen):
    tns = schema.get("targetNamespace")
    for child in schema:
        if not isinstance(child.tag, str):
            continue
        tag = etree.QName(child).localname
        if tag in ("include", "import"):
            location = child.get("schemaLocation")
            if location:
                _load_schema_file((base / location).resolve(), contract, seen)
        elif tag == "annotation":
            pass
        elif tag == "complexType":
            _read_complex_type(child, tns, contract)
        elif tag == "simpleType":
            _read_simple_type(child, tns, contract)
        elif tag == "element":
            qname = (tns, child.get("name"))
            contract.elements[qname] = _qname(child, child.get("type"))
            contract.documentation[qname] = _doc(child)
        else:
            raise ContractError(f"unsupported schema construct xs:{tag} (line {child.sourceline})")


def _read_complex_type(node, tns, contract):
    qname = (tns, node.get("name"))
    fields = []
    for part in node:
        if not isinstance(part.tag, str) or etree.QName(part).localname == "annotation":
            continue
        if etree.QName(part).localname != "sequence":
            raise ContractError(f"{qname[1]}: only xs:sequence is supported (line {part.sourceline})")
        for el in part:
            if not isinstance(el.tag, str):
                continue
            if etree.QName(el).localname != "element" or not el.get("type"):
                raise ContractError(f"{qname[1]}: only typed xs:element in a sequence (line {el.sourceline})")
            max_occurs = el.get("maxOccurs", "1")
            fields.append(Field(
                name=el.get("name"),
                type=_qname(el, el.get("type")),
                min_occurs=int(el.get("minOccurs", "1")),
                max_occurs=max_occurs if max_occurs == "unbounded" else int(max_occurs),
            ))
    contract.complex_types[qname] = fields
    contract.documentation[qname] = _doc(node)


def _read_simple_type(node, tns, contract):
    qname = (tns, node.get("name"))
    restriction = node.find(f"{{{XS}}}restriction")
    if restriction is None or _qname(restriction, restriction.get("base")) != (XS, "string"):
        raise ContractError(f"{qname[1]}: only string enumerations are supported")
    contract.enums[qname] = [e.get("value") for e in restriction.findall(f"{{{XS}}}enumeration")]
    contract.documentation[qname] = _doc(node)


def _load_schema_file(path, contract, seen):
    if path in seen:
        return
    seen.add(path)
    root = etree.parse(str(path)).getroot()
    _read_schema(root, path.parent, contract, seen)


def load_contract(path=MAIN_WSDL):
    """Parse a WSDL of the contract into a :class:`Contract`."""
    path = Path(path).resolve()
    root = etree.parse(str(path)).getroot()
    tns = root.get("targetNamespace")
    port_type = root.find(f"{{{WSDL}}}portType")
    service = root.find(f"{{{WSDL}}}service")
    contract = Contract(path=path, target_namespace=tns, name=port_type.get("name"),
                        service_name=service.get("name"))
    seen = set()
    for schema in root.iterfind(f"{{{WSDL}}}types/{{{XS}}}schema"):
        _read_schema(schema, path.parent, contract, seen)
    messages = {
        (tns, m.get("name")): _qname(m.find(f"{{{WSDL}}}part"), m.find(f"{{{WSDL}}}part").get("element"))
        for m in root.iterfind(f"{{{WSDL}}}message")
    }
    for op in port_type.iterfind(f"{{{WSDL}}}operation"):
        doc = op.findtext(f"{{{WSDL}}}documentation") or ""
        contract.operations[op.get("name")] = Operation(
            name=op.get("name"),
            documentation=" ".join(doc.split()),
            input=messages[_qname(op, op.find(f"{{{WSDL}}}input").get("message"))],
            output=messages[_qname(op, op.find(f"{{{WSDL}}}output").get("message"))],
        )
    return contract
