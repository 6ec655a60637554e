"""OES1, OES2, ES1, MDM2-3: every request authenticated by WS-Security on the
request path; a tampered, replayed, stale or unknown message is refused with
the standard wsse fault and nothing runs."""
import base64
import copy
import datetime
import hashlib
import os

from lxml import etree

from tests.security.conftest import (
    DS, SOAP, WSSE, WSU, envelope, post, register_body, signed_request, successes, utc, write_policy, wsse_fault,
    zeep_sign)


def assert_nothing_ran(server, device_id):
    assert server.store.get_device(device_id) is None
    assert successes(server) == []
    refused, _ = server.store.query_log(success=False, limit=100)
    assert refused and all(r.error_code == "NotAuthenticated" and r.principal is None for r in refused)


# -- accepted ------------------------------------------------------------------

def test_signed_request_runs_as_the_certificate_principal(secure_server, signer):
    response = post(secure_server.soap_url, signed_request(register_body("IMEI:100"), signer))
    assert response.status_code == 200, response.text
    assert secure_server.store.get_device("IMEI:100") is not None
    [row] = successes(secure_server, "RegisterDevice")
    assert row.principal == "signer"


def test_no_credentials_refused_when_anonymous_is_off(secure_server):
    response = post(secure_server.soap_url, envelope(register_body("IMEI:101")))
    assert wsse_fault(response) == "FailedAuthentication"
    assert_nothing_ran(secure_server, "IMEI:101")


def test_anonymous_allowed_by_the_development_default(dmwsi_server):
    response = post(dmwsi_server.soap_url, envelope(register_body("IMEI:102")))
    assert response.status_code == 200
    [row] = successes(dmwsi_server, "RegisterDevice")
    assert row.principal == "anonymous"


def test_wsdl_stays_public(secure_server):
    import requests
    assert requests.get(secure_server.soap_url + "?wsdl", timeout=10).status_code == 200


# -- the negative suite --------------------------------------------------------

def test_tampered_body_is_refused(secure_server, signer):
    env = signed_request(register_body("IMEI:110"), signer)
    env.find(f".//{{http://dmwsi.org/ns/dmwsi/1.0}}deviceId").text = "IMEI:111"
    assert wsse_fault(post(secure_server.soap_url, env)) == "FailedCheck"
    assert_nothing_ran(secure_server, "IMEI:111")
    assert secure_server.store.get_device("IMEI:110") is None


def test_tampered_signature_value_is_refused(secure_server, signer):
    env = signed_request(register_body("IMEI:112"), signer)
    value = env.find(f".//{{{DS}}}SignatureValue")
    raw = bytearray(base64.b64decode(value.text))
    raw[10] ^= 0x01
    value.text = base64.b64encode(bytes(raw)).decode()
    assert wsse_fault(post(secure_server.soap_url, env)) == "FailedCheck"
    assert_nothing_ran(secure_server, "IMEI:112")


def test_wrapping_attack_is_refused(secure_server, signer):
    """The signed Body is moved into a header wrapper (still verifiable by a
    naive id lookup); a new Body carries the attacker's request."""
    env = signed_request(register_body("IMEI:113"), signer)
    body = env.find(f"{{{SOAP}}}Body")
    header = env.find(f"{{{SOAP}}}Header")
    wrapper = etree.SubElement(header, "{urn:attacker}Wrapper")
    wrapper.append(body)
    evil = etree.SubElement(env, f"{{{SOAP}}}Body")
    evil.append(etree.fromstring(register_body("IMEI:666")))
    assert wsse_fault(post(secure_server.soap_url, env)) == "FailedCheck"
    assert_nothing_ran(secure_server, "IMEI:666")


def test_wrapping_with_a_copied_id_is_refused(secure_server, signer):
    env = signed_request(register_body("IMEI:114"), signer)
    body = env.find(f"{{{SOAP}}}Body")
    wrapper = etree.SubElement(env.find(f"{{{SOAP}}}Header"), "{urn:attacker}Wrapper")
    wrapper.append(copy.deepcopy(body))
    body[0].find(".//{http://dmwsi.org/ns/dmwsi/1.0}deviceId").text = "IMEI:667"
    assert wsse_fault(post(secure_server.soap_url, env)) == "InvalidSecurity"
    assert_nothing_ran(secure_server, "IMEI:667")


