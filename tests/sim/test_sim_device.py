"""SimulatedDevice driven with hand-built server messages (no network).

Each test plays the server side with ``dmwsi.dm.message`` and checks what the
device puts on the wire against omadm-reference.md (§3-§5, §9, §10, §15).
"""
import base64

import pytest

from dmwsi.dm import auth, trigger, wbxml
from dmwsi.dm.message import (AUTH_BASIC, AUTH_MAC, AUTH_MD5, Add, Alert, Atomic, Chal, Cred, Exec, Get,
                              Item, Message, Meta, Replace, Results, Sequence, Status, SyncHdr, parse,
                              serialize)
from dmwsi.sim.client import (OUTCOME_ABORTED, OUTCOME_DROPPED, OUTCOME_FAILED, OUTCOME_OK,
                              DeviceBehaviour, SimulatedDevice, default_profile)
from dmwsi.sim.objects import (CLIENT_CREDENTIALS, SERVER_CREDENTIALS, FumoScript, read_app_auth,
                               store_nonce)

DEV = "IMEI:493005100592800"
SERVER_URL = "http://dms.example.com/dm"
RESP_URI = "http://dms.example.com/dm?s=tok1"


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def make_device(encoding="xml", scheme="md5", clock=None, **behaviour):
    profile = default_profile(DEV, server_address=SERVER_URL, client_user="devuser",
                              client_password="devpass", server_id="dmwsi", server_password="srvpass",
                              fwv="1.0.7")
    return SimulatedDevice(profile, DeviceBehaviour(encoding=encoding, auth_scheme=scheme, seed=7, **behaviour),
                           clock=clock or Clock())


def decode(request):
    body = request.body
    if wbxml.is_wbxml(request.content_type):
        body = wbxml.wbxml_to_xml(body)
    return parse(body)


def server_msg(device, msg_id, body, *, final=True, cred=None, max_msg_size=None, resp_uri=RESP_URI,
               session_id=None):
    hdr = SyncHdr(session_id=session_id or device.session_id, msg_id=str(msg_id), target=DEV,
                  source=SERVER_URL, resp_uri=resp_uri, cred=cred,
                  meta=Meta(max_msg_size=max_msg_size) if max_msg_size else None)
    return serialize(Message(header=hdr, body=body, final=final))


def hdr_status(device_msg, code, chal=None, cmd_id="1"):
    h = device_msg.header
    return Status(cmd_id=cmd_id, msg_ref=h.msg_id, cmd_ref="0", cmd="SyncHdr", target_refs=[h.target],
                  source_refs=[h.source], chal=chal, code=code)


def acks(device_msg, start=2):
    """Server statuses (200) for every command of a device message except Status/Results."""
    out = []
    for n, cmd in enumerate(c for c in device_msg.body if c.tag not in ("Status", "Results")):
        out.append(Status(cmd_id=str(start + n), msg_ref=device_msg.header.msg_id, cmd_ref=cmd.cmd_id,
                          cmd=cmd.tag, code=200))
    return out


def md5_chal(nonce):
    return Chal(type=AUTH_MD5, format="b64", next_nonce=base64.b64encode(nonce).decode())


def server_cred(device):
    srv = read_app_auth(device.tree, device.account_uri, SERVER_CREDENTIALS)
    return Cred(type=AUTH_MD5, format="b64", data=auth.md5_encode("dmwsi", "srvpass", srv.nonce))


def statuses(msg):
    return [c for c in msg.body if isinstance(c, Status)]


def status_for(msg, cmd_ref):
    found = [c for c in msg.body if isinstance(c, Status) and c.cmd_ref == cmd_ref]
    assert found, f"no Status for CmdRef {cmd_ref} in {msg.body}"
    return found


def authenticated(device, **kw):
    """Open a session and let the server accept package 1 with 212; returns (pkg1, pkg2 bytes builder)."""
    pkg1 = decode(device.open_session(**kw))
    return pkg1


def accept(device, pkg1, commands, *, msg_id=1, final=True, max_msg_size=None, nonce=b"next-session"):
    body = [hdr_status(pkg1, 212, md5_chal(nonce))] + acks(pkg1) + commands
    return device.on_response(server_msg(device, msg_id, body, final=final, max_msg_size=max_msg_size,
                                         cred=server_cred(device)), wbxml.DM_XML, {})


# --------------------------------------------------------------------------- package 1


@pytest.mark.parametrize("scheme", ["md5", "basic", "hmac"])
def test_package_one_content_and_credentials(scheme):
    device = make_device(scheme=scheme)
    store_nonce(device.tree, device.account_uri, CLIENT_CREDENTIALS, b"server-nonce-1")
    request = device.open_session(1201)
    msg = decode(request)
    hdr = msg.header
    assert request.url == SERVER_URL
    assert (hdr.ver_dtd, hdr.ver_proto, hdr.msg_id) == ("1.2", "DM/1.2", "1")
    assert hdr.session_id == device.session_id and hdr.session_id == hdr.session_id.upper()
    assert hdr.target == SERVER_URL and hdr.source == DEV and hdr.source_name == "devuser"
    assert hdr.meta.max_msg_size == 16384 and hdr.meta.max_obj_size
    assert msg.final
    alert, devinfo = msg.body
    assert isinstance(alert, Alert) and alert.data == 1201 and alert.cmd_id == "1"
    assert isinstance(devinfo, Replace)
    leaves = {it.source: it.data for it in devinfo.items}
    assert leaves == {"./DevInfo/DevId": DEV, "./DevInfo/Man": "ACME", "./DevInfo/Mod": "Sim-1",
                      "./DevInfo/DmV": "1.2", "./DevInfo/Lang": "en-US"}
    if scheme == "md5":
        assert hdr.cred.type == AUTH_MD5 and hdr.cred.format == "b64"
        assert hdr.cred.data == auth.md5_encode("devuser", "devpass", b"server-nonce-1")
        assert auth.HMAC_HEADER not in request.headers
    elif scheme == "basic":
        assert hdr.cred.type == AUTH_BASIC
        assert auth.basic_decode(hdr.cred.data) == ("devuser", "devpass")
    else:
        assert hdr.cred is None
        mac = request.headers[auth.HMAC_HEADER]
        assert auth.hmac_verify(mac, "devuser", "devpass", b"server-nonce-1", request.body)
        assert not auth.hmac_verify(mac, "devuser", "devpass", b"other", request.body)


