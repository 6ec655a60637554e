"""The SOAP endpoint: spyne services generated from the contract.

Each contract operation becomes one spyne method whose body is the same small
dispatcher: turn the spyne request into plain Python values, call the handler
registered for the operation, turn its dict back into the response. Handlers
never see spyne; an operation without a handler answers NotImplemented.
"""
import io
import math

import spyne.const
from spyne import Application, ServiceBase, rpc
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from dmwsi.contract import load_contract
from dmwsi.wsi.models import ModelFactory
from dmwsi.wsi.dispatch import as_fault, dispatcher

# spyne runs a full gc.collect() when a request context closes (at most once
# per interval) to release uploaded files; we take no file uploads, and on a
# server holding thousands of DM sessions a full collection per second on
# the request path costs seconds. Python's own collector is enough.
spyne.const.MIN_GC_INTERVAL = math.inf

SOAP_FAULT_STATUS = "500 Internal Server Error"  # SOAP 1.1 HTTP binding


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
        dispatch = dispatcher(op.name, options["_args"], outputs, handler_of)
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
