"""SyncML DM message model: lenient parse of real-client captures, strict serialize."""
import re
from pathlib import Path

import pytest
from lxml import etree

from dmwsi.dm import message as M
from dmwsi.dm.codes import AlertCode, StatusCode

FIXTURES = Path(__file__).parent / "fixtures" / "real-clients"
NS = M.SYNCML_NS
MI = M.METINF_NS


def log_messages(name):
    """The SyncML bodies of a capture log, in order."""
    text = (FIXTURES / name).read_bytes()
    found = re.findall(rb"<\?xml.*?</SyncML>", text, re.S)
    assert found, f"no SyncML in {name}"
    return found


LOG_MESSAGES = [
    pytest.param(body, id=f"{name}#{i}")
    for name in ("koneki-session.log", "libdmclient-xml-session.log")
    for i, body in enumerate(log_messages(name))
]


@pytest.mark.parametrize("body", LOG_MESSAGES)
def test_every_logged_message_parses_and_round_trips(body):
    m = M.parse(body)
    assert m.header.ver_dtd == "1.2" and m.header.ver_proto == "DM/1.2"
    assert m.header.session_id == "1" and m.header.source and m.header.target
    assert m.final and m.body
    assert all(not isinstance(c, M.UnknownCommand) for c in m.body)
    # parse is idempotent through serialize (command Meta already merged into items)
    assert M.parse(M.serialize(m)) == m


def test_log_extraction_finds_all_packages():
    assert len(log_messages("koneki-session.log")) == 4
    assert len(log_messages("libdmclient-xml-session.log")) == 4


def test_koneki_pkg1_meta_on_command_is_inherited_and_empty_basic_cred():
    m = M.parse(log_messages("koneki-session.log")[0])
    assert m.header.cred == M.Cred(type=M.AUTH_BASIC, format="b64", data="")
    alert, replace = m.body
    assert isinstance(alert, M.Alert) and alert.data == AlertCode.CLIENT_INITIATED_MGMT
    assert isinstance(replace, M.Replace) and replace.meta.format == "chr"
    assert [i.source for i in replace.items] == [
        "./DevInfo/DevId", "./DevInfo/Man", "./DevInfo/Mod", "./DevInfo/DmV", "./DevInfo/Lang"]
    assert all(i.meta == M.Meta(format="chr", type="text/plain") for i in replace.items)
    assert replace.items[0].data == "IMEI:KONEKI1"


def test_koneki_pkg3_results_and_statuses():
    m = M.parse(log_messages("koneki-session.log")[2])
    status_hdr, status_get, results, status_replace = m.body
    assert (status_hdr.cmd_ref, status_hdr.cmd, status_hdr.code) == ("0", "SyncHdr", 212)
    assert status_hdr.target_refs == [] and status_hdr.source_refs == []
    assert (status_get.cmd, status_get.code) == ("Get", 200)
    assert isinstance(results, M.Results) and results.cmd_ref == "4" and results.msg_ref == "1"
    assert results.items[0].source == "./DevInfo/Mod"
    assert results.items[0].data == "value-of-./DevInfo/Mod"


def test_libdmclient_pkg1_devinfo_tree_and_header_meta():
    m = M.parse(log_messages("libdmclient-xml-session.log")[0])
    assert m.header.cred == M.Cred(type=M.AUTH_BASIC, format="b64", data="ZnVuYW1ib2w6ZnVuYW1ib2w=")
    assert m.header.meta == M.Meta(max_msg_size=16384)
    replace = m.body[1]
    assert len(replace.items) == 13
    nodes = {i.source: i.data for i in replace.items if i.meta.format == "node"}
    assert nodes["./DevInfo/Ext"] == "Intel/other"


def test_libdmclient_refuses_with_status_zero():
    m = M.parse(log_messages("libdmclient-xml-session.log")[2])
    assert [s.code for s in m.body] == [0, 0, 0]


def test_pkg3_chal_fixture():
    m = M.parse((FIXTURES / "libdmclient-pkg3-chal.xml").read_bytes())  # has DOCTYPE + indentation
    hdr_status = m.body[0]
    assert hdr_status.chal == M.Chal(type=M.AUTH_MD5, format="b64", next_nonce="eWliMEdqQnM3cTA9")
    assert hdr_status.code == StatusCode.AUTH_ACCEPTED
    assert hdr_status.target_refs == ["DMCtest"]
    assert m.body[2].items[0].data == "test model"  # no indentation whitespace leaked in
    assert m.body[3].code == StatusCode.PERMISSION_DENIED
    assert m.body[3].target_refs == ["./DevInfo/Ext/other/test3"]