def test_wrong_credentials_are_wrong():
    device = make_device(wrong_credentials=True)
    msg = decode(device.open_session())
    assert not auth.md5_verify(msg.header.cred.data, "devuser", "devpass", b"")


def test_server_initiated_session_uses_package0_session_id():
    device = make_device()
    pkg1 = decode(device.open_session(1200, "1A2B"))
    assert pkg1.header.session_id == "1A2B" and pkg1.body[0].data == 1200


# --------------------------------------------------------------------------- a management session


def test_get_replace_exec_session():
    device = make_device()
    pkg1 = decode(device.open_session())
    commands = [
        Get(cmd_id="4", items=[Item(target="./DevDetail/FwV")]),
        Replace(cmd_id="5", items=[Item(target="./FUMO/pkg1/DownloadAndUpdate/PkgURL",
                                        data="http://fw.example.com/pkg1.dd")]),
        Exec(cmd_id="6", correlator="job-42", items=[Item(target="./FUMO/pkg1/DownloadAndUpdate")]),
        Get(cmd_id="7", items=[Item(target="./No/Such/Node")]),
    ]
    request = accept(device, pkg1, commands, nonce=b"nonce-for-next")
    assert request.url == RESP_URI                      # RespURI followed
    pkg3 = decode(request)
    assert pkg3.header.msg_id == "2" and pkg3.header.cred is None   # 212: no more Cred
    assert pkg3.final
    first = pkg3.body[0]
    assert (first.cmd_ref, first.cmd, first.msg_ref, first.code) == ("0", "SyncHdr", "1", 212)
    assert first.target_refs == [DEV] and first.source_refs == [SERVER_URL]
    (get_status,) = status_for(pkg3, "4")
    assert get_status.code == 200 and get_status.cmd == "Get" and get_status.target_refs == ["./DevDetail/FwV"]
    (results,) = [c for c in pkg3.body if isinstance(c, Results)]
    assert (results.msg_ref, results.cmd_ref) == ("1", "4")
    assert results.items[0].source == "./DevDetail/FwV" and results.items[0].data == "1.0.7"
    assert status_for(pkg3, "5")[0].code == 200
    assert status_for(pkg3, "6")[0].code == 202
    assert status_for(pkg3, "7")[0].code == 404
    # the statuses follow the server's command order
    refs = [c.cmd_ref for c in statuses(pkg3)]
    assert refs == ["0", "4", "5", "6", "7"]
    cmd_ids = [c.cmd_id for c in pkg3.body]
    assert len(set(cmd_ids)) == len(cmd_ids)
    assert device.tree.read_value("./FUMO/pkg1/DownloadAndUpdate/PkgURL") == "http://fw.example.com/pkg1.dd"
    # the Chal nonce of the 212 is kept for the next session's Cred
    assert read_app_auth(device.tree, device.account_uri, CLIENT_CREDENTIALS).nonce == b"nonce-for-next"
    # package 4: statuses only, with Final -> the device must not answer
    end = device.on_response(server_msg(device, 2, [hdr_status(pkg3, 200)]), wbxml.DM_XML, {})
    assert end is None and not device.in_session and device.last_outcome == OUTCOME_OK
    # the next session's Cred uses the stored nonce
    nxt = decode(device.open_session())
    assert nxt.header.cred.data == auth.md5_encode("devuser", "devpass", b"nonce-for-next")


def test_get_struct_interior_and_binary_results():
    device = make_device()
    device.tree.create_leaf("./Ext/Blob", b"\x00\x01\xfe", format="bin", type="application/octet-stream")
    pkg1 = decode(device.open_session())
    pkg3 = decode(accept(device, pkg1, [
        Get(cmd_id="3", items=[Item(target="./FUMO/pkg1")]),
        Get(cmd_id="4", items=[Item(target="./Ext/Blob")]),
        Get(cmd_id="5", items=[Item(target="./DevInfo?list=Struct")]),
        Get(cmd_id="6", items=[Item(target="./DevInfo?list=TNDS+Value")]),
    ]))
    res = {r.cmd_ref: r for r in pkg3.body if isinstance(r, Results)}
    interior = res["3"].items[0]
    assert interior.meta.format == "node" and interior.meta.type == "urn:oma:mo:oma-fumo:1.0"
    assert interior.data.split("/") == ["PkgName", "PkgVersion", "Download", "Update", "DownloadAndUpdate",
                                        "State", "Ext"]
    blob = res["4"].items[0]
    assert blob.meta.format == "b64" and base64.b64decode(blob.data) == b"\x00\x01\xfe"
    struct = res["5"].items
    assert [it.source for it in struct][:3] == ["./DevInfo", "./DevInfo/DevId", "./DevInfo/Man"]
    assert all(it.data is None for it in struct)
    tnds = res["6"].items[0]
    assert tnds.meta.type == "application/vnd.syncml.dmtnds+xml" and tnds.meta.format == "xml"
    assert "<Value>" + DEV + "</Value>" in tnds.data


