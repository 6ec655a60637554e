"""Hypothesis strategies for SOAP requests, generated from the contract itself
(dmwsi.contract.load_contract: operations, their fields in order, types,
occurrence bounds, enumerations), then mutated structurally (dropped,
duplicated, reordered, unknown or re-namespaced elements, values of the
wrong type, empty and huge strings), as bytes (truncated, flipped, DTDs,
other encodings) and as HTTP (other methods and content types)."""
import base64
from dataclasses import dataclass
from functools import lru_cache

from hypothesis import strategies as st
from lxml import etree

from dmwsi.contract import XS, load_contract
from dmwsi.wsi.handlers import HANDLERS
from tests.fuzz.mutation import (drop, duplicate, elements, flip, insert_bytes, insert_element, mutate_tree, pick,
                                 renamespace, reorder, truncate)

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
CONTRACT = load_contract()
NS = CONTRACT.target_namespace
OPERATIONS = sorted(CONTRACT.operations)
# Operations of the contract this release serves (the others answer NotImplemented).
BUILT = sorted(set(OPERATIONS) & set(HANDLERS))

# Characters lxml accepts in text (XML 1.0 Char without the C0 controls).
XML_TEXT = (st.characters(min_codepoint=0x20, max_codepoint=0xFFFD, exclude_categories=("Cs",))
            | st.sampled_from("\t\n\r"))
# Values that mean something to the server, mixed into random strings so
# that generated requests reach past "unknown device" into the handlers.
# The fixture registers the devices and creates the job named here.
KNOWN_DEVICES = ("FUZZ-SOAP-1", "FUZZ-SOAP-2")
#: server job ids of jobs the fixture created (filled at run time: ids are the server's)
LIVE_JOB_IDS = []
INTERESTING = ("", " ", "FUZZ-SOAP-1", "FUZZ-SOAP-2", "./DevInfo/Mod", "./DevInfo", ".", "./",
               "./Vendor/../DevInfo", "./A/*", "Man=Acme", "Man=Acme and FwV<2.0", "http://127.0.0.1:1/cb",
               "ftp://x", "-1", "0", "1e9", "NaN", "\u202e", "a" * 300, "<x/>", "]]>", "&amp;", "%s%n", "'; --")
# Lexical forms that are valid for one built-in and wrong for the others.
WRONG_TYPE_VALUES = ("notanumber", "99999999999999999999999", "-2147483649", "1.5", "true ", "maybe",
                     "2026-13-45T25:61:61Z", "not base64!", "", "\u00e9", "0x10", "+", "1 2")
METHODS = ("POST", "post", "Post", "GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "M-POST",
           "PROPFIND", "POST2", "XPOST")
TCHAR = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CONTENT_TYPES = ("text/xml; charset=utf-8", "text/xml", "application/soap+xml", "application/xml",
                 "text/plain", "multipart/related; boundary=x", "text/xml; charset=iso-8859-1", "", "*/*")


@dataclass
class Request:
    """One HTTP request to the SOAP path; ``kind`` says how it was made (for failure messages)."""
    kind: str
    method: str
    body: bytes
    headers: dict


def _q(local):
    return f"{{{NS}}}{local}"


def live_job_id(index):
    return LIVE_JOB_IDS[index % len(LIVE_JOB_IDS)] if LIVE_JOB_IDS else "no-job-yet"


# Strategies are built once per type and reused: a strategy made afresh
# inside a draw is validated and labelled every time, which cost more than
# the HTTP round trips (see tests/fuzz/mutation.py).
@lru_cache(maxsize=None)
def text_values():
    return st.one_of(st.text(XML_TEXT, max_size=24), st.sampled_from(INTERESTING), st.integers(0, 7).map(live_job_id))


@lru_cache(maxsize=None)
def builtin_value(name):
    if name == "string":
        return text_values()
    if name == "int":
        return st.one_of(st.integers(-2**31, 2**31 - 1), st.sampled_from([0, 1, -1, 2**31 - 1])).map(str)
    if name == "long":
        return st.integers(-2**63, 2**63 - 1).map(str)
    if name == "boolean":
        return st.sampled_from(["true", "false", "1", "0"])
    if name == "dateTime":
        return st.datetimes().map(lambda d: d.isoformat()) | st.sampled_from(
            ["2026-01-01T00:00:00Z", "1970-01-01T00:00:00+00:00", "9999-12-31T23:59:59Z"])
    if name == "base64Binary":
        return st.binary(max_size=48).map(lambda b: base64.b64encode(b).decode())
    raise AssertionError(f"built-in {name} is not in dmwsi.contract.reader.BUILTINS")


