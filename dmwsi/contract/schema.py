"""The authored XSD as the validator of requests.

:class:`RequestSchema` compiles the contract's schema (the xs:schema of the
WSDL's wsdl:types, with the xsd/ files it includes and imports) with lxml,
and checks a request's payload element (the SOAP Body's one child) against
it: what is enforced is the hand-authored contract, every facet included, not
a regeneration of it. A refusal is the domain's
``OperationError("InvalidRequest", ..., element=<local name>)``.

The files are read once, at construction; every compilation (one per thread,
see :meth:`RequestSchema._schema`) resolves the schemaLocations from those
bytes, so all threads enforce the same contract even if the files change on
disk while the server runs, and no request ever reads a file.
"""
import re
import threading

from lxml import etree

from dmwsi.contract.reader import PARSER, WSDL, XS, ContractError
from dmwsi.errors import OperationError

_ELEMENT = re.compile(r"Element '(?:\{[^}]*\})?([^']+)'")
_NAMESPACE = re.compile(r"\{[^}]*\}")
# lxml quotes the offending value in its message; a caller's 30 MB string is not echoed back whole.
MAX_MESSAGE = 400
MAX_NAME = 100
# lxml routes a schema's includes to the parser's resolvers by swapping libxml2's external entity
# loader, which is process-wide, for the time of the compilation: two compilations at once can
# restore each other's loader early, and an include is then read from disk instead of from the
# bytes read at start. Compiling happens once per thread, so one at a time costs nothing.
_COMPILING = threading.Lock()


class _Files(etree.Resolver):
    """Answers the schema's schemaLocations from the contract files read at start (file URL -> bytes)."""

    def __init__(self, texts):
        super().__init__()
        self.texts = texts

    def resolve(self, url, public_id, context):
        text = self.texts.get(url)
        if text is None:
            return None     # lxml then refuses: PARSER fetches nothing else (no network)
        return self.resolve_string(text, context, base_url=url)


class RequestSchema:
    def __init__(self, contract):
        root = etree.parse(str(contract.path), PARSER).getroot()
        embedded = root.find(f"{{{WSDL}}}types/{{{XS}}}schema")
        # Re-parsed as its own document at the WSDL's address, so its schemaLocations resolve as in the WSDL.
        self._source = etree.tostring(embedded)
        self._base_url = contract.path.as_uri()
        self._files = {path.as_uri(): path.read_bytes() for path in contract.schema_files}
        self._local = threading.local()
        self._schema()    # now: a contract lxml cannot compile fails the start, not the first request

    def _schema(self):
        # One compiled schema per thread: validate() keeps its error log on the schema object, and SOAP
        # requests are validated concurrently in the WSGI thread pool. Compiling costs milliseconds, once.
        schema = getattr(self._local, "schema", None)
        if schema is None:
            parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
            parser.resolvers.add(_Files(self._files))
            document = etree.fromstring(self._source, parser, base_url=self._base_url)
            try:
                with _COMPILING:
                    schema = etree.XMLSchema(document)
            except etree.XMLSchemaParseError as error:
                raise ContractError(f"{self._base_url}: the schema does not compile: {error}") from None
            self._local.schema = schema
        return schema

    def payload(self, body):
        """The request element of a SOAP ``Body``, checked (OperationError("InvalidRequest") otherwise).

        A document/literal message has exactly one element in its Body (WS-I Basic Profile 1.1, R2201),
        and that element is the whole request: a second one would be read by nobody, so it is refused
        rather than ignored.
        """
        if body is None:
            raise OperationError("InvalidRequest", "the SOAP Envelope has no Body")
        elements = [child for child in body if isinstance(child.tag, str)]     # comments are not content
        if not elements:
            raise OperationError("InvalidRequest", "the SOAP Body holds no request element")
        if len(elements) > 1:
            raise OperationError("InvalidRequest",
                                 f"the SOAP Body holds {len(elements)} elements; a request is exactly one",
                                 element=etree.QName(elements[1]).localname)
        self.check(elements[0])
        return elements[0]

    def check(self, payload):
        """Raise OperationError("InvalidRequest") unless ``payload`` is valid against the contract."""
        if payload is None:
            raise OperationError("InvalidRequest", "the SOAP Body holds no request element")
        schema = self._schema()
        if schema.validate(payload):
            return
        error = schema.error_log[0]     # the first error is where the request went wrong; the rest follow from it
        match = _ELEMENT.search(error.message)
        element = (match.group(1) if match else etree.QName(payload).localname)[:MAX_NAME]
        message = _NAMESPACE.sub("", error.message)
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + "..."
        raise OperationError("InvalidRequest", f"{element}: {message}", element=element)
