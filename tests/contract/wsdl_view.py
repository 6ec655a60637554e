"""Two ways to look at a WSDL document for the contract tests, written with
plain lxml (independent of dmwsi.contract, the code under test):

* :func:`differences` compares two documents element by element: every tag,
  attribute (QName-valued ones resolved, so prefixes may differ), text
  (whitespace-normalized) and child in order; comments are not content.
* :func:`interface` is the picture of the interface a document declares
  (operations with their messages' elements, faults and SOAPAction; complex
  types with each field's type and occurrence; simple types with their base,
  enumerations and facets; top-level elements), for comparing documents that
  say the same in different words (spyne's regeneration and the authored one).
"""
from pathlib import Path

from lxml import etree

XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
QNAME_ATTRIBUTES = {"type", "base", "element", "message", "binding"}
PARSER = etree.XMLParser(resolve_entities=False, no_network=True)


def parse(source):
    """A WSDL document from a path or bytes -> its root element."""
    if isinstance(source, (bytes, bytearray)):
        return etree.fromstring(bytes(source), PARSER)
    return etree.parse(str(source), PARSER).getroot()


def _resolve(node, value):
    prefix, _, local = value.rpartition(":")
    return f"{{{node.nsmap.get(prefix or None)}}}{local}"


def _attributes(node):
    return {name: (_resolve(node, value) if name in QNAME_ATTRIBUTES else value)
            for name, value in node.attrib.items()}


def _text(node):
    return " ".join((node.text or "").split())


def elements(node):
    return [child for child in node if isinstance(child.tag, str)]


def differences(a, b, where=""):
    """Where element ``b`` differs from element ``a`` (a list of readable places; empty if the same)."""
    where = where or etree.QName(a).localname
    found = []
    if a.tag != b.tag:
        return [f"{where}: {a.tag} != {b.tag}"]
    if _attributes(a) != _attributes(b):
        found.append(f"{where}: attributes {_attributes(a)} != {_attributes(b)}")
    if _text(a) != _text(b):
        found.append(f"{where}: text {_text(a)!r} != {_text(b)!r}")
    kids_a, kids_b = elements(a), elements(b)
    if len(kids_a) != len(kids_b):
        found.append(f"{where}: {len(kids_a)} children != {len(kids_b)}")
    for i, (x, y) in enumerate(zip(kids_a, kids_b)):
        name = x.get("name") or x.get("value") or str(i)
        found.extend(differences(x, y, f"{where}/{etree.QName(x).localname}[{name}]"))
    return found


def authored_schemas(wsdl_path):
    """The xs:schema documents an authored WSDL pulls in through schemaLocation, by target namespace."""
    root = parse(wsdl_path)
    schemas, pending = {}, [(Path(wsdl_path).parent, s) for s in root.find(f"{{{WSDL}}}types")]
    while pending:
        directory, schema = pending.pop(0)
        for pull in schema.findall(f"{{{XS}}}include") + schema.findall(f"{{{XS}}}import"):
            path = (directory / pull.get("schemaLocation")).resolve()
            loaded = parse(path)
            if loaded.get("targetNamespace") not in schemas:
                schemas[loaded.get("targetNamespace")] = loaded
                pending.append((path.parent, loaded))
    return schemas


def served_schemas(root):
    """The xs:schema elements inlined in a document's wsdl:types, by target namespace."""
    return {s.get("targetNamespace"): s for s in root.find(f"{{{WSDL}}}types")}


def documentation_count(*roots):
    return sum(len(r.findall(f".//{{{XS}}}documentation")) + len(r.findall(f".//{{{WSDL}}}documentation"))
               for r in roots)


# --- the interface picture -------------------------------------------------------------------

def _qname(node, attribute):
    value = node.get(attribute)
    return None if value is None else _resolve(node, value)


def _occurs(node, attribute):
    value = node.get(attribute, "1")
    return value if value == "unbounded" else int(value)


def interface(root, schemas):
    """What a WSDL (with its schemas, by namespace) declares, as plain values."""
    tns = root.get("targetNamespace")
    messages = {f"{{{tns}}}{m.get('name')}": _qname(m.find(f"{{{WSDL}}}part"), "element")
                for m in root.findall(f"{{{WSDL}}}message")}
    actions = {op.get("name"): op.find(f"{{{SOAP}}}operation").get("soapAction")
               for op in root.findall(f"{{{WSDL}}}binding/{{{WSDL}}}operation")}
    operations = {}
    for op in root.findall(f"{{{WSDL}}}portType/{{{WSDL}}}operation"):
        operations[op.get("name")] = {
            "input": messages[_qname(op.find(f"{{{WSDL}}}input"), "message")],
            "output": messages[_qname(op.find(f"{{{WSDL}}}output"), "message")],
            "faults": sorted((f.get("name"), messages[_qname(f, "message")]) for f in op.findall(f"{{{WSDL}}}fault")),
            "soapAction": actions[op.get("name")],
        }
    complex_types, simple_types, top = {}, {}, {}
    for ns, schema in schemas.items():
        for node in elements(schema):
            key = f"{{{ns}}}{node.get('name')}"
            if node.tag == f"{{{XS}}}complexType":
                complex_types[key] = [
                    (el.get("name"), _qname(el, "type"), _occurs(el, "minOccurs"), _occurs(el, "maxOccurs"),
                     el.get("nillable", "false") in ("true", "1"), el.get("default"))
                    for el in node.findall(f"{{{XS}}}sequence/{{{XS}}}element")]
            elif node.tag == f"{{{XS}}}simpleType":
                restriction = node.find(f"{{{XS}}}restriction")
                facets = [(etree.QName(f).localname, f.get("value")) for f in elements(restriction)]
                simple_types[key] = (_qname(restriction, "base"),
                                     [v for name, v in facets if name == "enumeration"],
                                     {name: v for name, v in facets if name != "enumeration"})
            elif node.tag == f"{{{XS}}}element":
                top[key] = _qname(node, "type")
    return {"operations": operations, "complexTypes": complex_types, "simpleTypes": simple_types,
            "elements": top}
