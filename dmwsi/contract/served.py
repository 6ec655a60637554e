"""The WSDL document a SOAP endpoint serves at ``?wsdl``: the authored one.

Why the authored WSDL and XSD are served instead of spyne's regeneration
with the documentation patched back in: the contract is the source of truth,
and a regeneration is a lossy translation of it. Spyne renames customized
simple types (a facet on a field becomes a new ``T_fieldType``), cannot put
xs:documentation on elements, drops the schema's own annotation and version,
and states only what it can model; every difference is one more thing a
client generated from ``?wsdl`` could disagree with. Requests are validated
against the authored XSD (dmwsi.contract.schema), so serving that XSD means
callers see exactly what is enforced. The spyne models are still generated
from the same records, and tests/contract compares spyne's picture of the
interface with the authored one, so what is served is also what is
implemented.

Two edits make the documents servable as one self-contained WSDL: the XSD
files are inlined into ``wsdl:types`` (the authored ``xs:schema`` there only
pulls them in by relative schemaLocation, which a client of ``?wsdl`` cannot
follow; each file becomes one ``xs:schema``, its ``xs:include`` dropped since
the included file sits beside it, its ``xs:import`` kept by namespace), and
``soap:address`` names the URL the WSDL was asked at.
"""
from xml.sax.saxutils import escape

from lxml import etree

from dmwsi.contract.reader import PARSER, SOAP_BINDING, WSDL, XS

# Stands for the address until a request names it; "\x00"-free ASCII that no contract contains.
_ADDRESS = "urn:dmwsi:served-address-placeholder"


class ServedWsdl:
    """The authored WSDL of ``contract``, self-contained, for any endpoint URL."""

    def __init__(self, contract):
        root = etree.parse(str(contract.path), PARSER).getroot()
        types = root.find(f"{{{WSDL}}}types")
        for schema in types.findall(f"{{{XS}}}schema"):
            types.remove(schema)
        for path in contract.schema_files:
            schema = etree.parse(str(path), PARSER).getroot()
            for include in schema.findall(f"{{{XS}}}include"):
                schema.remove(include)
            for imported in schema.findall(f"{{{XS}}}import"):
                del imported.attrib["schemaLocation"]
            types.append(schema)
        root.find(f"{{{WSDL}}}service/{{{WSDL}}}port/{{{SOAP_BINDING}}}address").set("location", _ADDRESS)
        document = etree.tostring(root.getroottree(), xml_declaration=True, encoding="utf-8")
        self._head, self._tail = document.split(_ADDRESS.encode())

    def document(self, url):
        """The WSDL (bytes) whose soap:address is ``url``."""
        return self._head + escape(url, {'"': "&quot;"}).encode("utf-8") + self._tail