def test_two_bodies_are_refused(secure_server, signer):
    env = signed_request(register_body("IMEI:115"), signer)
    extra = etree.SubElement(env, f"{{{SOAP}}}Body")
    extra.append(etree.fromstring(register_body("IMEI:668")))
    assert wsse_fault(post(secure_server.soap_url, env)) == "InvalidSecurity"
    assert_nothing_ran(secure_server, "IMEI:668")


def test_expired_timestamp_is_refused(secure_server, signer):
    an_hour_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    env = signed_request(register_body("IMEI:116"), signer, created=an_hour_ago, lifetime=300)
    assert wsse_fault(post(secure_server.soap_url, env)) == "MessageExpired"
    assert_nothing_ran(secure_server, "IMEI:116")


def test_old_message_with_far_expiry_is_refused(secure_server, signer):
    """Older than the replay window: the replay cache may have forgotten it."""
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    env = signed_request(register_body("IMEI:117"), signer, created=old, lifetime=86400)
    assert wsse_fault(post(secure_server.soap_url, env)) == "MessageExpired"
    assert_nothing_ran(secure_server, "IMEI:117")


def test_unsigned_timestamp_is_refused(secure_server, signer):
    """A signature over the Body only: the Timestamp could be refreshed at will."""
    env = envelope(register_body("IMEI:118"))
    zeep_sign(env, signer)          # no Timestamp yet: zeep signs the Body only
    from tests.security.conftest import add_timestamp
    add_timestamp(env)
    assert wsse_fault(post(secure_server.soap_url, env)) == "FailedCheck"
    assert_nothing_ran(secure_server, "IMEI:118")


def test_replayed_message_is_refused(secure_server, signer):
    data = etree.tostring(signed_request(register_body("IMEI:119"), signer))
    assert post(secure_server.soap_url, data).status_code == 200
    assert wsse_fault(post(secure_server.soap_url, data)) == "InvalidSecurity"
    assert len(successes(secure_server, "RegisterDevice")) == 1


def test_certificate_from_an_untrusted_ca_is_refused(secure_server, pki, signer):
    """Same subject as the 'signer' principal, issued by another CA."""
    impostor = pki.issue("signer.example", ca=pki.rogue_ca)
    assert impostor.subject == signer.subject
    response = post(secure_server.soap_url, signed_request(register_body("IMEI:120"), impostor))
    assert wsse_fault(response) == "FailedAuthentication"
    assert_nothing_ran(secure_server, "IMEI:120")


def test_trusted_certificate_of_no_principal_is_refused(secure_server, pki):
    stranger = pki.issue("stranger.example")
    response = post(secure_server.soap_url, signed_request(register_body("IMEI:121"), stranger))
    assert wsse_fault(response) == "FailedAuthentication"
    assert_nothing_ran(secure_server, "IMEI:121")


def test_expired_certificate_is_refused(secure_server, pki, signer):
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=60)
    old = pki.issue("signer.example", days=30, start=start)
    response = post(secure_server.soap_url, signed_request(register_body("IMEI:122"), old))
    assert wsse_fault(response) == "FailedAuthentication"
    assert_nothing_ran(secure_server, "IMEI:122")


def test_rsa_sha1_is_refused_unless_allowed(start_server, policy_file, pki, signer):
    config = {"policy_file": str(policy_file), "allow_anonymous": False, "trusted_ca_file": str(pki.ca[2])}
    strict = start_server(security=config)
    response = post(strict.soap_url, signed_request(register_body("IMEI:123"), signer, sha1=True))
    assert wsse_fault(response) == "UnsupportedAlgorithm"
    assert_nothing_ran(strict, "IMEI:123")
    lenient = start_server(security={**config, "allowed_signature_algorithms": ["rsa-sha256", "rsa-sha1"]})
    assert post(lenient.soap_url, signed_request(register_body("IMEI:123"), signer, sha1=True)).status_code == 200


def test_pinned_self_signed_certificate_is_accepted(start_server, pki, tmp_path):
    pinned = pki.issue("pinned.example", self_signed=True)
    policy = write_policy(tmp_path, f'[principals.pinned]\nroles = ["registrar"]\ncertificate_file = "{pinned.cert}"\n')
    server = start_server(security={"policy_file": str(policy), "allow_anonymous": False})
    response = post(server.soap_url, signed_request(register_body("IMEI:124"), pinned))
    assert response.status_code == 200, response.text
    assert successes(server, "RegisterDevice")[0].principal == "pinned"


