"""Issue 8.3: non-canonical node URIs must not slip past the node rules.

A principal allowed only ``./Browser/Favorites/**`` sends ``..``,
``%2e%2e``, ``//`` and trailing-slash URIs through every operation that
takes a caller's URI. Each request is raw bytes over http.client (a client
library could normalise the attack away); each must answer the Client
fault ``InvalidArgument`` naming the URI, and leave no job and no target
in the store, while the server keeps serving the same caller's good URIs.
"""
import http.client
from urllib.parse import urlsplit

import pytest
from lxml import etree
from zeep.wsse.username import UsernameToken

from dmwsi.records import Device
from tests.security.conftest import NS, SOAP, write_policy

DEVICE = "IMEI:uri-attack"
POLICY = f'''
[principals.partner]
roles = ["favorites"]
username = "partner"
password = "partner-pw"

[roles.favorites]
operations = ["ExecuteCommands", "SetDeviceData", "GetDeviceData", "SubmitBulkOperation"]
devices = "all"
nodes = [{{ path = "./Browser/Favorites/**", actions = ["Get", "Replace", "Add"] }}]
'''

ATTACKS = {
    "dot-dot": "./Browser/Favorites/../../DMAcc/dmwsi/AppAddr",
    "encoded dot-dot": "./Browser/Favorites/%2e%2e/%2E%2E/DMAcc/dmwsi/AppAddr",
    "empty segment": "./Browser/Favorites//Home",
    "trailing slash": "./Browser/Favorites/Home/",
}


def bodies(uri):
    """The four operations, each carrying ``uri`` where the caller's URI goes."""
    device = f"<d:device><d:deviceId>{DEVICE}</d:deviceId></d:device>"
    command = f"<d:commands><d:action>Replace</d:action><d:uri>{uri}</d:uri><d:value>x</d:value></d:commands>"
    return {
        "ExecuteCommands": f"<d:ExecuteCommands xmlns:d='{NS}'>{device}{command}</d:ExecuteCommands>",
        "SetDeviceData": f"<d:SetDeviceData xmlns:d='{NS}'>{device}"
                         f"<d:items><d:uri>{uri}</d:uri><d:value>x</d:value></d:items></d:SetDeviceData>",
        "GetDeviceData": f"<d:GetDeviceData xmlns:d='{NS}'>{device}<d:uris>{uri}</d:uris></d:GetDeviceData>",
        "SubmitBulkOperation": f"<d:SubmitBulkOperation xmlns:d='{NS}'><d:deviceIds>{DEVICE}</d:deviceIds>"
                               f"{command}</d:SubmitBulkOperation>",
    }


@pytest.fixture(scope="module")
def server(running_reactor, tmp_path_factory, tls_pair):
    from tests.conftest import ServerFactory
    directory = tmp_path_factory.mktemp("uri-attack")
    policy = write_policy(directory, POLICY)
    factory = ServerFactory(running_reactor, directory, tls_pair)
    srv = factory(security={"policy_file": str(policy), "allow_anonymous": False,
                            "require_client_cert_for_roles": []})
    srv.store.upsert_device(Device(device_id=DEVICE, man="Acme", client_password="c", server_password="s",
                                   notification_url="http://127.0.0.1:9/none"))
    yield srv
    factory.stop_all()


def send(server, body_xml):
    """POST ``body_xml`` as raw bytes, authenticated as the partner -> (status, parsed reply)."""
    env = etree.fromstring(f"<soap:Envelope xmlns:soap='{SOAP}'><soap:Header/>"
                           f"<soap:Body>{body_xml}</soap:Body></soap:Envelope>")
    UsernameToken("partner", "partner-pw", use_digest=True).apply(env, {})
    url = urlsplit(server.soap_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=20)
    try:
        conn.request("POST", url.path, body=etree.tostring(env),
                     headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'})
        reply = conn.getresponse()
        return reply.status, etree.fromstring(reply.read())
    finally:
        conn.close()


def jobs(server):
    return server.store.list_jobs(limit=1000)[0]


def queued_for(server, device_id):
    """How many jobs have due work for the device (read-only)."""
    return sum(w.device_id == device_id for w in server.store.wakeable_targets())


@pytest.mark.parametrize("attack", sorted(ATTACKS))
@pytest.mark.parametrize("operation", ["ExecuteCommands", "SetDeviceData", "GetDeviceData", "SubmitBulkOperation"])
def test_non_canonical_uri_is_refused_before_anything_is_written(server, operation, attack):
    uri = ATTACKS[attack]
    before, queued = len(jobs(server)), queued_for(server, DEVICE)
    status, reply = send(server, bodies(uri)[operation])
    fault = reply.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert status == 500 and fault is not None, etree.tostring(reply)
    assert fault.findtext("faultcode").endswith("Client")
    detail = fault.find(f"detail/{{{NS}}}FaultDetail")
    assert detail.findtext(f"{{{NS}}}code") == "InvalidArgument"
    assert uri in detail.findtext(f"{{{NS}}}message")
    assert detail.findtext(f"{{{NS}}}element") == "uri"
    assert len(jobs(server)) == before                          # no job written
    assert queued_for(server, DEVICE) == queued                  # nothing queued for the device


@pytest.mark.parametrize("operation", ["ExecuteCommands", "SetDeviceData", "GetDeviceData", "SubmitBulkOperation"])
def test_the_same_caller_with_a_canonical_uri_is_served(server, operation):
    before = len(jobs(server))
    status, reply = send(server, bodies("./Browser/Favorites/Home")[operation])
    assert status == 200, etree.tostring(reply)
    assert reply.find(f".//{{{NS}}}jobId").text
    assert len(jobs(server)) == before + 1
