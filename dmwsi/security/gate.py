"""What may reach the SOAP application at all, decided before authentication.

Only two kinds of request are served on the SOAP path:

* exactly ``POST`` (the method is case-sensitive, RFC 9110 §9.1) whose body
  is a SOAP 1.1 ``Envelope`` with a ``Body``, as UTF-8 (or a declared
  encoding) XML without a DTD (SOAP 1.1 §3 forbids one);
* ``GET`` without a body: the WSDL and the schema documents spyne serves.

Anything else is refused here with a fault from the table
(docs/faults.rst): ``MethodNotAllowed`` (HTTP 405) or ``InvalidRequest``
(HTTP 500, the SOAP 1.1 binding's status for faults). The body is parsed
once with a parser that loads no DTD, resolves no entity, fetches nothing
and refuses huge trees, so no XXE or entity expansion reaches lxml's
defaults in spyne.
"""
import hashlib
import logging

from lxml import etree

from dmwsi.security.ns import SOAP11
from dmwsi.contract.faults import fault_detail, fault_document
from dmwsi.errors import CODES, OperationError

log = logging.getLogger(__name__)

HARDENED_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                                  dtd_validation=False, huge_tree=False)
ALLOWED_METHODS = "POST, GET"
METHOD_NOT_ALLOWED_STATUS = "405 Method Not Allowed"
FAULT_STATUS = "500 Internal Server Error"


class Refused(OperationError):
    """A request the gate does not let through: a table code, a reason, an HTTP status."""

    def __init__(self, code, reason, status=FAULT_STATUS):
        super().__init__(code, reason)
        self.reason, self.status = reason, status


def check_method(environ):
    """Raise Refused unless the request is a POST, or a GET that carries no body."""
    method = environ.get("REQUEST_METHOD", "")
    if method == "POST":
        return
    if method == "GET" and not _has_body(environ):
        return
    raise Refused("MethodNotAllowed", f"method {method[:16]!r} with this request is not served; "
                                      f"use POST for SOAP messages or GET for the WSDL",
                  METHOD_NOT_ALLOWED_STATUS)


def _has_body(environ):
    if environ.get("HTTP_TRANSFER_ENCODING"):
        return True
    try:
        return int(environ.get("CONTENT_LENGTH") or 0) != 0
    except ValueError:
        return True


def parse_soap_envelope(body):
    """The request's SOAP 1.1 Envelope element, or Refused("InvalidRequest")."""
    if not body:
        raise Refused("InvalidRequest", "the request has no body")
    try:
        root = etree.fromstring(body, HARDENED_PARSER)
    except (etree.XMLSyntaxError, ValueError) as error:     # bad UTF-8, not XML, truncated
        raise Refused("InvalidRequest", f"the body is not well-formed XML: {str(error)[:120]}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.system_url or docinfo.public_id:
        raise Refused("InvalidRequest", "a SOAP message must not contain a document type declaration")
    if root.tag != f"{{{SOAP11}}}Envelope":
        raise Refused("InvalidRequest", "the document element is not a SOAP 1.1 Envelope")
    if root.find(f"{{{SOAP11}}}Body") is None:
        raise Refused("InvalidRequest", "the SOAP Envelope has no Body")
    return root


def refusal_envelope(code, reason):
    """The SOAP 1.1 Client/Server fault document (bytes) for a table code."""
    side, _ = CODES[code]
    return fault_document(f"soap:{side}", f"{code}: {reason}", fault_detail(code, reason))


def summary(body):
    """A short, safe description of a request body for the log (never the body itself)."""
    body = body or b""
    return f"{len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()[:16]}, starts {body[:32]!r}"
