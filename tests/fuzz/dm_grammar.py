"""Hypothesis strategies for OMA DM requests, built from the codec's own
grammar: messages are dmwsi.dm.message dataclasses (header, credentials,
every command kind, items, meta) written by its serializer, then mutated
as a tree (dropped, duplicated, reordered, re-namespaced elements, random
identifiers, unknown elements), as bytes (truncated, flipped), and as WBXML
(libwbxml's encoding via dmwsi.dm.wbxml, mutated, or random bytes)."""
from dataclasses import dataclass, replace

from hypothesis import strategies as st
from lxml import etree

from dmwsi.dm import auth, wbxml
from dmwsi.dm.message import (AUTH_BASIC, AUTH_MAC, AUTH_MD5, SYNCML_NS, Add, Alert, Atomic, Chal, Copy, Cred,
                              Delete, Exec, Get, Item, Message, Meta, Replace, Results, Sequence, Status, SyncHdr,
                              UnknownCommand, serialize)
from tests.fuzz.mutation import (drop, duplicate, elements, flip, insert_bytes, insert_element, mutate_tree, pick,
                                 renamespace, reorder, truncate)

# Devices the fixture registers. BASIC's credentials are known here, so
# generated messages can authenticate and reach the session engine's
# command handling; MD5 needs a nonce the fuzzer never has. PROBE is the
# simulated device of the health check: strangers' messages naming it must
# not disturb its sessions.
BASIC = ("FUZZ-DM-BASIC", "fuzz-user", "fuzz-secret")
MD5 = ("FUZZ-DM-MD5", "fuzz-md5-user", "fuzz-md5-secret")
PROBE = "FUZZ-DM-PROBE"
SOURCES = (BASIC[0], MD5[0], PROBE, "FUZZ-DM-UNKNOWN", "", " ", "IMEI:350000000000000", "a" * 300, "\u00e9\u202e")
# Filled at run time from the server's answers and the fixture's jobs, so
# generated messages can continue live sessions and name real work:
#: (RespURI token, SessionID, next MsgID) of live authenticated sessions of BASIC
LIVE_SESSIONS = []
#: RespURI tokens of any live session
LIVE_TOKENS = []
#: Exec correlators (``<jobId>:<seq>``) of BASIC's jobs, for Generic Alerts
LIVE_CORRELATORS = []

XML_TEXT = st.characters(min_codepoint=0x20, max_codepoint=0xFFFD, exclude_categories=("Cs",))
IDS = st.one_of(st.integers(0, 9).map(str), st.sampled_from(["1", "2", "0", "-1", "01", "FFFF", "99999999999999999999",
                                                             " 1 ", "", "x"]),
                st.text(XML_TEXT, max_size=8))
URIS = st.one_of(st.sampled_from(["./DevInfo/Mod", "./DevInfo/Man", "./DevInfo/DevId", "./DevInfo", ".", "./",
                                  "./DevDetail/FwV", "./Vendor/../DevInfo", "./A/*", "./DMAcc/dmwsi/AppAuth",
                                  "./FUMO/Update/PkgURL", "./FUMO/Update", "", "//", "../x", "./a?list=Struct"]),
                 st.text(XML_TEXT, max_size=20))
STATUS_CODES = st.one_of(st.sampled_from([200, 212, 202, 213, 214, 215, 401, 403, 404, 405, 406, 407, 412, 415, 418,
                                          500, 507, 516, 0, -1]), st.integers(-2**40, 2**40))
ALERT_CODES = st.one_of(st.sampled_from([1200, 1201, 1222, 1223, 1224, 1225, 1226, 1100, 1101, 1102]),
                        st.integers(-2**40, 2**40))
CONTENT_TYPES = (wbxml.DM_XML, wbxml.DS_XML, wbxml.DM_WBXML, wbxml.DS_WBXML, "APPLICATION/VND.SYNCML.DM+XML",
                 wbxml.DM_XML + "; charset=utf-8", "text/xml", "application/xml", "", "application/octet-stream")


@dataclass
class Request:
    """One POST to the DM path; ``kind`` says how it was made (for failure messages)."""
    kind: str
    body: bytes
    content_type: str
    token: str = None          # the ?s= RespURI token
    hmac: str = None           # an x-syncml-hmac header


def _live(values, index):
    """One of the values found at run time (None while there are none)."""
    return values[-1 - index % len(values)] if values else None


