"""WS-Security faults (WSS 1.1 SOAP Message Security, section 12).

A refused request is answered with a SOAP 1.1 Fault whose ``faultcode`` is
one of the standard QNames in the wsse namespace (``wsse:FailedCheck``, ...)
and whose ``detail`` carries the usual ``FaultDetail`` with the table code
``NotAuthenticated`` (docs/faults.rst), so callers that only read the detail
see a documented code.
"""
from lxml import etree

from dmwsi.security.ns import SOAP11, WSSE
from dmwsi.wsi.faults import fault_detail

# wsse fault code -> the standard faultstring.
WSSE_FAULTS = {
    "UnsupportedSecurityToken": "An unsupported token was provided",
    "UnsupportedAlgorithm": "An unsupported signature or encryption algorithm was used",
    "InvalidSecurity": "An error was discovered processing the <wsse:Security> header",
    "InvalidSecurityToken": "An invalid security token was provided",
    "FailedAuthentication": "The security token could not be authenticated or authorized",
    "FailedCheck": "The signature or decryption was invalid",
    "SecurityTokenUnavailable": "Referenced security token could not be retrieved",
    "MessageExpired": "The message has expired",
}


class SecurityFault(Exception):
    """A request refused by message or transport security.

    ``reason`` goes to the caller in the fault detail and to the log; it never
    tells an unknown user from a wrong password.
    """

    def __init__(self, code, reason):
        if code not in WSSE_FAULTS:
            raise ValueError(code)
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


def fault_envelope(fault):
    """The SOAP 1.1 fault document (bytes) for a SecurityFault."""
    envelope = etree.Element(f"{{{SOAP11}}}Envelope", nsmap={"soap": SOAP11, "wsse": WSSE})
    body = etree.SubElement(envelope, f"{{{SOAP11}}}Body")
    element = etree.SubElement(body, f"{{{SOAP11}}}Fault")
    etree.SubElement(element, "faultcode").text = f"wsse:{fault.code}"
    etree.SubElement(element, "faultstring").text = f"{WSSE_FAULTS[fault.code]}: {fault.reason}"
    detail = etree.SubElement(element, "detail")
    detail.append(fault_detail("NotAuthenticated", fault.reason))
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