@lru_cache(maxsize=None)
def simple_value(qname):
    """A lexical value for a named or built-in simple type of the contract."""
    if qname[0] == XS:
        return builtin_value(qname[1])
    simple = CONTRACT.simple_types[qname]
    if simple.enumerations:
        return st.sampled_from(simple.enumerations)
    facets = simple.facets
    if "pattern" in facets:
        return st.from_regex(facets["pattern"], fullmatch=True)
    if simple.base[1] == "string":
        low = facets.get("length", facets.get("minLength", 0))
        high = facets.get("length", facets.get("maxLength", low + 24))
        return st.text(XML_TEXT, min_size=low, max_size=high)
    low = facets.get("minInclusive", facets.get("minExclusive", -2**31 - 1) + 1)
    high = facets.get("maxInclusive", facets.get("maxExclusive", 2**31) - 1)
    return st.integers(low, high).map(str)


KNOWN_DEVICE = st.sampled_from(KNOWN_DEVICES)


@st.composite
def element_of(draw, local, type_qname, depth=0):
    """One contract element named ``local`` holding a value of ``type_qname``."""
    el = etree.Element(_q(local))
    if type_qname == (NS, "DeviceRef") and draw(st.booleans()):
        # The schema lets a DeviceRef hold any of its four fields; the
        # service wants exactly one. Half the time it gets a registered
        # device, so operations run past the device lookup.
        etree.SubElement(el, _q("deviceId")).text = draw(KNOWN_DEVICE)
    elif type_qname in CONTRACT.complex_types:
        for field in CONTRACT.complex_types[type_qname]:
            most = 3 if field.repeated else field.max_occurs
            if depth > 3:       # the contract nests little; deeper is only more bytes
                most = min(most, field.min_occurs)
            for _ in range(draw(st.integers(field.min_occurs, max(field.min_occurs, most)))):
                el.append(draw(element_strategy(field.name, field.type, depth + 1)))
    else:
        el.text = draw(simple_value(type_qname))
    return el


@lru_cache(maxsize=None)
def element_strategy(local, type_qname, depth=0):
    return element_of(local, type_qname, depth)


def envelope(body_child, header=None):
    env = etree.Element(f"{{{SOAP11}}}Envelope", nsmap={"soap": SOAP11, "d": NS})
    if header is not None:
        env.append(header)
    etree.SubElement(env, f"{{{SOAP11}}}Body").append(body_child)
    return env


def _operation_element(operation):
    qname = CONTRACT.operations[operation].input
    return element_strategy(qname[1], CONTRACT.elements[qname])


_SERVED_ELEMENTS = st.one_of([_operation_element(op) for op in BUILT])
_ANY_ELEMENTS = st.one_of([_operation_element(op) for op in OPERATIONS])


@st.composite
def _operation_elements(draw):
    # Mostly served operations: a NotImplemented answer tests little beyond the schema check.
    return draw(_SERVED_ELEMENTS if draw(st.integers(0, 3)) else _ANY_ELEMENTS)


OPERATION_ELEMENTS = _operation_elements()
VALID_ENVELOPES = OPERATION_ELEMENTS.map(envelope)


# ---- structural mutations (on the lxml tree; the shared ones in tests/fuzz/mutation.py) ----

def _leaves(env):
    return [e for e in elements(env) if len(e) == 0]


WRONG_TYPES = st.sampled_from(WRONG_TYPE_VALUES)
HUGE_SIZES, HUGE_CHARS = st.sampled_from([4096, 65536, 300_000]), st.sampled_from("a./\u00e9")


def _wrong_type(draw, env):
    target, value = pick(draw, _leaves(env)), draw(WRONG_TYPES)
    if target is not None:
        target.text = value


def _huge_string(draw, env):
    target, size, char = pick(draw, _leaves(env)), draw(HUGE_SIZES), draw(HUGE_CHARS)
    if target is not None:
        target.text = char * size


EMPTY_TEXTS = st.sampled_from([None, ""])


def _empty(draw, env):
    target, text = pick(draw, elements(env)), draw(EMPTY_TEXTS)
    if target is not None:
        for child in list(target):
            target.remove(child)
        target.text = text


ATTRIBUTES = st.sampled_from([
    (f"{{{XSI}}}nil", "true"), (f"{{{XSI}}}type", "xs:int"), (f"{{{XSI}}}type", "d:Nope"),
    ("id", "x"), (f"{{{SOAP11}}}mustUnderstand", "1"), (f"{{{SOAP11}}}encodingStyle", "urn:x")])


def _attributes(draw, env):
    target = pick(draw, [env] + elements(env))
    name, value = draw(ATTRIBUTES)
    target.set(name, value)


HEADER_KINDS = st.sampled_from(["empty", "unknown", "mustUnderstand", "garbage-security"])


def _soap_header(draw, env):
    header = etree.Element(f"{{{SOAP11}}}Header")
    kind = draw(HEADER_KINDS)
    if kind != "empty":
        child = etree.SubElement(header, "{urn:x}Thing" if kind != "garbage-security" else
                                 "{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}"
                                 "Security")
        if kind == "mustUnderstand":
            child.set(f"{{{SOAP11}}}mustUnderstand", "1")
        child.text = draw(text_values())
    env.insert(0, header)


