"""The SOAP endpoint: spyne services generated from the contract.

Each contract operation becomes one spyne method whose body is the same small
dispatcher: turn the spyne request into plain Python values, call the handler
registered for the operation, turn its dict back into the response. Handlers
never see spyne; an operation without a handler answers NotImplemented.
"""
import io
import logging
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import spyne.const
from spyne import Application, ComplexModelBase, Fault, ServiceBase, rpc
from spyne.error import RequestTooLongError
from spyne.protocol.soap import Soap11
from spyne.protocol.xml import SchemaValidationError
from spyne.server.wsgi import WsgiApplication

from dmwsi.wsi.contract import ModelFactory, load_contract
from dmwsi.wsi.faults import DmwsiFault, not_implemented

log = logging.getLogger(__name__)

# spyne runs a full gc.collect() when a request context closes (at most once
# per interval) to release uploaded files; we take no file uploads, and on a
# server holding thousands of DM sessions a full collection per second on
# the request path costs seconds. Python's own collector is enough.
spyne.const.MIN_GC_INTERVAL = math.inf

SOAP_FAULT_STATUS = "500 Internal Server Error"  # SOAP 1.1 HTTP binding


@dataclass
class Call:
    """What a handler gets besides the request: who asks, and the services."""
    operation: str
    principal: str
    services: object          # dmwsi.services.Services
    spyne_ctx: object
    roles: tuple = ()

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


def _dispatcher(operation, field_names, output_models, handler_of):
    def dispatch(ctx, *args):
        handler = handler_of(operation)
        if handler is None:
            raise not_implemented(operation)
        request = {name: to_plain(v) for name, v in zip(field_names, args) if v is not None}
        env = ctx.transport.req_env
        services = ctx.app.dmwsi_services
        principal = env.get("dmwsi.principal", "anonymous")
        roles = tuple(env["dmwsi.roles"]) if "dmwsi.roles" in env else services.roles_of(principal)
        call = Call(operation=operation, principal=principal, services=services, spyne_ctx=ctx, roles=roles)
        try:
            services.authorize(call)
        except DmwsiFault as fault:
            services.record_call(call, request, None, fault)
            raise
        try:
            response = handler(call, request) or {}
        except Exception as e:  # anything but a DmwsiFault becomes InternalError
            fault = as_fault(e)
            call.services.record_call(call, request, None, fault)
            raise fault from e
        call.services.record_call(call, request, response, None)
        response = services.present(principal, roles, response)
        values = [to_model(model, response.get(name)) for name, model in output_models]
        return values[0] if len(values) == 1 else values
    return dispatch


def build_service(contract, handler_of, models=None):
    """A spyne ServiceBase subclass with one method per contract operation."""
    models = models or ModelFactory(contract)
    methods = {}
    for op in contract.operations.values():
        inputs = models.members(op.input)
        outputs = models.members(op.output)
        options = dict(
            _args=[name for name, _ in inputs],
            _operation_name=op.name,
            _in_message_name=op.input[1],
            _out_message_name=op.output[1],
        )
        if len(outputs) == 1:
            options.update(_returns=outputs[0][1], _out_variable_name=outputs[0][0])
        elif outputs:
            options.update(_returns=tuple(m for _, m in outputs),
                           _out_variable_names=tuple(n for n, _ in outputs))
        dispatch = _dispatcher(op.name, options["_args"], outputs, handler_of)
        dispatch.__name__ = dispatch.__qualname__ = op.name   # spyne keys methods by function name
        dispatch.__doc__ = op.documentation
        methods[op.name] = rpc(*[m for _, m in inputs], **options)(dispatch)
    return type(contract.service_name, (ServiceBase,), methods)


class SoapApplication(WsgiApplication):
    """spyne's WSGI server with every error answered as a DmwsiFault."""

    def handle_wsdl_request(self, req_env, start_response, url):
        # On a WSDL build error spyne answers a str body, which WSGI cannot send.
        body = super().handle_wsdl_request(req_env, start_response, url)
        return [part.encode() if isinstance(part, str) else part for part in body]

    def handle_rpc(self, req_env, start_response):
        if req_env.get("CONTENT_LENGTH") in ("0", "", None) and req_env.get("HTTP_TRANSFER_ENCODING") is None:
            # spyne answers an empty body with an empty 500; give it a document
            # it refuses the normal way, so the caller gets an InvalidRequest fault.
            placeholder = b"<empty-request/>"
            req_env["wsgi.input"], req_env["CONTENT_LENGTH"] = io.BytesIO(placeholder), str(len(placeholder))
        return super().handle_rpc(req_env, start_response)

    def handle_error(self, p_ctx, others, error, start_response):
        fault = as_fault(error)
        p_ctx.out_error = fault
        p_ctx.transport.resp_code = SOAP_FAULT_STATUS
        return super().handle_error(p_ctx, others, fault, start_response)


def build_soap_app(services, handlers, max_request_bytes, contract=None):
    """The WSGI application serving the main DMWSI contract.

    ``handlers`` maps operation name -> ``handler(call, request) -> dict``.
    """
    contract = contract or load_contract()
    models = ModelFactory(contract)
    service = build_service(contract, handlers.get, models)
    app = Application([service], tns=contract.target_namespace, name=contract.name,
                      in_protocol=Soap11(validator="lxml"), out_protocol=Soap11())
    for qname in contract.standalone_elements():   # e.g. FaultDetail: no message uses it
        app.interface.add_class(models.model(contract.elements[qname]))
    app.dmwsi_services = services
    services.handlers = {name: h for name, h in handlers.items() if name in contract.operations}
    return SoapApplication(app, max_content_length=max_request_bytes)