def test_status_per_item_when_codes_differ():
    device = make_device()
    pkg1 = decode(device.open_session())
    pkg3 = decode(accept(device, pkg1, [Get(cmd_id="3", items=[Item(target="./DevInfo/Man"),
                                                               Item(target="./Nope")])]))
    per_item = status_for(pkg3, "3")
    assert [(s.target_refs, s.code) for s in per_item] == [(["./DevInfo/Man"], 200), (["./Nope"], 404)]
    (results,) = [c for c in pkg3.body if isinstance(c, Results)]
    assert [it.source for it in results.items] == ["./DevInfo/Man"]


# --------------------------------------------------------------------------- authentication


def test_401_retries_package_one_with_new_nonce_then_gives_up():
    device = make_device()
    pkg1 = decode(device.open_session())
    sid = pkg1.header.session_id
    reply = [hdr_status(pkg1, 401, md5_chal(b"fresh-1"))] + [
        Status(cmd_id="2", msg_ref="1", cmd_ref="1", cmd="Alert", code=215),
        Status(cmd_id="3", msg_ref="1", cmd_ref="2", cmd="Replace", code=215)]
    request = device.on_response(server_msg(device, 1, reply), wbxml.DM_XML, {})
    retry = decode(request)
    assert request.url == RESP_URI
    assert retry.header.session_id == sid and retry.header.msg_id == "2"
    assert [c.tag for c in retry.body] == ["Alert", "Replace"] and retry.body[0].data == 1201
    assert retry.header.cred.data == auth.md5_encode("devuser", "devpass", b"fresh-1")
    # 407 (missing) is handled the same way
    request = device.on_response(server_msg(device, 2, [hdr_status(retry, 407, md5_chal(b"fresh-2"))]),
                                 wbxml.DM_XML, {})
    retry2 = decode(request)
    assert retry2.header.msg_id == "3"
    assert retry2.header.cred.data == auth.md5_encode("devuser", "devpass", b"fresh-2")
    # a third refusal: at most two retries, then the session fails
    assert device.on_response(server_msg(device, 3, [hdr_status(retry2, 401, md5_chal(b"x"))]),
                              wbxml.DM_XML, {}) is None
    assert device.last_outcome == OUTCOME_FAILED and device.stats.auth_retries == 2


def test_401_without_challenge_fails():
    device = make_device()
    pkg1 = decode(device.open_session())
    assert device.on_response(server_msg(device, 1, [hdr_status(pkg1, 401)]), wbxml.DM_XML, {}) is None
    assert device.last_outcome == OUTCOME_FAILED


def test_challenge_switches_scheme_to_the_one_asked():
    device = make_device(scheme="basic")
    pkg1 = decode(device.open_session())
    assert pkg1.header.cred.type == AUTH_BASIC
    retry = decode(device.on_response(server_msg(device, 1, [hdr_status(pkg1, 401, md5_chal(b"n1"))]),
                                      wbxml.DM_XML, {}))
    assert retry.header.cred.type == AUTH_MD5
    assert retry.header.cred.data == auth.md5_encode("devuser", "devpass", b"n1")


def test_status_200_keeps_sending_credentials():
    device = make_device()
    pkg1 = decode(device.open_session())
    body = [hdr_status(pkg1, 200, md5_chal(b"n-200"))] + acks(pkg1) + [
        Get(cmd_id="5", items=[Item(target="./DevInfo/Mod")])]
    pkg3 = decode(device.on_response(server_msg(device, 1, body), wbxml.DM_XML, {}))
    assert pkg3.header.cred is not None
    assert pkg3.header.cred.data == auth.md5_encode("devuser", "devpass", b"n-200")


def test_hmac_session_authenticates_every_message_and_checks_server_mac():
    device = make_device(scheme="hmac")
    request = device.open_session()
    pkg1 = decode(request)
    body = [hdr_status(pkg1, 200)] + acks(pkg1) + [Get(cmd_id="4", items=[Item(target="./DevInfo/Man")])]
    raw = server_msg(device, 1, body)
    good = {auth.HMAC_HEADER: auth.hmac_header("dmwsi", "srvpass", b"", raw)}
    request = device.on_response(raw, wbxml.DM_XML, good)
    pkg3 = decode(request)
    assert status_for(pkg3, "0")[0].code == 200
    assert auth.hmac_verify(request.headers[auth.HMAC_HEADER], "devuser", "devpass", b"", request.body)
    # a bad server MAC is refused with 401 + an auth-MAC challenge, commands not executed
    device2 = make_device(scheme="hmac")
    pkg1 = decode(device2.open_session())
    raw = server_msg(device2, 1, [hdr_status(pkg1, 200)] + acks(pkg1)
                     + [Get(cmd_id="4", items=[Item(target="./DevInfo/Man")])])
    bad = {auth.HMAC_HEADER: auth.hmac_header("dmwsi", "wrong", b"", raw)}
    pkg3 = decode(device2.on_response(raw, wbxml.DM_XML, bad))
    hdr = status_for(pkg3, "0")[0]
    assert hdr.code == 401 and hdr.chal.type == AUTH_MAC and hdr.chal.next_nonce
    assert status_for(pkg3, "4")[0].code == 215
    assert not any(isinstance(c, Results) for c in pkg3.body)


def test_server_credentials_verified_and_new_nonce_issued():
    device = make_device(require_server_auth=True)
    store_nonce(device.tree, device.account_uri, SERVER_CREDENTIALS, b"dev-issued-1")
    pkg1 = decode(device.open_session())
    get = Get(cmd_id="4", items=[Item(target="./DevInfo/Mod")])
    good = Cred(type=AUTH_MD5, format="b64", data=auth.md5_encode("dmwsi", "srvpass", b"dev-issued-1"))
    body = [hdr_status(pkg1, 212)] + acks(pkg1) + [get]
    pkg3 = decode(device.on_response(server_msg(device, 1, body, cred=good), wbxml.DM_XML, {}))
    hdr = status_for(pkg3, "0")[0]
    assert hdr.code == 212
    assert hdr.chal.type == AUTH_MD5 and hdr.chal.format == "b64"
    issued = base64.b64decode(hdr.chal.next_nonce)
    assert len(issued) >= 16
    assert read_app_auth(device.tree, device.account_uri, SERVER_CREDENTIALS).nonce == issued
    assert status_for(pkg3, "4")[0].code == 200
    assert any(isinstance(c, Results) for c in pkg3.body)


