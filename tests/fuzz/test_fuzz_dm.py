"""Fuzzing the OMA DM endpoint of a real server (issue 10 item 6): SyncML
messages from the codec's own grammar (tests/fuzz/dm_grammar.py), mutated
trees and bytes, WBXML from libwbxml, mutated and random WBXML, posted raw
with http.client. After every message:

* no traceback text is in the answer;
* the answer is a SyncML message (HTTP 200, in the encoding the device
  used, in the SessionID it named) or a refusal (400, 413, 415); a 500
  means the session engine raised;
* a refused message -- refused over HTTP, or answered without accepting the
  device's credentials -- left the store as it was, but for the fresh nonce
  a challenge writes (transaction log aside);
* a registered simulated device still runs a whole session (package 1 with
  MD5 credentials, answered 200 with SyncML, ended OK).
"""
from urllib.parse import parse_qs, urlsplit

import pytest
from dmwsi.dm import wbxml
from dmwsi.dm.message import Alert, Item, Message, ProtocolError, Replace, SyncHdr, parse, serialize
from dmwsi.dm.server import MAX_UNAUTHENTICATED
from dmwsi.jobs.backend import correlator_for
from dmwsi.jobs.submit import JobRequest, submit
from dmwsi.records import Command, Device
from dmwsi.sim.client import OUTCOME_OK, DeviceBehaviour, SimulatedDevice, default_profile
from tests.fuzz import dm_grammar as grammar
from tests.fuzz.conftest import (EXAMPLES, SEED, StoreSnapshot, assert_no_traceback, assert_unchanged, run_property)
from tests.security.test_sec_http_attacks import send

REFUSALS = (400, 413, 415)
OPEN = ("pending", "inSession")
BYSTANDER = "FUZZ-DM-BYSTANDER"
# A challenge (401/407 in the SyncHdr status) writes a fresh nonce to the
# device's account by design (dmwsi/dm/server.py): that is all it may change.
NONCES = {"devices": ("client_nonce", "server_nonce")}


class DmTarget:
    def __init__(self, running):
        self.running = running
        self.url = running.url("http", "dm")
        self.snapshot = StoreSnapshot(running, NONCES)
        self.basic_job = None
        profile = default_profile(grammar.PROBE, server_address=self.url)
        self.probe = SimulatedDevice(profile, DeviceBehaviour(seed=SEED))
        running.store.upsert_device(Device(
            device_id=grammar.PROBE, man=profile["man"], mod=profile["mod"], fwv=profile["fwv"], auth_scheme="md5",
            client_username=profile["client_user"], client_password=profile["client_password"],
            server_password=profile["server_password"]))

    def replenish(self):
        """Work for BASIC whenever its last job's target is finished, so the
        generated sessions always have commands to send, chunk and collect."""
        store = self.running.store
        if self.basic_job is not None and store.get_target(self.basic_job, grammar.BASIC[0]).state in OPEN:
            return
        self.basic_job = submit(self.running.services, JobRequest(
            principal="fuzz", operation="ExecuteCommands", devices=[grammar.BASIC[0]], commands=[
                Command(action="Get", uri="./DevInfo/Mod", seq=1),
                Command(action="Replace", uri="./DevInfo/Ext/Fuzz", value="v" * 3000, seq=2),
                Command(action="Exec", uri="./FUMO/Update", seq=3)])).job_id
        grammar.LIVE_CORRELATORS[:] = (grammar.LIVE_CORRELATORS + [correlator_for(self.basic_job, 3)])[-8:]

    def post(self, request):
        url = self.url + (f"?s={request.token}" if request.token is not None else "")
        headers = {"Content-Type": request.content_type}
        if request.hmac is not None:
            headers["x-syncml-hmac"] = request.hmac
        return send(url, "POST", request.body, headers)

    def probe_session(self):
        """One whole session of the simulated device; asserts every answer was 200 SyncML and it ended OK."""
        request = self.probe.open_session()
        for _ in range(10):
            status, headers, body = send(request.url, "POST", request.body,
                                         {"Content-Type": request.content_type, **request.headers})
            assert_no_traceback(body, request.body)
            assert status == 200, f"seed {SEED}: the probe device's message got HTTP {status}: {body[:500]!r}"
            request = self.probe.on_response(body, headers.get("Content-Type"), headers)
            if request is None:
                break
        assert self.probe.last_outcome == OUTCOME_OK, f"seed {SEED}: probe session: {self.probe.last_end_reason}"


