"""The SOAP form of dmwsi's errors. Every error a caller can see has a code
of :data:`dmwsi.errors.CODES` (docs/faults.rst is its documentation; a test
keeps the two in step), carried in a SOAP 1.1 Fault as ``faultcode``
soap:Client or soap:Server and, in ``detail``, a ``FaultDetail`` element with
the code and a readable message. The domain raises
:class:`dmwsi.errors.OperationError`; only this edge knows it as a Fault.
"""
from spyne import Fault

from dmwsi.contract.faults import fault_detail
from dmwsi.errors import CODES, DmwsiError

# The codes live with the domain's error type; this is their SOAP form.
FAULTS = CODES


class DmwsiFault(Fault, DmwsiError):
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


def from_error(error, namespace=None):
    """The SOAP fault for a domain :class:`OperationError`."""
    return DmwsiFault(error.code, error.message, element=error.element, device_status=error.device_status,
                      namespace=namespace, log_reason=error.log_reason)