def test_bad_or_missing_server_credentials_block_commands():
    device = make_device(require_server_auth=True)
    pkg1 = decode(device.open_session())
    get = Get(cmd_id="4", items=[Item(target="./DevInfo/Mod")])
    atomic = Atomic(cmd_id="5", commands=[Replace(cmd_id="6", items=[Item(target="./Ext/Private/Location",
                                                                          data="x")])])
    body = [hdr_status(pkg1, 212)] + acks(pkg1) + [get, atomic]
    pkg3 = decode(device.on_response(server_msg(device, 1, body), wbxml.DM_XML, {}))   # no Cred
    hdr = status_for(pkg3, "0")[0]
    assert hdr.code == 407 and hdr.chal.next_nonce
    nonce = base64.b64decode(hdr.chal.next_nonce)
    assert [status_for(pkg3, ref)[0].code for ref in ("4", "5", "6")] == [215, 215, 215]
    assert not any(isinstance(c, Results) for c in pkg3.body)
    assert device.tree.read_value("./Ext/Private/Location") == ""
    # wrong Cred -> 401, new nonce
    wrong = Cred(type=AUTH_MD5, format="b64", data=auth.md5_encode("dmwsi", "nope", nonce))
    pkg5 = decode(device.on_response(server_msg(device, 2, [hdr_status(pkg3, 200), get], cred=wrong),
                                     wbxml.DM_XML, {}))
    hdr = status_for(pkg5, "0")[0]
    assert hdr.code == 401
    nonce = base64.b64decode(hdr.chal.next_nonce)
    # right Cred with the latest nonce -> 212, executed
    right = Cred(type=AUTH_MD5, format="b64", data=auth.md5_encode("dmwsi", "srvpass", nonce))
    pkg7 = decode(device.on_response(server_msg(device, 3, [hdr_status(pkg5, 200), get], cred=right),
                                     wbxml.DM_XML, {}))
    assert status_for(pkg7, "0")[0].code == 212 and status_for(pkg7, "4")[0].code == 200


def test_server_credentials_optional_by_default():
    device = make_device()
    pkg1 = decode(device.open_session())
    body = [hdr_status(pkg1, 212)] + acks(pkg1) + [Get(cmd_id="4", items=[Item(target="./DevInfo/Mod")])]
    pkg3 = decode(device.on_response(server_msg(device, 1, body), wbxml.DM_XML, {}))
    assert status_for(pkg3, "0")[0].code == 200 and status_for(pkg3, "4")[0].code == 200


# --------------------------------------------------------------------------- multi-message, large objects


def test_server_message_without_final_gets_alert_1222():
    device = make_device()
    pkg1 = decode(device.open_session())
    pkg3 = decode(accept(device, pkg1, [Get(cmd_id="4", items=[Item(target="./DevInfo/Mod")])], final=False))
    assert not pkg3.final
    assert status_for(pkg3, "4")[0].code == 200 and any(isinstance(c, Results) for c in pkg3.body)
    assert isinstance(pkg3.body[-1], Alert) and pkg3.body[-1].data == 1222
    # the rest of the server package, with Final: device closes its package
    nxt = decode(device.on_response(server_msg(device, 2, [hdr_status(pkg3, 200),
                                                          Get(cmd_id="2", items=[Item(target="./DevInfo/Man")])]),
                                    wbxml.DM_XML, {}))
    assert nxt.final and not any(isinstance(c, Alert) for c in nxt.body)
    assert status_for(nxt, "2")[0].msg_ref == "2"


def test_large_object_received_in_chunks():
    device = make_device()
    payload = bytes(range(256)) * 40
    text = base64.b64encode(payload).decode()
    parts = [text[i:i + 4000] for i in range(0, len(text), 4000)]
    target = "./FUMO/pkg1/Update/PkgData"
    pkg1 = decode(device.open_session())
    cmd_meta = Meta(format="b64", type="application/octet-stream")
    first = Replace(cmd_id="3", meta=cmd_meta, items=[Item(target=target, meta=Meta(size=len(text)),
                                                            data=parts[0], more_data=True)])
    msg = decode(accept(device, pkg1, [first], final=False))
    assert status_for(msg, "3")[0].code == 213
    assert not msg.final and msg.body[-1].data == 1222
    assert device.tree.read_value(target) == b""                  # not committed yet
    for n, part in enumerate(parts[1:], start=2):
        last = n == len(parts)
        cmd = Replace(cmd_id="2", meta=cmd_meta, items=[Item(target=target, data=part, more_data=not last)])
        msg = decode(device.on_response(server_msg(device, n, [hdr_status(msg, 200), cmd], final=last),
                                        wbxml.DM_XML, {}))
        assert status_for(msg, "2")[0].code == (200 if last else 213)
        assert msg.final == last
    assert device.tree.read_value(target) == payload


def test_large_object_size_mismatch_is_424_and_not_committed():
    device = make_device()
    target = "./FUMO/pkg1/Update/PkgData"
    pkg1 = decode(device.open_session())
    meta = Meta(format="b64", size=9999)
    msg = decode(accept(device, pkg1, [Replace(cmd_id="3", items=[Item(target=target, meta=meta, data="QUJD",
                                                                        more_data=True)])], final=False))
    assert status_for(msg, "3")[0].code == 213
    msg = decode(device.on_response(server_msg(device, 2, [hdr_status(msg, 200), Replace(
        cmd_id="2", items=[Item(target=target, meta=Meta(format="b64"), data="REVG")])]), wbxml.DM_XML, {}))
    assert status_for(msg, "2")[0].code == 424
    assert device.tree.read_value(target) == b""