@pytest.fixture(scope="module")
def dm_target(fuzz_factory):
    # The challenge rate limit is off: with it, unauthenticated fuzz messages
    # after the first 20 would all get 429 and never reach the engine.
    running = fuzz_factory(dm={"challenge_rate": 0})
    for device_id, user, secret in (grammar.BASIC, grammar.MD5, (BYSTANDER, "b", "b")):
        running.store.upsert_device(Device(
            device_id=device_id, man="Acme", mod="P1", fwv="1.0", auth_scheme="md5" if device_id != grammar.BASIC[0]
            else "basic", client_username=user, client_password=secret, server_password="srv-" + secret))
    # Work waiting for the devices, so authenticated fuzz sessions have
    # commands to claim and refused messages have targets to leave alone.
    jobs = {device_id: submit(running.services, JobRequest(
                principal="fuzz", operation="GetDeviceData", devices=[device_id],
                commands=[Command(action="Get", uri="./DevInfo/Mod", seq=1)])).job_id
            for device_id in (grammar.BASIC[0], grammar.MD5[0], BYSTANDER)}
    target = DmTarget(running)
    target.bystander_job = jobs[BYSTANDER]
    yield target
    target.snapshot.close()
    for found in (grammar.LIVE_TOKENS, grammar.LIVE_SESSIONS, grammar.LIVE_CORRELATORS):
        found.clear()


def header_code(reply):
    """The status the server gave the device's SyncHdr, or None (NoResp)."""
    return next((c.code for c in reply.body if c.tag == "Status" and c.cmd_ref == "0"), None)


def request_header(request):
    """The request's SyncHdr as the server's lenient parser reads it, or None."""
    try:
        xml = wbxml.wbxml_to_xml(request.body) if wbxml.is_wbxml(request.content_type) else request.body
        return parse(xml).header
    except (ProtocolError, wbxml.WbxmlError):
        return None


def remember_session(request, reply, code):
    """Keep the RespURI of the answer, for later messages to continue its session."""
    if not reply.header.resp_uri:
        return
    token = parse_qs(urlsplit(reply.header.resp_uri).query)["s"][0]
    grammar.LIVE_TOKENS[:] = (grammar.LIVE_TOKENS + [token])[-8:]
    sent = request_header(request)
    if reply.header.target == grammar.BASIC[0] and code in (200, 212) and not reply.final:
        next_id = str(int(sent.msg_id) + 1) if sent.msg_id.isdigit() else "2"
        grammar.LIVE_SESSIONS[:] = (grammar.LIVE_SESSIONS + [(token, sent.session_id, next_id)])[-8:]


def package_one(session_id, cred, devinfo=None):
    """BASIC's package 1 (Alert 1201, a DevInfo Replace if given) as XML."""
    body = [Alert(cmd_id="1", data=1201)]
    if devinfo:
        body.append(Replace(cmd_id="2", items=[Item(source=f"./DevInfo/{leaf}", data=value)
                                               for leaf, value in devinfo.items()]))
    return serialize(Message(header=SyncHdr(session_id=session_id, msg_id="1", target="http://127.0.0.1/dm",
                                            source=grammar.BASIC[0], cred=cred), body=body, final=True))


DEVID_ONLY = grammar.Request("devinfo-devid-only", package_one("1", grammar.BASIC_CRED, {"DevId": grammar.BASIC[0]}),
                             wbxml.DM_XML)

# Bugs the fuzzer found, fixed; each one's minimal case stays as a regression test.