# The reference's own examples (§3.1 package 1, §15 generic alert).
REF_PKG1 = b"""<SyncML xmlns="SYNCML:SYNCML1.2">
 <SyncHdr>
  <VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto><SessionID>1A2B</SessionID><MsgID>1</MsgID>
  <Target><LocURI>https://dms.example.com/dm</LocURI></Target>
  <Source><LocURI>IMEI:493005100592800</LocURI><LocName>devuser</LocName></Source>
  <Cred>
   <Meta><Format xmlns="syncml:metinf">b64</Format><Type xmlns="syncml:metinf">syncml:auth-md5</Type></Meta>
   <Data>Zz6EivR3yeaaENcRN6lpAQ==</Data>
  </Cred>
  <Meta><MaxMsgSize xmlns="syncml:metinf">16384</MaxMsgSize></Meta>
 </SyncHdr>
 <SyncBody>
  <Alert><CmdID>1</CmdID><Data>1200</Data></Alert>
  <Replace><CmdID>2</CmdID>
   <Item><Source><LocURI>./DevInfo/DevId</LocURI></Source><Data>IMEI:493005100592800</Data></Item>
   <Item><Source><LocURI>./DevInfo/Lang</LocURI></Source><Data>en-US</Data></Item>
  </Replace>
  <Alert>
   <CmdID>4</CmdID>
   <Correlator>abc123</Correlator>
   <Data>1226</Data>
   <Item>
    <Source><LocURI>./FUMO/pkg1</LocURI></Source>
    <Meta>
     <Type xmlns="syncml:metinf">org.openmobilealliance.dm.firmwareupdate.update</Type>
     <Format xmlns="syncml:metinf">int</Format>
     <Mark xmlns="syncml:metinf">informational</Mark>
    </Meta>
    <Data>200</Data>
   </Item>
  </Alert>
  <Final/>
 </SyncBody>
</SyncML>
"""


def test_reference_pkg1_pretty_printed_and_correlator_before_data():
    m = M.parse(b"\n  " + REF_PKG1 + b"\x00")  # stray whitespace and a NUL terminator
    assert m.header.session_id == "1A2B" and m.header.source_name == "devuser"
    assert m.header.cred.type == M.AUTH_MD5 and m.header.cred.data == "Zz6EivR3yeaaENcRN6lpAQ=="
    generic = m.body[2]
    assert generic.data == AlertCode.GENERIC_ALERT and generic.correlator == "abc123"
    assert generic.items[0].meta == M.Meta(
        type="org.openmobilealliance.dm.firmwareupdate.update", format="int", mark="informational")
    assert generic.items[0].data == "200"


@pytest.mark.parametrize("root", [
    b'<SyncML xmlns="SYNCML:SYNCML1.1">',
    b'<SyncML xmlns="syncml:syncml1.2">',
    b"<SyncML>",
    b'<s:SyncML xmlns:s="SYNCML:SYNCML1.2">',
])
def test_namespace_insensitive(root):
    body = REF_PKG1.replace(b'<SyncML xmlns="SYNCML:SYNCML1.2">', root)
    if root.startswith(b"<s:"):
        body = body.replace(b"</SyncML>", b"</s:SyncML>")
    assert M.parse(body) == M.parse(REF_PKG1)


def minimal(body_xml: bytes, final=True) -> bytes:
    return (b'<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto>'
            b"<SessionID>1</SessionID><MsgID>1</MsgID><Target><LocURI>t</LocURI></Target>"
            b"<Source><LocURI>s</LocURI></Source></SyncHdr><SyncBody>" + body_xml
            + (b"<Final/>" if final else b"") + b"</SyncBody></SyncML>")


def test_missing_optional_parts():
    m = M.parse(minimal(b"", final=False))
    assert m.body == [] and m.final is False
    assert m.header.cred is None and m.header.meta is None and m.header.resp_uri is None


def test_item_meta_overrides_command_meta():
    m = M.parse(minimal(
        b'<Replace><CmdID>3</CmdID><Meta><Format xmlns="syncml:metinf">b64</Format>'
        b'<Type xmlns="syncml:metinf">application/octet-stream</Type></Meta>'
        b'<Item><Target><LocURI>./a</LocURI></Target><Meta><Format xmlns="syncml:metinf">chr</Format>'
        b'<Size xmlns="syncml:metinf">4</Size></Meta><Data>abcd</Data><MoreData/></Item>'
        b"<Item><Target><LocURI>./b</LocURI></Target><Data>x</Data></Item></Replace>"))
    a, b = m.body[0].items
    assert a.meta == M.Meta(format="chr", type="application/octet-stream", size=4) and a.more_data
    assert b.meta == M.Meta(format="b64", type="application/octet-stream") and not b.more_data


