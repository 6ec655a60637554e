"""The one exception hierarchy of dmwsi, and the fault codes callers see.

Every exception dmwsi raises on purpose derives from :class:`DmwsiError`.
:class:`OperationError` is the domain's way of refusing or failing an
operation with a stable code from :data:`CODES` (documented in
docs/faults.rst; a test keeps the two in step). It knows nothing about SOAP:
the SOAP edge (``dmwsi.wsi.faults``) turns it into a SOAP 1.1 Fault, with
``faultcode`` soap:Client or soap:Server as :data:`CODES` says.
"""

# code -> (side, meaning). "Client": the caller's request is at fault;
# "Server": the server or the device is. Codes are stable: never renumber,
# never reuse; add new ones at the end of their group.
CODES = {
    # caller errors
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
    # server side
    "NotImplemented": ("Server", "The operation is part of the contract but not built in this release."),
    "DeviceError": ("Server", "The device answered with an error status."),
    "Timeout": ("Server", "The device did not complete in time."),
    "ServiceUnavailable": ("Server", "A needed resource is temporarily unavailable; retry later."),
    "InternalError": ("Server", "An unexpected error; the request had no effect. Details are in the server log."),
    "SessionInterrupted": ("Server", "Every attempt's DM session ended before the device's work was done "
                                     "(session lost, server restart)."),
    "Busy": ("Server", "Every synchronous slot is held by a call waiting for its device; retry later or call "
                       "without synchronous. Nothing was queued."),
    "LargeObjectNotBuffered": ("Server", "The device answered a non-final large-object chunk with a status "
                                         "other than 213 (chunk buffered): it did not receive the object "
                                         "whole, so the command failed and the rest was not sent."),
}


class DmwsiError(Exception):
    """Base of every exception dmwsi raises on purpose."""


class OperationError(DmwsiError):
    """An operation refused or failed with a code from :data:`CODES`.

    ``element``: the request element at fault; ``device_status``: the DM
    status a device answered; ``log_reason``: what the transaction log
    records when the caller is told less (existence oracles, issue 8)."""

    def __init__(self, code, message, element=None, device_status=None, log_reason=None):
        if code not in CODES:
            raise ValueError(f"unknown fault code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.element = element
        self.device_status = device_status
        self.log_reason = log_reason

    @property
    def side(self):
        return CODES[self.code][0]


def not_implemented(operation):
    return OperationError("NotImplemented", f"{operation} is not available in this release.")