def test_large_object_interrupted_gets_alert_1225():
    device = make_device()
    target = "./FUMO/pkg1/Update/PkgData"
    pkg1 = decode(device.open_session())
    msg = decode(accept(device, pkg1, [Replace(cmd_id="3", items=[Item(
        target=target, meta=Meta(format="b64", size=8), data="QUJD", more_data=True)])], final=False))
    msg = decode(device.on_response(server_msg(device, 2, [hdr_status(msg, 200), Get(
        cmd_id="2", items=[Item(target="./DevInfo/Man")])]), wbxml.DM_XML, {}))
    (alert,) = [c for c in msg.body if isinstance(c, Alert)]
    assert alert.data == 1225 and alert.items[0].target == target
    assert status_for(msg, "2")[0].code == 200
    assert device.tree.read_value(target) == b""


def test_large_results_are_chunked_to_server_max_msg_size():
    device = make_device()
    value = "".join(chr(ord("a") + i % 26) for i in range(7000)) + "<&>"
    device.tree.create_leaf("./Ext/Big", value)
    limit = 2000
    pkg1 = decode(device.open_session())
    request = accept(device, pkg1, [Get(cmd_id="3", items=[Item(target="./Ext/Big")]),
                                    Get(cmd_id="4", items=[Item(target="./DevInfo/Man")])], max_msg_size=limit)
    chunks, sizes, finals = [], [], []
    server_id = 2
    while True:
        assert len(request.body) <= limit
        msg = decode(request)
        results = [c for c in msg.body if isinstance(c, Results)]
        for r in results:
            if r.cmd_ref == "3":
                item = r.items[0]
                chunks.append(item)
        finals.append(msg.final)
        if msg.final:
            break
        # server "next message" reply: 213 for the chunk, Alert 1222, no Final
        reply = [hdr_status(msg, 200)]
        for r in results:
            reply.append(Status(cmd_id="2", msg_ref=msg.header.msg_id, cmd_ref=r.cmd_ref, cmd="Results",
                                code=213))
        reply.append(Alert(cmd_id="3", data=1222))
        request = device.on_response(server_msg(device, server_id, reply, final=False, max_msg_size=limit),
                                     wbxml.DM_XML, {})
        server_id += 1
    assert len(chunks) >= 4
    assert chunks[0].meta.size == len(value)
    assert all(c.more_data for c in chunks[:-1]) and not chunks[-1].more_data
    assert "".join(c.data for c in chunks) == value
    assert finals[-1] and not any(finals[:-1])
    # the other Get's Results come after the object, in the final message
    assert any(isinstance(c, Results) and c.cmd_ref == "4" for c in decode(request).body)


def test_struct_data_list_with_a_big_leaf_is_split_then_chunked():
    device = make_device()
    device.tree.create_interior("./Ext/Logs")
    device.tree.create_leaf("./Ext/Logs/Big", "L" * 5000)
    device.tree.create_leaf("./Ext/Logs/Small", "s")
    pkg1 = decode(device.open_session())
    request = accept(device, pkg1, [Get(cmd_id="3", items=[Item(target="./Ext/Logs?list=StructData")])],
                     max_msg_size=1800)
    items, server_id = [], 2
    while True:
        assert len(request.body) <= 1800
        msg = decode(request)
        items += [it for c in msg.body if isinstance(c, Results) and c.cmd_ref == "3" for it in c.items]
        if msg.final:
            break
        request = device.on_response(server_msg(device, server_id, [hdr_status(msg, 200),
                                                                    Alert(cmd_id="2", data=1222)], final=False),
                                     wbxml.DM_XML, {})
        server_id += 1
    big = [it for it in items if it.source == "./Ext/Logs/Big"]
    assert len(big) >= 3 and big[0].meta.size == 5000 and "".join(it.data for it in big) == "L" * 5000
    assert [it.source for it in items if it.source != "./Ext/Logs/Big"] == ["./Ext/Logs", "./Ext/Logs/Small"]


def test_many_results_split_over_messages_without_chunking():
    device = make_device()
    pkg1 = decode(device.open_session())
    gets = [Get(cmd_id=str(10 + n), items=[Item(target="./DevDetail/FwV")]) for n in range(60)]
    request = accept(device, pkg1, gets, max_msg_size=3000)
    seen, server_id = [], 2
    while True:
        assert len(request.body) <= 3000
        msg = decode(request)
        seen += [c.cmd_ref for c in msg.body if isinstance(c, Results)]
        assert not any(it.more_data for c in msg.body if isinstance(c, Results) for it in c.items)
        if msg.final:
            break
        request = device.on_response(server_msg(device, server_id, [hdr_status(msg, 200),
                                                                    Alert(cmd_id="2", data=1222)], final=False),
                                     wbxml.DM_XML, {})
        server_id += 1
    assert seen == [str(10 + n) for n in range(60)] and server_id > 2


# --------------------------------------------------------------------------- Atomic, Sequence, UI


def test_atomic_rolls_back():
    device = make_device()
    pkg1 = decode(device.open_session())
    atomic = Atomic(cmd_id="3", commands=[
        Add(cmd_id="4", items=[Item(target="./Ext/Private/New1", data="a")]),
        Replace(cmd_id="5", items=[Item(target="./DevInfo/Man", data="Evil")]),      # ACL Get=* only
        Add(cmd_id="6", items=[Item(target="./Ext/Private/New2", data="b")]),
    ])
    pkg3 = decode(accept(device, pkg1, [atomic]))
    codes = {ref: status_for(pkg3, ref)[0].code for ref in ("3", "4", "5", "6")}
    assert codes == {"3": 507, "4": 216, "5": 425, "6": 215}
    assert not device.tree.exists("./Ext/Private/New1") and not device.tree.exists("./Ext/Private/New2")
    assert device.tree.read_value("./DevInfo/Man") == "ACME"


