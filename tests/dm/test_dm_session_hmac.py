"""HMAC sessions (OMA DM 1.2 §9.4): every message carries its own MAC, so
every message is authenticated on its own. A message whose MAC does not
verify is answered 401 and none of its commands is executed, even inside a
session whose earlier messages verified."""
from dmwsi.dm import auth, codes
from dmwsi.dm.message import Alert, Item

from tests.dm.engine import FakeBackend, ScriptedDevice, header_status, new_session


def mac(device, sent, secret=None):
    acct = device.account
    return auth.hmac_header(acct.client_username, secret or acct.client_password, device.nonce, sent.body)


def generic_alert(device, data):
    return device.message([Alert(data=int(codes.AlertCode.GENERIC_ALERT), correlator="job-1:1",
                                 items=[Item(source="./FUMO/Pkg1", data=data)])])


def test_a_bad_mac_inside_an_authenticated_hmac_session_executes_nothing():
    backend = FakeBackend()
    device = ScriptedDevice(backend.add_account(scheme="hmac", nonce=b"nonce-0"))
    session = new_session(backend, policy=None)
    first = device.package1(authenticate=False)
    reply = device.send(session, first, hmac_header=mac(device, first))
    assert header_status(reply).code == codes.StatusCode.OK and session.authenticated

    forged = generic_alert(device, "forged")
    reply = device.send(session, forged, hmac_header=mac(device, forged, secret="not-the-secret"))
    assert header_status(reply).code == codes.StatusCode.INVALID_CREDENTIALS
    assert backend.alerts == []                        # the forged message's alert was not executed

    genuine = generic_alert(device, "genuine")         # the device answers the challenge's nonce
    reply = device.send(session, genuine, hmac_header=mac(device, genuine))
    assert header_status(reply).code == codes.StatusCode.OK
    assert [alert.data for _, alert in backend.alerts] == ["genuine"]