def _second_body_child(draw, env):
    body = env.find(f"{{{SOAP11}}}Body")
    if body is not None:
        body.append(draw(OPERATION_ELEMENTS))


OPERATION_NAMES = st.sampled_from(OPERATIONS + ["NoSuchOperation", "GetServiceInfoResponse"])


def _swap_operation(draw, env):
    """The body of one operation under another operation's element name."""
    body = env.find(f"{{{SOAP11}}}Body")
    if body is not None and len(body):
        body[0].tag = _q(draw(OPERATION_NAMES))


TREE_MUTATIONS = st.sampled_from([
    drop, duplicate, reorder, _wrong_type, _huge_string, _empty,
    insert_element(["unknown", "Extra", "jobId", "device", "Security", "x" * 200], [NS, "urn:other", "", SOAP11],
                   text_values()),
    renamespace(["urn:wrong", SOAP12, SOAP11, NS, "", "http://dmwsi.org/ns/dmwsi/2.0"]),
    _attributes, _soap_header, _second_body_child, _swap_operation])


@st.composite
def mutated_envelopes(draw):
    return mutate_tree(draw, draw(VALID_ENVELOPES), TREE_MUTATIONS)


MUTATED_ENVELOPES = mutated_envelopes()


# ---- byte mutations (truncate, flip, insert: tests/fuzz/mutation.py) ------------------

def _serialize(env):
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


BYTE_KINDS = st.sampled_from(["truncate", "flip", "insert", "doctype", "entity", "encoding", "latin1", "bom", "nul",
                              "garbage", "empty", "comment-pi"])
XML_SNIPPETS = st.sampled_from([b"<", b">", b"&", b"]]>", b"</x>", b"<![CDATA[", b"\xff\xfe", b"&undefined;", b"&#0;",
                                b"<?xml version='1.0'?>"])
ENCODINGS = st.sampled_from([b"utf-16", b"ebcdic-cp-us", b"nonsense", b"iso-8859-1", b"utf-32"])
GARBAGE = st.binary(min_size=1, max_size=512)


@st.composite
def mutated_bytes(draw):
    data = _serialize(draw(VALID_ENVELOPES))
    kind = draw(BYTE_KINDS)
    if kind == "truncate":
        return truncate(draw, data)
    if kind == "flip":
        return flip(draw, data)
    if kind == "insert":
        return insert_bytes(draw, data, XML_SNIPPETS)
    body = data.split(b"?>", 1)[1]
    if kind == "doctype":
        return b'<?xml version="1.0"?><!DOCTYPE soap:Envelope [<!ELEMENT x ANY>]>' + body
    if kind == "entity":
        return (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">'
                b'<!ENTITY c SYSTEM "file:///etc/passwd">]>' + body.replace(b"</soap:Body>", b"&b;&c;</soap:Body>"))
    if kind == "encoding":
        return b'<?xml version="1.0" encoding="' + draw(ENCODINGS) + b'"?>' + body
    if kind == "latin1":
        return data.replace(b"</soap:Body>", b"\xe9\xff</soap:Body>")
    if kind == "bom":
        return b"\xef\xbb\xbf" + data if draw(st.booleans()) else b"\xff\xfe" + body
    if kind == "nul":
        return data + b"\x00" * draw(st.integers(1, 16))
    if kind == "garbage":
        return draw(GARBAGE)
    if kind == "empty":
        return b""
    return data.replace(b"<soap:Body>", b"<soap:Body><!-- c --><?pi x?>")


# ---- whole requests -------------------------------------------------------------------

SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
HTTP_METHODS = st.sampled_from(METHODS) | st.text(TCHAR, min_size=1, max_size=12)
HTTP_BODIES = st.just(b"") | VALID_ENVELOPES.map(_serialize)
HTTP_HEADERS = st.fixed_dictionaries({
    "Content-Type": st.sampled_from(CONTENT_TYPES),
    "SOAPAction": st.sampled_from(['""', '"urn:x"', "", "GetServiceInfo", '"' + "a" * 500 + '"'])})


def _post(kind):
    return lambda body: Request(kind, "POST", body, dict(SOAP_HEADERS))


REQUESTS = st.one_of(
    VALID_ENVELOPES.map(_serialize).map(_post("valid")),
    MUTATED_ENVELOPES.map(_serialize).map(_post("mutated")),
    mutated_bytes().map(_post("bytes")),
    # Other methods (known, case variants, random tokens), content types and SOAPActions.
    st.builds(lambda method, body, headers: Request("http", method, body, headers),
              HTTP_METHODS, HTTP_BODIES, HTTP_HEADERS))
