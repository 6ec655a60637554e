"""The fault table (docs/faults.rst is its documentation; a test keeps the two
in step). Every error a caller can see is one of these codes, carried in a
SOAP 1.1 Fault as ``faultcode`` soap:Client or soap:Server and, in
``detail``, a ``FaultDetail`` element with the code and a readable message.
"""
from spyne import Fault
from lxml import etree

# code -> (SOAP fault side, meaning). Codes are stable: never renumber,
# never reuse; add new ones at the end of their group.
FAULTS = {
    # caller errors (soap:Client)
    "InvalidRequest": ("Client", "The request is not valid against the DMWSI schema."),
    "InvalidArgument": ("Client", "A value is well-formed but not acceptable (e.g. bad selector, page size)."),
    "UnknownDevice": ("Client", "No registered device matches the given device reference."),
    "UnknownSubscriber": ("Client", "No subscriber with that identity is registered."),
    "UnknownGroup": ("Client", "No device group with that name is defined."),
    "UnknownJob": ("Client", "No job with that id is visible to the caller."),
    "DuplicateJob": ("Client", "The caller's jobId is already used for a different request."),
    "JobNotCancellable": ("Client", "The job has already finished."),
    "RequestTooLarge": ("Client", "The request body exceeds the configured limit."),
    "NotAuthenticated": ("Client", "The request carries no acceptable credentials."),
    "NotAuthorized": ("Client", "The principal may not perform this operation on this target."),
    "PolicyRefused": ("Client", "Policy refuses the request as a whole."),
    "MethodNotAllowed": ("Client", "Only POST of a SOAP message (or GET of the WSDL and schemas) is served; HTTP 405."),
    # server side (soap:Server)
    "NotImplemented": ("Server", "The operation is part of the contract but not built in this release."),
    "DeviceError": ("Server", "The device answered with an error status."),
    "Timeout": ("Server", "The device did not complete in time."),
    "ServiceUnavailable": ("Server", "A needed resource is temporarily unavailable; retry later."),
    "InternalError": ("Server", "An unexpected error; the request had no effect. Details are in the server log."),
    "SessionInterrupted": ("Server", "Every attempt's DM session ended before the device's work was done "
                                     "(session lost, server restart)."),
}


class DmwsiFault(Fault):
    """A SOAP fault with a stable dmwsi code in its detail."""

    def __init__(self, code, message, element=None, device_status=None, namespace=None, log_reason=None):
        side, _ = FAULTS[code]
        self.code = code
        self.message = message
        self.element = element
        self.log_reason = log_reason    # what the transaction log records when the caller is told less
        self.device_status = device_status
        super().__init__(faultcode=side, faultstring=f"{code}: {message}",
                         detail=fault_detail(code, message, element, device_status, namespace))


def fault_detail(code, message, element=None, device_status=None, namespace=None):
    """The ``detail`` child: <FaultDetail> in the contract's namespace."""
    from dmwsi.contract import MAIN_NAMESPACE
    ns = namespace or MAIN_NAMESPACE
    detail = etree.Element(f"{{{ns}}}FaultDetail", nsmap={"dmwsi": ns})
    etree.SubElement(detail, f"{{{ns}}}code").text = code
    etree.SubElement(detail, f"{{{ns}}}message").text = message
    if element:
        etree.SubElement(detail, f"{{{ns}}}element").text = element
    if device_status is not None:
        etree.SubElement(detail, f"{{{ns}}}deviceStatus").text = str(device_status)
    return detail


def not_implemented(operation):
    return DmwsiFault("NotImplemented", f"{operation} is not available in this release.")
