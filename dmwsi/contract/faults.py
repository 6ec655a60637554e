"""The contract's fault shapes as XML (lxml only): the ``FaultDetail`` element
every dmwsi fault carries, and a whole SOAP 1.1 Fault document for the
layers that answer before spyne does (the request gate, WS-Security)."""
from lxml import etree

from dmwsi.contract.reader import MAIN_NAMESPACE

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"


def fault_detail(code, message, element=None, device_status=None, namespace=None):
    """The ``detail`` child: <FaultDetail> in the contract's namespace."""
    ns = namespace or MAIN_NAMESPACE
    detail = etree.Element(f"{{{ns}}}FaultDetail", nsmap={"dmwsi": ns})
    etree.SubElement(detail, f"{{{ns}}}code").text = code
    etree.SubElement(detail, f"{{{ns}}}message").text = message
    if element:
        etree.SubElement(detail, f"{{{ns}}}element").text = element
    if device_status is not None:
        etree.SubElement(detail, f"{{{ns}}}deviceStatus").text = str(device_status)
    return detail


def fault_document(faultcode, faultstring, detail, nsmap=None):
    """A SOAP 1.1 Fault envelope (bytes). ``faultcode`` is a prefixed QName
    whose prefix ``nsmap`` declares (``soap`` always is)."""
    envelope = etree.Element(f"{{{SOAP11}}}Envelope", nsmap={"soap": SOAP11, **(nsmap or {})})
    body = etree.SubElement(envelope, f"{{{SOAP11}}}Body")
    fault = etree.SubElement(body, f"{{{SOAP11}}}Fault")
    etree.SubElement(fault, "faultcode").text = faultcode
    etree.SubElement(fault, "faultstring").text = faultstring
    etree.SubElement(fault, "detail").append(detail)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
