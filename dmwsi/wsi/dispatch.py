"""From a spyne call to a handler and back: the request as plain Python
values, the caller (``Call``), authorization, the transaction-log row, and
the fault for whatever goes wrong. Handlers never see spyne."""
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from spyne import ComplexModelBase, Fault
from spyne.error import RequestTooLongError
from spyne.protocol.xml import SchemaValidationError

from dmwsi.errors import OperationError, not_implemented
from dmwsi.wsi.faults import DmwsiFault, from_error

log = logging.getLogger(__name__)


@dataclass
class Call:
    """What a handler gets besides the request: who asks, and the services."""
    operation: str
    principal: str
    services: object          # dmwsi.runtime.Services
    roles: tuple = ()
    environ: dict = None      # the WSGI environ (the reference consumer reads its test hooks there)

    @property
    def customer_care(self):
        """Sessions run for customer care are marked so (CC1)."""
        return "customer-care" in self.roles


def to_plain(value):
    """spyne model instances -> dicts/lists/scalars (absent fields omitted)."""
    if isinstance(value, ComplexModelBase):
        plain = {}
        for name in type(value).get_flat_type_info(type(value)):
            v = getattr(value, name, None)
            if v is not None:
                plain[name] = to_plain(v)
        return plain
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)   # the contract's times are UTC when unqualified
    if type(value).__name__ == "EnumValue":     # spyne Enum members: plain strings for handlers
        return str(value)
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, bytes) for v in value):
            return b"".join(value)      # spyne hands base64Binary over as a list of parts
        return [to_plain(v) for v in value]
    return value


def to_model(model, value):
    """dicts/lists/scalars -> what spyne serializes for ``model``."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and _is_repeated(model):
        return [to_model(model, v) for v in value]
    if isinstance(model, type) and issubclass(model, ComplexModelBase):
        if isinstance(value, ComplexModelBase):
            return value
        type_info = model.get_flat_type_info(model)
        unknown = set(value) - set(type_info)
        if unknown:
            raise TypeError(f"{model.get_type_name()} has no field(s) {sorted(unknown)}")
        # Instantiate the declared class, not a customized copy (spyne warns on those).
        base = model.__orig__ or model
        return base(**{k: to_model(type_info[k], v) for k, v in value.items()})
    return value


def _is_repeated(model):
    max_occurs = model.Attributes.max_occurs
    return max_occurs == "unbounded" or max_occurs > 1


_LXML_ELEMENT = re.compile(r"Element '(?:\{[^}]*\})?([^']+)'")


def as_fault(error):
    """Any error on the request path -> the DmwsiFault the caller sees."""
    if isinstance(error, DmwsiFault):
        return error
    if isinstance(error, OperationError):
        return from_error(error)
    if isinstance(error, SchemaValidationError):
        text = error.faultstring
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        match = _LXML_ELEMENT.search(text)
        element = match.group(1) if match else None
        message = text.split(": ", 3)[-1] if ": " in text else text
        return DmwsiFault("InvalidRequest", f"{element or 'request'}: {message}".strip(), element=element)
    if isinstance(error, RequestTooLongError):
        return DmwsiFault("RequestTooLarge", "The request body is larger than the server accepts.")
    if isinstance(error, Fault) and str(error.faultcode).startswith("Client"):
        return DmwsiFault("InvalidRequest", str(error.faultstring))
    incident = uuid.uuid4().hex[:12]
    log.error("incident %s: %r", incident, error, exc_info=error if isinstance(error, BaseException) else None)
    return DmwsiFault("InternalError", f"Unexpected server error (incident {incident}); the request had no effect.")


def dispatcher(operation, field_names, output_models, handler_of):
    def dispatch(ctx, *args):
        handler = handler_of(operation)
        if handler is None:
            raise from_error(not_implemented(operation))
        request = {name: to_plain(v) for name, v in zip(field_names, args) if v is not None}
        env = ctx.transport.req_env
        services = ctx.app.dmwsi_services
        principal = env.get("dmwsi.principal", "anonymous")
        roles = tuple(env["dmwsi.roles"]) if "dmwsi.roles" in env else services.roles_of(principal)
        call = Call(operation=operation, principal=principal, services=services, roles=roles, environ=env)
        try:
            services.authorize(call)
            response = handler(call, request) or {}
            shown = services.present(principal, roles, response)
            values = [to_model(model, shown.get(name)) for name, model in output_models]
        except Exception as e:  # an OperationError keeps its code; anything else becomes InternalError
            fault = as_fault(e)
            services.record_call(call, request, None, fault)
            raise fault from e
        # Logged once the response exists: the row says what the caller gets.
        services.record_call(call, request, response, None)
        return values[0] if len(values) == 1 else values
    return dispatch
