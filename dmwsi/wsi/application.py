"""The SOAP endpoint: spyne services generated from the contract.

Each contract operation becomes one spyne method whose body is the same small
dispatcher: turn the spyne request into plain Python values, call the handler
registered for the operation, turn its dict back into the response. Handlers
never see spyne; an operation without a handler answers NotImplemented.

What the endpoint enforces and shows is the authored contract itself, not
spyne's regeneration of it (docs/contract.rst, "What is validated and
served"): every request's payload is validated against the hand-authored XSD
(:class:`ContractSoap11`, dmwsi.contract.schema), and ``?wsdl`` answers the
authored WSDL with its XSD inlined (dmwsi.contract.served) whose soap:address
is ``server.public_url`` or the URL the WSDL was asked at
(:func:`endpoint_url`).
"""
import io
import math
import re
from urllib.parse import quote, urlsplit

import spyne.const
from spyne import Application, ServiceBase, rpc
from spyne.protocol.soap import Soap11
from spyne.server.wsgi import WsgiApplication

from dmwsi.config import ConfigError
from dmwsi.contract import load_contract
from dmwsi.contract.schema import RequestSchema
from dmwsi.contract.served import ServedWsdl
from dmwsi.errors import OperationError
from dmwsi.security.gate import refusal_envelope
from dmwsi.wsi.models import ModelFactory
from dmwsi.wsi.dispatch import as_fault, dispatcher
from dmwsi.wsi.faults import from_error

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


class ContractSoap11(Soap11):
    """SOAP 1.1 whose requests are validated against the authored XSD.

    Replaces spyne's own validation ('soft' checks its models, 'lxml' its
    regenerated schema): the payload is checked with :class:`RequestSchema`
    before spyne looks at it, and a refusal is the InvalidRequest fault
    naming the element. spyne then only deserializes what the contract
    already accepted.
    """

    def __init__(self, schema, **options):
        super().__init__(validator=None, **options)
        self.request_schema = schema

    def decompose_incoming_envelope(self, ctx, message=Soap11.REQUEST):
        if message is not self.REQUEST:
            return super().decompose_incoming_envelope(ctx, message)
        envelope = ctx.in_document[0]       # (root, xml ids) until spyne decomposes it
        if envelope.tag != f"{{{self.ns_soap_env}}}Envelope":
            return super().decompose_incoming_envelope(ctx, message)    # spyne's Client.SoapError
        try:
            payload = self.request_schema.payload(envelope.find(f"{{{self.ns_soap_env}}}Body"))
        except OperationError as error:
            raise from_error(error) from None   # a spyne Fault: answered without a traceback in the log
        super().decompose_incoming_envelope(ctx, message)
        # spyne takes the Body's first node, which may be a comment; the request is the element.
        ctx.in_body_doc = payload
        ctx.method_request_string = payload.tag


# RFC 3986 host (reg-name of letters, digits, '-', '.'; IPv4; [IPv6]) and optional port: the forms
# a Host header may take that are put in the WSDL as they are.
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?$")
_PATH_SAFE = "/;=,~!$&'()*+@:-._"


def public_address(value):
    """``server.public_url`` checked: '' (derive from the request) or an http(s) URL (ConfigError otherwise)."""
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"server.public_url: {value!r} is not an http(s) URL without query or fragment")
    return value


def endpoint_url(environ, public_url=""):
    """The URL to advertise as soap:address for a ``?wsdl`` request, or None if it has no usable host.

    ``public_url`` (``server.public_url``) wins: used as it is when it names a path, else as the base
    of the path the WSDL was asked at (``https://dm.example.com`` -> ``https://dm.example.com/soap``).
    Without it, the request's own scheme (https when it came over TLS), Host header (else the
    server's name and port) and path. X-Forwarded-* headers are not believed: behind a proxy, set
    ``server.public_url``.
    """
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    if path.endswith(".wsdl"):      # spyne's other WSDL form, <endpoint>/<name>.wsdl
        path = path.rsplit("/", 1)[0]
    path = quote(path.encode("latin-1", "replace"), safe=_PATH_SAFE) or "/"  # WSGI strings are latin-1
    if public_url:
        return public_url if urlsplit(public_url).path not in ("", "/") else public_url.rstrip("/") + path
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST", "")
    if not _HOST.match(host):
        host = environ.get("SERVER_NAME", "")
        port = environ.get("SERVER_PORT", "")
        if port and port != {"http": "80", "https": "443"}.get(scheme):
            host = f"{host}:{port}"
        if not _HOST.match(host):
            return None
    return f"{scheme}://{host}{path}"


class SoapApplication(WsgiApplication):
    """spyne's WSGI server with every error answered as a DmwsiFault.

    With ``served`` (a :class:`ServedWsdl`), ``?wsdl`` answers that document
    for the endpoint's URL (:func:`endpoint_url`); without, spyne's own.
    """

    def __init__(self, app, served=None, public_url="", **options):
        super().__init__(app, **options)
        self.served = served
        self.public_url = public_address(public_url)

    def handle_wsdl_request(self, req_env, start_response, url):
        if self.served is not None:
            return self._served_wsdl(req_env, start_response)
        # On a WSDL build error spyne answers a str body, which WSGI cannot send.
        body = super().handle_wsdl_request(req_env, start_response, url)
        return [part.encode() if isinstance(part, str) else part for part in body]

    def _served_wsdl(self, req_env, start_response):
        url = endpoint_url(req_env, self.public_url)
        if url is None:
            document = refusal_envelope("InvalidRequest", "the Host header names no host")
            status = SOAP_FAULT_STATUS
        else:
            document, status = self.served.document(url), "200 OK"
        start_response(status, [("Content-Type", "text/xml; charset=utf-8"),
                                ("Content-Length", str(len(document)))])
        return [document]

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


def contract_application(contract, handler_of, models=None):
    """The spyne Application of ``contract``: its generated service, requests validated against its XSD."""
    models = models or ModelFactory(contract)
    service = build_service(contract, handler_of, models)
    app = Application([service], tns=contract.target_namespace, name=contract.name,
                      in_protocol=ContractSoap11(RequestSchema(contract)), out_protocol=Soap11())
    for qname in contract.standalone_elements():   # e.g. FaultDetail: no message uses it
        app.interface.add_class(models.model(contract.elements[qname]))
    return app


def build_soap_app(services, handlers, max_request_bytes, contract=None, public_url=None):
    """The WSGI application serving the main DMWSI contract.

    ``handlers`` maps operation name -> ``handler(call, request) -> dict``;
    ``public_url`` defaults to ``server.public_url`` of ``services.config``.
    """
    contract = contract or load_contract()
    app = contract_application(contract, handlers.get)
    app.dmwsi_services = services
    services.handlers = {name: h for name, h in handlers.items() if name in contract.operations}
    if public_url is None:
        public_url = services.config["server"]["public_url"]
    return SoapApplication(app, served=ServedWsdl(contract), public_url=public_url,
                           max_content_length=max_request_bytes)