def test_metinf_wrapper_and_ds_content():
    m = M.parse(minimal(
        b"<Put><CmdID>2</CmdID><Item><Source><LocURI>./devinf12</LocURI></Source></Item></Put>"
        b'<Results><CmdID>3</CmdID><CmdRef>1</CmdRef><Meta><MetInf xmlns="syncml:metinf">'
        b"<Type>application/vnd.syncml-devinf+xml</Type></MetInf></Meta>"
        b"<Item><Source><LocURI>./devinf12</LocURI></Source><SourceParent><LocURI>./p</LocURI></SourceParent>"
        b'<Data><DevInf xmlns="syncml:devinf"><VerDTD>1.2</VerDTD><Man>ACME</Man></DevInf></Data></Item>'
        b"</Results>"))
    put, results = m.body
    assert isinstance(put, M.UnknownCommand) and put.tag == "Put" and put.cmd_id == "2"
    assert results.msg_ref is None
    item = results.items[0]
    assert item.meta.type == "application/vnd.syncml-devinf+xml" and item.source_parent == "./p"
    assert item.data_xml
    assert etree.fromstring(item.data).findtext("{syncml:devinf}Man") == "ACME"
    again = M.parse(M.serialize(m))
    assert again == m  # unknown command and nested XML survive


def test_missing_cmd_id_is_kept_as_none():
    m = M.parse(minimal(b"<Get><Item><Target><LocURI>./x</LocURI></Target></Item></Get>"))
    assert m.body[0].cmd_id is None
    with pytest.raises(ValueError, match="cmd_id"):
        M.serialize(m)


@pytest.mark.parametrize("garbage, message", [
    (b"", "empty"),
    (b"   \n", "empty"),
    (b"\x02\xa4\x01j\x00mlq", "not well-formed"),
    (b"<SyncML><SyncHdr>", "not well-formed"),
    (b"<html><body>hi</body></html>", "root element"),
    (b'<SyncML xmlns="SYNCML:SYNCML1.2"><SyncBody/></SyncML>', "SyncHdr and SyncBody"),
    (minimal(b"").replace(b"<MsgID>1</MsgID>", b""), "MsgID"),
    (minimal(b"").replace(b"<Source><LocURI>s</LocURI></Source>", b""), "Source"),
    (minimal(b"<Status><CmdID>1</CmdID><MsgRef>1</MsgRef><CmdRef>0</CmdRef><Cmd>SyncHdr</Cmd>"
             b"<Data>OK</Data></Status>"), "integer"),
    (minimal(b"<Status><CmdID>1</CmdID><Cmd>SyncHdr</Cmd><Data>200</Data></Status>"), "CmdRef"),
    (minimal(b"<Alert><CmdID>1</CmdID><Data>x12</Data></Alert>"), "integer"),
    (minimal(b'<Get><CmdID>1</CmdID><Item><Meta><Size xmlns="syncml:metinf">big</Size></Meta></Item></Get>'),
     "Size"),
])
def test_garbage_raises_protocol_error(garbage, message):
    with pytest.raises(M.ProtocolError, match=message):
        M.parse(garbage)