def test_fixed_bug_devinfo_devid_only(dm_target):
    """Was HTTP 500 and the session dropped: StoreBackend.device_seen called
    store.update_device with no fields when package 1 reported DevId alone."""
    assert check_message(dm_target, DEVID_ONLY, dm_target.snapshot.take()) == "200/SyncHdr 212"


def test_fixed_bug_strangers_naming_a_device_leave_its_session_alone(dm_target):
    """Was: a few strangers' package 1s naming a device ended its authenticated
    session and requeued its work (DMServer._open counted a session that had
    authenticated in its first message among the unauthenticated ones, so the
    MAX_UNAUTHENTICATED-th stranger expired it as the oldest)."""
    dm_target.replenish()
    status, _, body = dm_target.post(grammar.Request("device", package_one("1", grammar.BASIC_CRED), wbxml.DM_XML))
    reply = parse(body)
    assert status == 200 and header_code(reply) == 212 and any(c.tag == "Get" for c in reply.body)
    assert dm_target.running.services.dm_server.in_session(grammar.BASIC[0])
    for n in range(MAX_UNAUTHENTICATED + 1):
        stranger = grammar.Request("stranger", package_one(str(100 + n), None), wbxml.DM_XML)
        assert check_message(dm_target, stranger, dm_target.snapshot.take()) == "200/SyncHdr 407"
    assert dm_target.running.services.dm_server.in_session(grammar.BASIC[0])


def check_message(dm_target, request, before):
    """Send one message and assert the properties; -> outcome."""
    status, headers, body = dm_target.post(request)
    assert_no_traceback(body, request.body)
    where = f"seed {SEED}: {request.kind} {request.content_type!r} token={request.token!r} {request.body[:400]!r} " \
            f"-> HTTP {status} {body[:400]!r}"
    if status == 200:
        answer_type = headers.get("Content-Type")
        assert answer_type == (wbxml.DM_WBXML if wbxml.is_wbxml(request.content_type) else wbxml.DM_XML), where
        reply = parse(wbxml.wbxml_to_xml(body) if answer_type == wbxml.DM_WBXML else body)
        assert reply.header.session_id == request_header(request).session_id, where
        code = header_code(reply)
        remember_session(request, reply, code)
        refused, outcome = code not in (None, 200, 212), f"200/SyncHdr {code}"
    else:
        assert status in REFUSALS, where
        refused, outcome = True, str(status)
    if refused:
        assert_unchanged(before, dm_target.snapshot.take(), request.body, body)
    dm_target.probe_session()
    return outcome


def test_dm_endpoint_survives_generated_and_mutated_messages(dm_target):
    def one_message(request):
        dm_target.replenish()
        return request.kind.split("-as-")[0], check_message(dm_target, request, dm_target.snapshot.take())

    outcomes = run_property(grammar.REQUESTS, one_message)
    print(f"\nDM fuzz outcomes (seed {SEED}): {dict(sorted(outcomes.items()))}")
    kinds = {kind for kind, _ in outcomes}
    assert kinds == {"xml", "mutated-xml", "xml-bytes", "wbxml", "mutated-wbxml", "random-wbxml"}, kinds
    # Generated messages reached the engine both ways: authenticated, and challenged.
    assert any(o in ("200/SyncHdr 212", "200/SyncHdr 200") for _, o in outcomes), outcomes
    assert any(o in ("200/SyncHdr 401", "200/SyncHdr 407") for _, o in outcomes), outcomes
    assert sum(outcomes.values()) >= EXAMPLES
    # Nothing reached a device no message named, and the server still does
    # real work: a job for the probe device runs in its next session.
    assert dm_target.running.store.job_counts(dm_target.bystander_job)["pending"] == 1
    job = submit(dm_target.running.services, JobRequest(
        principal="fuzz", operation="GetDeviceData", devices=[grammar.PROBE],
        commands=[Command(action="Get", uri="./DevInfo/Mod", seq=1)]))
    dm_target.probe_session()
    (result,), _ = dm_target.running.store.job_results(job.job_id)
    assert {i.uri: i.value for i in result.items if i.format is not None} == {"./DevInfo/Mod": "Sim-1"}