# -- UsernameToken -------------------------------------------------------------

def username_token(env, username, password, nonce=None, created=None):
    from zeep.wsse.username import UsernameToken
    created = created or datetime.datetime.now(datetime.timezone.utc)
    token = UsernameToken(username, password, use_digest=True, created=created,
                          nonce=nonce or base64.b64encode(os.urandom(12)).decode())
    token.apply(env, {})
    return env


def test_username_token_digest_is_accepted(secure_server):
    env = username_token(envelope(register_body("IMEI:130")), "alice", "alice-secret")
    assert post(secure_server.soap_url, env).status_code == 200
    assert successes(secure_server, "RegisterDevice")[0].principal == "alice"


def test_wrong_username_token_digest_is_refused(secure_server):
    env = username_token(envelope(register_body("IMEI:131")), "alice", "not-her-secret")
    response = post(secure_server.soap_url, env)
    assert wsse_fault(response) == "FailedAuthentication"
    assert_nothing_ran(secure_server, "IMEI:131")
    unknown = username_token(envelope(register_body("IMEI:131")), "mallory", "x")
    again = post(secure_server.soap_url, unknown)
    assert wsse_fault(again) == "FailedAuthentication"
    assert etree.fromstring(again.content).findtext(".//faultstring") == \
        etree.fromstring(response.content).findtext(".//faultstring")   # unknown user looks like a bad password


def test_password_text_is_refused(secure_server):
    from zeep.wsse.username import UsernameToken
    env = envelope(register_body("IMEI:132"))
    UsernameToken("alice", "alice-secret").apply(env, {})
    assert wsse_fault(post(secure_server.soap_url, env)) == "UnsupportedSecurityToken"
    assert_nothing_ran(secure_server, "IMEI:132")


def test_replayed_nonce_is_refused(secure_server):
    nonce = base64.b64encode(os.urandom(12)).decode()
    first = username_token(envelope(register_body("IMEI:133")), "alice", "alice-secret", nonce=nonce)
    assert post(secure_server.soap_url, first).status_code == 200
    # A fresh digest over the same nonce (a new Created) is still a replayed nonce.
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
    second = username_token(envelope(register_body("IMEI:134")), "alice", "alice-secret", nonce=nonce, created=later)
    assert wsse_fault(post(secure_server.soap_url, second)) == "InvalidSecurity"
    assert secure_server.store.get_device("IMEI:134") is None


def test_stale_username_token_is_refused(secure_server):
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    env = username_token(envelope(register_body("IMEI:135")), "alice", "alice-secret", created=old)
    assert wsse_fault(post(secure_server.soap_url, env)) == "MessageExpired"
    assert_nothing_ran(secure_server, "IMEI:135")


def test_digest_is_base64_sha1_of_nonce_created_password(secure_server):
    """Built by hand, not by zeep: Base64(SHA-1(nonce + created + password))."""
    nonce, created = os.urandom(16), utc(datetime.datetime.now(datetime.timezone.utc))
    digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + b"alice-secret").digest()).decode()
    env = envelope(register_body("IMEI:136"))
    header = env.find(f"{{{SOAP}}}Header")
    header.append(etree.fromstring(
        f"<wsse:Security xmlns:wsse='{WSSE}' xmlns:wsu='{WSU}' xmlns:soap='{SOAP}' soap:mustUnderstand='1'>"
        f"<wsse:UsernameToken><wsse:Username>alice</wsse:Username>"
        f"<wsse:Password Type='http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
        f"#PasswordDigest'>{digest}</wsse:Password><wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce>"
        f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>"))
    assert post(secure_server.soap_url, env).status_code == 200


def test_principal_requiring_a_signature_refuses_username_token(secure_server):
    env = username_token(envelope(register_body("IMEI:137")), "strict", "strict-secret")
    assert wsse_fault(post(secure_server.soap_url, env)) == "InvalidSecurity"
    assert_nothing_ran(secure_server, "IMEI:137")


def test_security_header_is_removed_before_spyne(secure_server):
    """mustUnderstand='1' on wsse:Security: the SOAP layer never sees it."""
    env = username_token(envelope(register_body("IMEI:138")), "alice", "alice-secret")
    env.find(f".//{{{WSSE}}}Security").set(f"{{{SOAP}}}mustUnderstand", "1")
    assert post(secure_server.soap_url, env).status_code == 200