# Strategies are built once, at import: a strategy made afresh inside a
# draw is validated and labelled every time, which cost more than the HTTP
# round trips of a run (see tests/fuzz/mutation.py).
_WORDS = st.sampled_from(["", "b64", "chr", "int", "text/plain"])
TEXT = st.one_of(st.text(XML_TEXT, max_size=16), _WORDS)
LONG_TEXT = st.one_of(st.text(XML_TEXT, max_size=40), _WORDS)
METAS = st.builds(
    Meta, format=st.none() | st.sampled_from(["b64", "chr", "int", "node", "xml", "bogus"]),
    type=st.none() | st.sampled_from(["text/plain", "application/vnd.syncml.dmtnds+xml",
                                      "org.openmobilealliance.dm.firmwareupdate.devicerequest", "x"]),
    mark=st.none() | st.sampled_from(["informational", "critical", "fatal"]),
    size=st.none() | st.integers(-1, 2**40), max_msg_size=st.none() | st.integers(-1, 2**31),
    max_obj_size=st.none() | st.integers(-1, 2**31), next_nonce=st.none() | st.binary(max_size=16).map(auth.b64encode))
OPTIONAL_META = st.none() | METAS
ITEMS = st.builds(Item, target=st.none() | URIS, source=st.none() | URIS, meta=OPTIONAL_META,
                  data=st.none() | LONG_TEXT | st.binary(max_size=30).map(auth.b64encode), more_data=st.booleans())


ITEMS_1_2, ITEMS_0_2 = st.lists(ITEMS, min_size=1, max_size=2), st.lists(ITEMS, max_size=2)
BASIC_CRED = Cred(type=AUTH_BASIC, format="b64", data=auth.basic_encode(BASIC[1], BASIC[2]))
CREDS = st.one_of(
    st.just(BASIC_CRED),
    st.builds(lambda secret: Cred(type=AUTH_BASIC, format="b64", data=auth.basic_encode(BASIC[1], secret)), TEXT),
    st.builds(lambda digest: Cred(type=AUTH_MD5, format="b64", data=auth.b64encode(digest)),
              st.binary(min_size=16, max_size=16)),
    st.builds(Cred, type=st.just(AUTH_MAC), format=st.just("b64"), data=TEXT),
    st.builds(Cred, type=st.none() | TEXT, format=st.none() | TEXT, data=LONG_TEXT),
    st.just(Cred(data="")))
OTHER_SENDERS = st.tuples(st.sampled_from([s for s in SOURCES if s.strip()]), st.none() | CREDS)
NONBLANK_IDS = IDS.filter(lambda v: v.strip()) | st.just("1")
# Half the messages come from the BASIC device with its credentials, so
# the engine goes on to the commands.
SENDERS = st.just((BASIC[0], BASIC_CRED)) | OTHER_SENDERS
HEADERS = st.builds(
    lambda sender, **fields: SyncHdr(source=sender[0], cred=sender[1], **fields), SENDERS,
    ver_dtd=st.sampled_from(["1.2", "1.1", "", "9"]), ver_proto=st.sampled_from(["DM/1.2", "DM/1.1", "SyncML/1.2", ""]),
    session_id=NONBLANK_IDS, msg_id=NONBLANK_IDS, target=st.sampled_from(["http://127.0.0.1/dm", "dmwsi", "x"]),
    source_name=st.none() | st.sampled_from([BASIC[1], MD5[1], "nobody"]),
    resp_uri=st.none() | st.just("http://127.0.0.1/elsewhere"), no_resp=st.booleans(), meta=OPTIONAL_META)
ITEM_COMMANDS = st.one_of([st.builds(cls, cmd_id=IDS, no_resp=st.booleans(), meta=OPTIONAL_META, items=ITEMS_1_2)
                           for cls in (Add, Replace, Copy, Delete, Get)])
