"""WS-Security faults (WSS 1.1 SOAP Message Security, section 12).

A refused request is answered with a SOAP 1.1 Fault whose ``faultcode`` is
one of the standard QNames in the wsse namespace (``wsse:FailedCheck``, ...)
and whose ``detail`` carries the usual ``FaultDetail`` with the table code
``NotAuthenticated`` (docs/faults.rst), so callers that only read the detail
see a documented code.
"""
from dmwsi.contract.faults import fault_detail, fault_document
from dmwsi.errors import DmwsiError
from dmwsi.security.ns import WSSE

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


class SecurityFault(DmwsiError):
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
    return fault_document(f"wsse:{fault.code}", f"{WSSE_FAULTS[fault.code]}: {fault.reason}",
                          fault_detail("NotAuthenticated", fault.reason), nsmap={"wsse": WSSE})