def test_external_entities_are_not_resolved():
    doc = (b'<?xml version="1.0"?><!DOCTYPE SyncML [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           + minimal(b"").replace(b"<LocURI>t</LocURI>", b"<LocURI>t&x;</LocURI>"))
    m = M.parse(doc)
    assert "root" not in m.header.target


# -- strict serialization ------------------------------------------------------

def sample_message() -> M.Message:
    tnds = ('<MgmtTree xmlns="syncml:dmddf1.2"><VerDTD>1.2</VerDTD><Node><NodeName>EMail</NodeName>'
            "<RTProperties><Format><node/></Format></RTProperties><Node><NodeName>Server</NodeName>"
            "<Value>mail.example.com</Value></Node></Node></MgmtTree>")
    hdr = M.SyncHdr(
        session_id="1A2B", msg_id="3", target="IMEI:493005100592800", target_name="dev",
        source="https://dms.example.com/dm", source_name="srv", resp_uri="https://dms/dm?s=9f3c&x=1",
        no_resp=True, cred=M.Cred(type=M.AUTH_MD5, format="b64", data="Zz6EivR3yeaaENcRN6lpAQ=="),
        meta=M.Meta(max_msg_size=16384, max_obj_size=65536))
    lo_meta = M.Meta(format="b64", type="application/octet-stream")
    body = [
        M.Status(cmd_id="1", msg_ref="1", cmd_ref="0", cmd="SyncHdr", target_refs=["https://dms.example.com/dm"],
                 source_refs=["IMEI:493005100592800"], cred=M.Cred(type=M.AUTH_BASIC, format="b64", data="eA=="),
                 chal=M.Chal(type=M.AUTH_MD5, format="b64", next_nonce="YmFyYmF6cXV4"), code=212,
                 items=[M.Item(data="2")]),
        M.Alert(cmd_id="2", no_resp=True, data=AlertCode.CONFIRM_OR_REJECT,
                items=[M.Item(data="MAXDT=30&DR=1"), M.Item(data="Install <fw> 1.0.8? é中"), M.Item(), M.Item(data="")]),
        M.Add(cmd_id="3", no_resp=True, meta=M.Meta(format="xml"),
              items=[M.Item(target="./Vendor", meta=M.Meta(format="xml", type="application/vnd.syncml.dmtnds+xml"),
                            data=tnds, data_xml=True)]),
        M.Replace(cmd_id="4", meta=lo_meta, items=[M.Item(
            target="./FUMO/pkg1/Update/PkgData", meta=lo_meta.merged(None), data="UEsD  ", more_data=True)]),
        M.Atomic(cmd_id="5", no_resp=True, meta=M.Meta(type="x"), commands=[
            M.Delete(cmd_id="6", items=[M.Item(target="./A")]),
            M.Sequence(cmd_id="7", commands=[
                M.Get(cmd_id="8", lang="en", items=[M.Item(target="./A?list=Struct")]),
                M.Copy(cmd_id="9", items=[M.Item(target="./B", target_name="b", source="./A")]),
                M.Alert(cmd_id="10", data=1100, items=[M.Item(), M.Item(data="hello")])])]),
        M.Exec(cmd_id="11", correlator="job-42",
               items=[M.Item(target="./FUMO/pkg1/DownloadAndUpdate", data=" param ")]),
        M.Results(cmd_id="12", msg_ref="2", cmd_ref="8", meta=M.Meta(format="node"), target_ref="./A",
                  source_ref="./A", items=[M.Item(source="./A", meta=M.Meta(format="node"), data="B/C")]),
        M.Alert(cmd_id="13", data=1226, correlator="abc",
                items=[M.Item(source="./FUMO/pkg1", target="./t", meta=M.Meta(
                    type="org.openmobilealliance.dm.firmwareupdate.update", format="int", mark="critical",
                    size=3, version="1.0", emi=["e1", "e2"]), data="200")]),
    ]
    return M.Message(header=hdr, body=body, final=False)


def test_round_trip_of_every_field():
    m = sample_message()
    assert M.parse(M.serialize(m)) == m


def test_exact_bytes_of_a_small_message():
    m = M.Message(
        header=M.SyncHdr(session_id="1A", msg_id="2", target="IMEI:1", source="https://dms/dm",
                         resp_uri="https://dms/dm?s=1"),
        body=[M.Status(cmd_id="1", msg_ref="1", cmd_ref="0", cmd="SyncHdr", target_refs=["https://dms/dm"],
                       source_refs=["IMEI:1"], chal=M.Chal(type=M.AUTH_MD5, format="b64", next_nonce="Tg=="),
                       code=StatusCode.AUTH_ACCEPTED),
              M.Get(cmd_id="2", items=[M.Item(target="./DevDetail/FwV")])],
        final=True)
    assert M.serialize(m) == (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<SyncML xmlns="SYNCML:SYNCML1.2"><SyncHdr><VerDTD>1.2</VerDTD><VerProto>DM/1.2</VerProto>'
        b"<SessionID>1A</SessionID><MsgID>2</MsgID><Target><LocURI>IMEI:1</LocURI></Target>"
        b"<Source><LocURI>https://dms/dm</LocURI></Source><RespURI>https://dms/dm?s=1</RespURI></SyncHdr>"
        b"<SyncBody><Status><CmdID>1</CmdID><MsgRef>1</MsgRef><CmdRef>0</CmdRef><Cmd>SyncHdr</Cmd>"
        b"<TargetRef>https://dms/dm</TargetRef><SourceRef>IMEI:1</SourceRef><Chal><Meta>"
        b'<Format xmlns="syncml:metinf">b64</Format><Type xmlns="syncml:metinf">syncml:auth-md5</Type>'
        b'<NextNonce xmlns="syncml:metinf">Tg==</NextNonce></Meta></Chal><Data>212</Data></Status>'
        b"<Get><CmdID>2</CmdID><Item><Target><LocURI>./DevDetail/FwV</LocURI></Target></Item></Get>"
        b"<Final/></SyncBody></SyncML>")


# Child order per reference §2.1 (MetInf children in MetInf DTD order).
ORDER = {
    "SyncHdr": "VerDTD VerProto SessionID MsgID Target Source RespURI NoResp Cred Meta",
    "Target": "LocURI LocName", "Source": "LocURI LocName",
    "Add": "CmdID NoResp Cred Meta Item", "Replace": "CmdID NoResp Cred Meta Item",
    "Copy": "CmdID NoResp Cred Meta Item", "Delete": "CmdID NoResp Archive SftDel Cred Meta Item",
    "Get": "CmdID NoResp Lang Cred Meta Item", "Exec": "CmdID NoResp Cred Meta Correlator Item",
    "Alert": "CmdID NoResp Cred Data Correlator Item",
    "Atomic": "CmdID NoResp Meta Command", "Sequence": "CmdID NoResp Meta Command",
    "Results": "CmdID MsgRef CmdRef Meta TargetRef SourceRef Item",
    "Status": "CmdID MsgRef CmdRef Cmd TargetRef SourceRef Cred Chal Data Item",
    "Item": "Target Source SourceParent TargetParent Meta Data MoreData",
    "Chal": "Meta", "Cred": "Meta Data",
    "Meta": "Format Type Mark Size Version NextNonce MaxMsgSize MaxObjSize EMI",
    "SyncBody": "Command Final", "SyncML": "SyncHdr SyncBody",
}
COMMANDS = {"Add", "Replace", "Copy", "Delete", "Get", "Exec", "Alert", "Atomic", "Sequence", "Status", "Results"}


def test_serialized_children_follow_dtd_order():
    root = etree.fromstring(M.serialize(sample_message()))
    checked = 0
    for el in root.iter():
        name = etree.QName(el).localname
        if name not in ORDER or etree.QName(el).namespace != NS:  # skips MetInf and TNDS elements
            continue
        allowed = ORDER[name].split()
        kids = ["Command" if (k := etree.QName(c).localname) in COMMANDS and name in ("SyncBody", "Atomic", "Sequence")
                else k for c in el]
        positions = [allowed.index(k) for k in kids]  # ValueError = unexpected child
        assert positions == sorted(positions), f"{name}: {kids}"
        checked += 1
    assert checked > 40


def test_every_metinf_element_declares_its_namespace():
    xml = M.serialize(sample_message())
    root = etree.fromstring(xml)
    metinf = [el for meta in root.iter(f"{{{NS}}}Meta") for el in meta]
    assert metinf and all(etree.QName(el).namespace == MI for el in metinf)
    assert xml.count(b'xmlns="syncml:metinf"') == len(metinf)
    assert root.nsmap == {None: NS}
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?><SyncML xmlns="SYNCML:SYNCML1.2">')


def test_alert_correlator_order_is_switchable():
    alert = M.Alert(cmd_id="1", data=1226, correlator="c", items=[M.Item(data="200")])
    m = M.Message(header=M.SyncHdr(session_id="1", msg_id="1", target="t", source="s"), body=[alert], final=True)
    assert b"<Data>1226</Data><Correlator>c</Correlator>" in M.serialize(m)
    flipped = M.serialize(m, alert_correlator_first=True)
    assert b"<Correlator>c</Correlator><Data>1226</Data>" in flipped
    assert M.parse(flipped) == m


@pytest.mark.parametrize("cmd", [
    M.Get(cmd_id="1"),
    M.Exec(cmd_id="1", items=[M.Item(target="./a"), M.Item(target="./b")]),
    M.Results(cmd_id="1", cmd_ref="2"),
    M.Atomic(cmd_id="1"),
])
def test_serialize_rejects_dtd_violations(cmd):
    m = M.Message(header=M.SyncHdr(session_id="1", msg_id="1", target="t", source="s"), body=[cmd], final=True)
    with pytest.raises(ValueError):
        M.serialize(m)