# Every command kind libwbxml's SyncML code page can encode.
ENCODABLE_SIMPLE = st.one_of(
    st.builds(Alert, cmd_id=IDS, no_resp=st.booleans(), data=st.none() | ALERT_CODES,
              correlator=st.none() | st.sampled_from(["job-1:1", "x:y", ":", ""]) | TEXT
              | st.integers(0, 7).map(lambda i: _live(LIVE_CORRELATORS, i)), items=ITEMS_0_2),
    ITEM_COMMANDS,
    st.builds(Exec, cmd_id=IDS, meta=OPTIONAL_META, correlator=st.none() | TEXT,
              items=st.lists(ITEMS, min_size=1, max_size=1)),
    st.builds(Status, cmd_id=IDS, msg_ref=st.none() | IDS, cmd_ref=IDS,
              cmd=st.sampled_from(["SyncHdr", "Get", "Replace", "Exec", "Alert", "Results", "Nope", ""]),
              target_refs=st.lists(URIS, max_size=2), source_refs=st.lists(URIS, max_size=2),
              chal=st.none() | st.builds(Chal, type=st.sampled_from([AUTH_MD5, AUTH_BASIC, AUTH_MAC, "x"]),
                                          format=st.just("b64"), next_nonce=st.binary(max_size=16).map(auth.b64encode)),
              code=STATUS_CODES, items=ITEMS_0_2),
    st.builds(Results, cmd_id=IDS, msg_ref=st.none() | IDS, cmd_ref=IDS, meta=OPTIONAL_META,
              target_ref=st.none() | URIS, source_ref=st.none() | URIS, items=ITEMS_1_2))
# DS-only and unknown commands too (the engine answers them 406/400; libwbxml cannot encode them).
ANY_SIMPLE = ENCODABLE_SIMPLE | st.sampled_from(["Sync", "Map", "Put", "Search", "Foo"]).map(
    lambda tag: UnknownCommand(tag=tag, cmd_id="9", xml=f'<{tag} xmlns="{SYNCML_NS}"><CmdID>9</CmdID></{tag}>'))


def _with_containers(simple):
    return simple | st.one_of([st.builds(cls, cmd_id=IDS, no_resp=st.booleans(),
                                         commands=st.lists(simple, min_size=1, max_size=3))
                               for cls in (Atomic, Sequence)])


COMMAND_LISTS = {True: st.lists(_with_containers(ENCODABLE_SIMPLE), max_size=4),
                 False: st.lists(_with_containers(ANY_SIMPLE), max_size=4)}


PACKAGE_ONE_SOURCES = st.sampled_from(SOURCES)
PACKAGE_ONE_ALERTS = st.sampled_from([1200, 1201])
DEVINFO_VALUES = {"Man": "Acme", "Mod": "P1", "Lang": "en", "DmV": "1.2", "FwV": "1.0", "Ext": ""}
# Which DevInfo leaves a package 1 reports besides DevId (any subset, in any order).
DEVINFO_LEAVES = st.lists(st.sampled_from(sorted(DEVINFO_VALUES)), unique=True, max_size=len(DEVINFO_VALUES))


@st.composite
def messages(draw, encodable=False):
    """A message the serializer accepts: half the time a package 1 (Alert
    1200/1201 first, a DevInfo Replace with DevId and some of the other
    leaves), otherwise any mix of commands."""
    body = draw(COMMAND_LISTS[encodable])
    if draw(st.booleans()):
        devinfo = Replace(cmd_id="2", items=[Item(source="./DevInfo/DevId", data=draw(PACKAGE_ONE_SOURCES))] + [
            Item(source=f"./DevInfo/{leaf}", data=DEVINFO_VALUES[leaf]) for leaf in draw(DEVINFO_LEAVES)])
        body = [Alert(cmd_id="1", data=draw(PACKAGE_ONE_ALERTS)), devinfo] + body
    return Message(header=draw(HEADERS), body=body, final=draw(st.booleans()))


MESSAGES = {True: messages(True), False: messages(False)}


# ---- tree and byte mutations (tests/fuzz/mutation.py) ---------------------------------

IDENTIFIERS = ("MsgID", "SessionID", "CmdID", "MsgRef", "CmdRef", "Data", "LocURI", "MaxMsgSize", "Size", "NextNonce")
IDENTIFIER_VALUES = IDS | st.sampled_from(["a" * 70000, "-99999999999999999999", "1.5", "\u00e9"])


def _identifier(draw, root):
    """A random MsgID / SessionID / CmdID / MsgRef / CmdRef / Data / LocURI value."""
    target = pick(draw, [e for e in elements(root) if etree.QName(e).localname in IDENTIFIERS])
    value = draw(IDENTIFIER_VALUES)
    if target is not None:
        for child in list(target):
            target.remove(child)
        target.text = value