def test_atomic_success_commits():
    device = make_device()
    pkg1 = decode(device.open_session())
    atomic = Atomic(cmd_id="3", commands=[Add(cmd_id="4", items=[Item(target="./Ext/Private/New1", data="a")]),
                                          Add(cmd_id="5", items=[Item(target="./Ext/Private/New2", data="b")])])
    pkg3 = decode(accept(device, pkg1, [atomic]))
    assert [status_for(pkg3, r)[0].code for r in ("3", "4", "5")] == [200, 200, 200]
    assert device.tree.read_value("./Ext/Private/New2") == "b"


def test_sequence_stops_after_user_says_no():
    device = make_device(ui_confirm=False)
    pkg1 = decode(device.open_session())
    seq = Sequence(cmd_id="3", commands=[
        Alert(cmd_id="4", data=1101, items=[Item(data="MAXDT=30"), Item(data="Install?")]),
        Add(cmd_id="5", items=[Item(target="./Ext/Private/New1", data="a")]),
    ])
    choice = Alert(cmd_id="6", data=1103, items=[Item(data="DR=2"), Item(data="Pick"), Item(data="a"),
                                                 Item(data="b")])
    pkg3 = decode(accept(device, pkg1, [seq, choice]))
    assert [status_for(pkg3, r)[0].code for r in ("3", "4", "5")] == [200, 304, 215]
    assert not device.tree.exists("./Ext/Private/New1")
    picked = status_for(pkg3, "6")[0]
    assert picked.code == 200 and [it.data for it in picked.items] == ["2"]


def test_fail_rate_and_drop_rate():
    device = make_device(fail_rate=1.0)
    pkg1 = decode(device.open_session())
    pkg3 = decode(accept(device, pkg1, [Get(cmd_id="3", items=[Item(target="./DevInfo/Man")])]))
    assert status_for(pkg3, "3")[0].code == 500 and not any(isinstance(c, Results) for c in pkg3.body)
    device = make_device(drop_rate=1.0)
    pkg1 = decode(device.open_session())
    assert accept(device, pkg1, [Get(cmd_id="3", items=[Item(target="./DevInfo/Man")])]) is None
    assert device.last_outcome == OUTCOME_DROPPED


def test_server_abort_1223_gets_no_answer():
    device = make_device()
    pkg1 = decode(device.open_session())
    assert accept(device, pkg1, [Alert(cmd_id="3", data=1223)]) is None
    assert device.last_outcome == OUTCOME_ABORTED


# --------------------------------------------------------------------------- Generic Alerts


def test_generic_alert_after_fumo_exec_carries_correlator():
    clock = Clock()
    device = make_device(clock=clock, fumo_script=FumoScript(download_seconds=5, update_seconds=5,
                                                            new_firmware_version="2.0"))
    pkg1 = decode(device.open_session())
    pkg3 = decode(accept(device, pkg1, [
        Replace(cmd_id="3", items=[Item(target="./FUMO/pkg1/DownloadAndUpdate/PkgURL", data="http://x/fw")]),
        Exec(cmd_id="4", correlator="job-42", items=[Item(target="./FUMO/pkg1/DownloadAndUpdate")]),
    ]))
    assert status_for(pkg3, "4")[0].code == 202
    assert not any(isinstance(c, Alert) for c in pkg3.body)      # not finished yet
    assert device.on_response(server_msg(device, 2, [hdr_status(pkg3, 200)]), wbxml.DM_XML, {}) is None
    clock.now += 20                                              # the update finishes
    nxt = decode(device.open_session())
    alerts = [c for c in nxt.body if isinstance(c, Alert) and c.data == 1226]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.correlator == "job-42"
    item = alert.items[0]
    assert item.source == "./FUMO/pkg1/DownloadAndUpdate"
    assert item.meta.type == "org.openmobilealliance.dm.firmwareupdate.downloadandupdate"
    assert item.meta.format == "int" and item.meta.mark == "informational" and item.data == "200"
    assert device.tree.read_value("./DevDetail/FwV") == "2.0"
    # not acknowledged (session dropped): sent again in the next session
    device.abort_session("timeout")
    again = decode(device.open_session())
    assert [c.correlator for c in again.body if isinstance(c, Alert) and c.data == 1226] == ["job-42"]
    # acknowledged with 200: gone
    acks_ = [hdr_status(again, 212)] + acks(again)
    device.on_response(server_msg(device, 1, acks_), wbxml.DM_XML, {})
    assert device.stats.alerts_acknowledged == 1
    later = decode(device.open_session())
    assert not any(isinstance(c, Alert) and c.data == 1226 for c in later.body)


def test_generic_alert_in_same_session_when_operation_is_instant():
    device = make_device(fumo_script=FumoScript(download_seconds=0, update_seconds=0, update_result=410))
    pkg1 = decode(device.open_session())
    pkg3 = decode(accept(device, pkg1, [
        Replace(cmd_id="3", items=[Item(target="./FUMO/pkg1/DownloadAndUpdate/PkgURL", data="http://x/fw")]),
        Exec(cmd_id="4", correlator="c-9", items=[Item(target="./FUMO/pkg1/DownloadAndUpdate")]),
    ]))
    assert status_for(pkg3, "4")[0].code == 202
    (alert,) = [c for c in pkg3.body if isinstance(c, Alert)]
    assert alert.data == 1226 and alert.correlator == "c-9"
    assert alert.items[0].data == "410" and alert.items[0].meta.mark == "critical"
    assert pkg3.final