TREE_MUTATIONS = st.sampled_from([
    drop, duplicate, reorder, _identifier,
    insert_element(["Foo", "Cred", "Final", "SyncHdr", "SyncBody", "Status", "Item", "Meta", "Chal"], [SYNCML_NS]),
    renamespace(["SYNCML:SYNCML1.1", "syncml:metinf", "urn:other", ""])])


@st.composite
def mutated_xml(draw):
    root = mutate_tree(draw, etree.fromstring(serialize(draw(MESSAGES[False]))), TREE_MUTATIONS, most=4)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


RANDOM_BYTES = st.binary(min_size=1, max_size=16)


def _repeat(draw, data):
    return data * draw(st.integers(0, 3))


BYTE_MUTATIONS = st.sampled_from([truncate, flip, lambda draw, data: insert_bytes(draw, data, RANDOM_BYTES),
                                  _repeat])


def _byte_mutation(draw, data):
    return draw(BYTE_MUTATIONS)(draw, data)


# Mostly the DM types (the XML or WBXML one first: what shrinking goes to), sometimes any.
XML_TYPES = st.sampled_from([wbxml.DM_XML] * 6 + [wbxml.DS_XML] * 2 + list(CONTENT_TYPES))
WBXML_TYPES = st.sampled_from([wbxml.DM_WBXML] * 6 + [wbxml.DS_WBXML] * 2 + list(CONTENT_TYPES))
TOKENS = st.none() | st.sampled_from(["", "x", "A" * 16]) | st.integers(0, 7).map(lambda i: _live(LIVE_TOKENS, i))
HMACS = st.none() | st.sampled_from(["algorithm=MD5, username=\"fuzz-user\", mac=AAAA", "garbage", ""])
KINDS = st.sampled_from(["xml", "mutated-xml", "xml-bytes", "wbxml", "mutated-wbxml", "random-wbxml"])
# WBXML 1.2 header (version, SyncML 1.2 public id or others, charset, empty string table), then random tokens.
WBXML_HEADS = st.sampled_from([b"\x02\xa4\x01\x6a\x00", b"\x02\x00\x00\x6a\x00", b"\x03\x01\x6a\x00", b"",
                               b"\x02\xa4\x01\x6a\x7f"])
WBXML_TOKENS = st.binary(max_size=200)


def session_message(draw, encodable=False):
    """(message, token): a third of the time the next message of a live
    session of BASIC (its token, SessionID and MsgID), so sessions go on
    past package 1 -- statuses, results and large objects for the commands
    the server sent."""
    msg = draw(MESSAGES[encodable])
    # Both drawn whether or not a session is live (see tests/fuzz/mutation.py: draws never depend on run-time state).
    live, fresh = _live(LIVE_SESSIONS, draw(st.integers(0, 7))), draw(st.integers(0, 2))
    if live is None or fresh:
        return msg, None
    token, session_id, msg_id = live
    header = replace(msg.header, session_id=session_id, msg_id=msg_id, source=BASIC[0], cred=BASIC_CRED)
    return replace(msg, header=header), token


@st.composite
def requests(draw):
    kind = draw(KINDS)
    token, hmac = draw(TOKENS), draw(HMACS)
    if kind in ("xml", "wbxml", "mutated-wbxml"):
        msg, live_token = session_message(draw, encodable=kind != "xml")
        token = live_token or token
        xml = serialize(msg)
        if kind == "xml":
            return Request(kind, xml, draw(XML_TYPES), token, hmac)
        data = wbxml.xml_to_wbxml(xml)
        if kind == "mutated-wbxml":
            data = _byte_mutation(draw, data)
        return Request(kind, data, draw(WBXML_TYPES), token, hmac)
    if kind == "mutated-xml":
        xml = draw(MUTATED_XML)
        if draw(st.booleans()):
            try:            # the mutated tree as WBXML, when libwbxml can encode it
                return Request(kind + "-as-wbxml", wbxml.xml_to_wbxml(xml), draw(WBXML_TYPES), token, hmac)
            except wbxml.WbxmlError:
                pass
        return Request(kind, xml, draw(XML_TYPES), token, hmac)
    if kind == "xml-bytes":
        return Request(kind, _byte_mutation(draw, serialize(draw(MESSAGES[False]))), draw(XML_TYPES), token, hmac)
    return Request(kind, draw(WBXML_HEADS) + draw(WBXML_TOKENS), draw(WBXML_TYPES), token, hmac)


MUTATED_XML = mutated_xml()
REQUESTS = requests()