def test_rejected_package_one_resends_alerts():
    device = make_device()
    device.pending_alerts.append({"type": "t", "source": "./X", "target": None, "format": "chr",
                                  "mark": None, "data": "1", "correlator": "k"})
    pkg1 = decode(device.open_session())
    assert [c.tag for c in pkg1.body] == ["Alert", "Replace", "Alert"] and pkg1.body[2].data == 1226
    retry = decode(device.on_response(server_msg(device, 1, [hdr_status(pkg1, 401, md5_chal(b"n"))]),
                                      wbxml.DM_XML, {}))
    assert [c.correlator for c in retry.body if isinstance(c, Alert) and c.data == 1226] == ["k"]


# --------------------------------------------------------------------------- WBXML


def test_wbxml_round_trip():
    device = make_device(encoding="wbxml")
    request = device.open_session()
    assert request.content_type == wbxml.DM_WBXML and request.body[:4] == b"\x02\xa4\x01\x6a"
    pkg1 = decode(request)
    assert pkg1.body[0].data == 1201 and pkg1.header.source == DEV
    body = [hdr_status(pkg1, 212)] + acks(pkg1) + [
        Get(cmd_id="4", items=[Item(target="./DevInfo/Mod")]),
        Replace(cmd_id="5", items=[Item(target="./FUMO/pkg1/Download/PkgURL", data="http://x/y?a=1&b=2")])]
    raw = wbxml.xml_to_wbxml(server_msg(device, 1, body))
    request = device.on_response(raw, wbxml.DM_WBXML, {})
    assert request.content_type == wbxml.DM_WBXML
    pkg3 = decode(request)
    assert status_for(pkg3, "4")[0].code == 200 and status_for(pkg3, "5")[0].code == 200
    (results,) = [c for c in pkg3.body if isinstance(c, Results)]
    assert results.items[0].data == "Sim-1"
    assert device.tree.read_value("./FUMO/pkg1/Download/PkgURL") == "http://x/y?a=1&b=2"


# --------------------------------------------------------------------------- package 0


def test_package0_good_bad_and_duplicate():
    device = make_device()
    store_nonce(device.tree, device.account_uri, SERVER_CREDENTIALS, b"srvnonce")
    pkg0 = trigger.build("dmwsi", "srvpass", b"srvnonce", 0x1A2B, ui_mode=1)
    assert device.on_notification(pkg0) == "1A2B"
    # bad digest (wrong password), corrupted digest, unknown server, truncated
    assert device.on_notification(trigger.build("dmwsi", "wrong", b"srvnonce", 0x10)) is None
    assert device.on_notification(b"\x00" + pkg0[1:]) is None
    assert device.on_notification(trigger.build("other", "srvpass", b"srvnonce", 0x10)) is None
    assert device.on_notification(pkg0[:20]) is None
    assert device.stats.notifications_rejected == 4
    # duplicate while that session runs
    device.open_session(1200, "1A2B")
    assert device.on_notification(pkg0) is None
    assert device.deferred_session_id is None


def test_package0_resync_nonces():
    for resync in trigger.RESYNC_NONCES:
        device = make_device()
        store_nonce(device.tree, device.account_uri, SERVER_CREDENTIALS, b"stale")
        pkg0 = trigger.build("dmwsi", "srvpass", resync, 0x00FF)
        assert device.on_notification(pkg0) == "FF"
        assert device.stats.nonce_resyncs == 1
        # the session authenticates the server with the resync nonce
        assert read_app_auth(device.tree, device.account_uri, SERVER_CREDENTIALS).nonce == resync


def test_package0_versions():
    device = make_device()
    assert device.on_notification(trigger.build("dmwsi", "srvpass", b"", 5, version=12)) == "5"
    assert device.on_notification(trigger.build("dmwsi", "srvpass", b"", 6, version=20)) is None


# --------------------------------------------------------------------------- the fleet (loopback HTTP)


class FakeDMEndpoint:
    """A minimal DM server: 212 + one Get in package 2, then a Final-only reply."""

    def __init__(self):
        self.results = []          # (device id, source, data)
        self.alerts = []           # (device id, alert code)

    def resource(self):
        from twisted.web import resource

        endpoint = self

        class DM(resource.Resource):
            isLeaf = True

            def render_POST(self, request):
                body = request.content.read()
                ctype = request.getHeader("content-type")
                msg = parse(wbxml.wbxml_to_xml(body) if wbxml.is_wbxml(ctype) else body)
                reply = endpoint.answer(msg)
                out = serialize(reply)
                if wbxml.is_wbxml(ctype):
                    out = wbxml.xml_to_wbxml(out)
                request.setHeader(b"content-type", ctype.encode())
                return out
        return DM()

    def answer(self, msg):
        h = msg.header
        body = [Status(cmd_id="1", msg_ref=h.msg_id, cmd_ref="0", cmd="SyncHdr", target_refs=[h.target],
                       source_refs=[h.source], code=212 if h.msg_id == "1" else 200)]
        package_one = False
        for cmd in msg.body:
            if isinstance(cmd, Alert):
                self.alerts.append((h.source, cmd.data))
                package_one = package_one or cmd.data in (1200, 1201)
            if isinstance(cmd, Results):
                self.results += [(h.source, it.source, it.data) for it in cmd.items]
            if cmd.tag not in ("Status", "Results"):
                body.append(Status(cmd_id=str(len(body) + 1), msg_ref=h.msg_id, cmd_ref=cmd.cmd_id, cmd=cmd.tag,
                                   code=200))
        if package_one:
            body.append(Get(cmd_id=str(len(body) + 1), items=[Item(target="./DevInfo/Mod")]))
        hdr = SyncHdr(session_id=h.session_id, msg_id=str(int(h.msg_id)), target=h.source, source=h.target)
        return Message(header=hdr, body=body, final=True)


@pytest.fixture
def fleet_env(running_reactor):
    from twisted.internet.threads import blockingCallFromThread
    from twisted.web import server as web_server

    from dmwsi.sim.fleet import Fleet, sim_config_from_dict

    endpoint = FakeDMEndpoint()
    site = web_server.Site(endpoint.resource())
    port = blockingCallFromThread(running_reactor, running_reactor.listenTCP, 0, site, interface="127.0.0.1")
    dm_url = f"http://127.0.0.1:{port.getHost().port}/dm"
    config = sim_config_from_dict({
        "fleet": {"server_id": "dmwsi", "secret": "t", "request_timeout": 5},
        "class": [{"name": "a", "share": 2, "id_format": "IMEI:11{index:013d}", "auth_scheme": "md5"},
                  {"name": "b", "share": 1, "id_format": "IMEI:22{index:013d}", "auth_scheme": "basic",
                   "encoding": "wbxml", "mod": "B-1"}]})
    fleet = Fleet(config, 3, dm_url, reactor=running_reactor)
    blockingCallFromThread(running_reactor, fleet.listen, 0, "127.0.0.1")
    yield fleet, endpoint, running_reactor
    blockingCallFromThread(running_reactor, fleet.close)
    blockingCallFromThread(running_reactor, port.stopListening)


def _wait(predicate, timeout=10.0):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_fleet_client_sessions_over_http(fleet_env):
    from twisted.internet.threads import blockingCallFromThread
    fleet, endpoint, reactor = fleet_env
    assert sorted(fleet.devices) == ["IMEI:110000000000001", "IMEI:110000000000002", "IMEI:220000000000003"]
    outcome = blockingCallFromThread(reactor, fleet.start_client_sessions)
    assert outcome == {OUTCOME_OK: 3}
    got = sorted((dev, data) for dev, src, data in endpoint.results if src == "./DevInfo/Mod")
    assert got == [("IMEI:110000000000001", "Sim-1"), ("IMEI:110000000000002", "Sim-1"),
                   ("IMEI:220000000000003", "B-1")]
    summary = fleet.summary()
    assert summary["ok"] == 3 and summary["commands"] == 3 and summary["messages"] == 6
    assert "ok 3" in fleet.summary_line()


def test_fleet_notification_listener_starts_1200_session(fleet_env):
    import urllib.error
    import urllib.request
    fleet, endpoint, reactor = fleet_env
    device_id = "IMEI:220000000000003"
    device = fleet.devices[device_id]
    _, server_pw = fleet.passwords[device_id]

    def post(body, ctype=wbxml.NOTIFICATION, target=device_id):
        req = urllib.request.Request(fleet.notification_url(target), data=body, method="POST",
                                     headers={"Content-Type": ctype})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status
        except urllib.error.HTTPError as e:
            return e.code

    assert post(trigger.build("dmwsi", server_pw, b"", 0x77)) == 202
    assert _wait(lambda: device.stats.sessions_ok == 1)
    assert (device_id, 1200) in endpoint.alerts
    assert post(trigger.build("dmwsi", "wrong", b"", 0x78)) == 403
    assert post(trigger.build("dmwsi", server_pw, b"", 0x79), target="IMEI:999") == 404
    assert post(b"x" * 30, ctype="text/plain") == 415
    assert fleet.counters.notifications_received == 2


def test_sim_config_file_and_allocation():
    from pathlib import Path

    from dmwsi.sim.fleet import DeviceClass, allocate, derive_dm_url, load_sim_config
    config = load_sim_config(Path(__file__).parents[2] / "conf" / "sim.toml")
    assert [c.name for c in config.classes] == ["acme-phone", "globex-modem", "initech-legacy"]
    modem = config.classes[1]
    behaviour = modem.behaviour()
    assert (behaviour.encoding, behaviour.auth_scheme, behaviour.max_msg_size) == ("wbxml", "hmac", 4096)
    assert config.classes[2].behaviour().fumo_script.update_result == 410
    assert allocate(config.classes, 10) == [6, 3, 1]
    assert sum(allocate(config.classes, 7)) == 7
    assert allocate((DeviceClass(name="x"),), 5) == [5]
    assert derive_dm_url("https://h.example:8443/soap?wsdl") == "https://h.example:8443/dm"


def test_registration_request_fields(running_reactor):
    from dmwsi.sim.fleet import Fleet, SimConfig
    fleet = Fleet(SimConfig(), 2, "http://127.0.0.1:1/dm", reactor=running_reactor,
                  notify_base_url="http://127.0.0.1:9090")
    device_id = next(iter(fleet.devices))
    request = fleet.registration_request(device_id)
    client_pw, server_pw = fleet.passwords[device_id]
    assert request["device"]["deviceId"] == device_id and request["device"]["man"] == "ACME"
    assert request["clientPassword"] == client_pw and request["serverPassword"] == server_pw
    assert request["authScheme"] == "md5"
    assert request["notificationUrl"] == "http://127.0.0.1:9090/notify/" + device_id.replace(":", "%3A")
    creds = read_app_auth(fleet.devices[device_id].tree, fleet.devices[device_id].account_uri, CLIENT_CREDENTIALS)
    assert creds.secret == client_pw


def test_final_message_without_commands_ends_even_without_server_credentials():
    device = make_device(require_server_auth=True)
    store_nonce(device.tree, device.account_uri, SERVER_CREDENTIALS, b"kept")
    pkg1 = decode(device.open_session())
    wrong = Cred(type=AUTH_MD5, format="b64", data=auth.md5_encode("dmwsi", "nope", b"kept"))
    end = device.on_response(server_msg(device, 1, [hdr_status(pkg1, 212)] + acks(pkg1), cred=wrong),
                             wbxml.DM_XML, {})
    assert end is None and device.last_outcome == OUTCOME_OK
    # no answer went out, so no new nonce was issued
    assert read_app_auth(device.tree, device.account_uri, SERVER_CREDENTIALS).nonce == b"kept"
