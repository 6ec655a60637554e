"""Secure by default (issue 15): anonymous access is off unless turned on,
a fresh server makes a bootstrap operator credential (mode 0600, kept across
restarts) that `dmwsi call` on the same machine uses, and the CLI
authenticates like a consumer: UsernameToken (password from the environment
or a profile), mutual TLS, WS-Security signatures."""
import http.client
import json
import logging
import os
import socket
import stat
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from lxml import etree
from twisted.internet.threads import blockingCallFromThread

from dmwsi.client import ClientAuth, soap_client
from dmwsi.config import load_config
from dmwsi.host import Server
from dmwsi.security.principals import BOOTSTRAP, PolicyError
from tests.conftest import make_config
from tests.security.conftest import NS, SOAP, WSSE, register_body, write_policy

CLI = [sys.executable, "-m", "dmwsi.cli"]


def cli(*args, env):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, env=env)


@pytest.fixture
def cli_env(tmp_path):
    """The CLI's environment: nothing from whoever runs the tests (no DMWSI_*
    settings, profile, or bootstrap credential of a server of theirs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DMWSI_")}
    env.update(COLUMNS="200", XDG_CONFIG_HOME=str(tmp_path / "xdg"), DMWSI_SERVER_DATA_DIR=str(tmp_path / "none"))
    return env


def raw_post(url, body_xml):
    """(HTTP status, parsed answer) of a bare SOAP POST: no client library, no credentials."""
    parts = urlsplit(url)
    document = (f"<soap:Envelope xmlns:soap='{SOAP}'><soap:Body>{body_xml}</soap:Body></soap:Envelope>").encode()
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20)
    try:
        connection.request("POST", parts.path, document, {"Content-Type": "text/xml; charset=utf-8",
                                                          "SOAPAction": '""'})
        answer = connection.getresponse()
        return answer.status, etree.fromstring(answer.read())
    finally:
        connection.close()


def log_principals(server, operation):
    rows, _ = server.store.query_log(operation=operation, limit=1000)
    return [(r.principal, r.success) for r in rows]


def test_the_shipped_default_refuses_anonymous_and_serve_dev_allows_it():
    from dmwsi.cli import _config_from, build_parser
    assert load_config(environ={})["security"]["allow_anonymous"] is False
    assert _config_from(build_parser().parse_args(["serve"]))["security"]["allow_anonymous"] is False
    assert _config_from(build_parser().parse_args(["serve", "--dev"]))["security"]["allow_anonymous"] is True


@pytest.mark.parametrize("operation", ["RegisterDevice", "GetServiceInfo"])
def test_a_request_without_credentials_is_refused_by_default(start_server, operation):
    """The attack: anyone reaching the port POSTs an operation without a token."""
    server = start_server(anonymous=None)          # the shipped [security]
    body = register_body("IMEI:anonymous-attack") if operation == "RegisterDevice" else \
        f"<d:GetServiceInfo xmlns:d='{NS}'/>"
    status, answer = raw_post(server.soap_url, body)
    assert status == 500
    fault = answer.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    code = fault.findtext("faultcode")
    assert code.endswith(":FailedAuthentication") and fault.find("faultcode").nsmap[code.split(":")[0]] == WSSE
    assert fault.findtext(f"detail/{{{NS}}}FaultDetail/{{{NS}}}code") == "NotAuthenticated"
    assert server.store.get_device("IMEI:anonymous-attack") is None
    assert log_principals(server, operation) == [(None, False)]


def start(reactor, config):
    srv = Server(config, reactor=reactor)
    blockingCallFromThread(reactor, srv.start)
    return srv


def test_the_bootstrap_credential_is_private_kept_and_works(running_reactor, tmp_path, tls_pair, caplog):
    caplog.set_level(logging.DEBUG)
    config = make_config(tmp_path, tls_pair, anonymous=None)
    srv = start(running_reactor, config)
    path = config.data_dir / "bootstrap-credential.toml"
    try:
        assert srv.bootstrap.path == path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        created = path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns
        assert f'username = "{BOOTSTRAP}"'.encode() in created[0]
        password = srv.bootstrap.password
        assert len(password) >= 24 and password.encode() in created[0]
        assert str(path) in caplog.text and password not in caplog.text     # where, never what
    finally:
        blockingCallFromThread(running_reactor, srv.stop)
    srv = start(running_reactor, config)             # restart: the same file, untouched
    try:
        assert (path.read_bytes(), path.stat().st_ino, path.stat().st_mtime_ns) == created
        answer = soap_client(srv.url("http"), auth=ClientAuth(BOOTSTRAP, password)).service.GetServiceInfo()
        assert "1.0" in answer["interfaceVersions"]
        rows, _ = srv.services.store.query_log(operation="GetServiceInfo", limit=10)
        assert [(r.principal, r.success) for r in rows] == [(BOOTSTRAP, True)]
        wrong = ClientAuth(BOOTSTRAP, password + "x")
        with pytest.raises(Exception, match="FailedAuthentication|could not be authenticated|credentials"):
            soap_client(srv.url("http"), auth=wrong).service.GetServiceInfo()
    finally:
        blockingCallFromThread(running_reactor, srv.stop)


def test_a_bootstrap_credential_others_can_read_stops_the_start(running_reactor, tmp_path, tls_pair):
    config = make_config(tmp_path, tls_pair, anonymous=None)
    path = config.data_dir / "bootstrap-credential.toml"
    path.parent.mkdir(parents=True)
    path.write_text('username = "bootstrap-operator"\npassword = "leaked"\n')
    path.chmod(0o644)
    with pytest.raises(PolicyError, match="chmod 600"):
        blockingCallFromThread(running_reactor, Server(config, reactor=running_reactor).start)
    assert not (config.data_dir / "dmwsi.sqlite").exists()      # refused before anything opened


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dmwsi_call_on_the_same_machine_uses_the_bootstrap_credential(running_reactor, tmp_path, cli_env):
    """What README.rst promises: `dmwsi serve`, then `dmwsi call GetServiceInfo`,
    with no URL and no credentials: both find the server through the same
    configuration (here a file, for free ports); HTTPS trusts the development
    certificate the server generated."""
    http_port, https_port = free_port(), free_port()
    settings = tmp_path / "dmwsi.toml"
    settings.write_text(f'[server]\nhost = "127.0.0.1"\nhttp_port = {http_port}\nhttps_port = {https_port}\n'
                        f'data_dir = "data"\nsoap_threads = 4\n')
    config = load_config(settings, environ={})
    srv = start(running_reactor, config)
    stranger_env, cli_env = cli_env, {k: v for k, v in cli_env.items() if k != "DMWSI_SERVER_DATA_DIR"}
    try:
        plain = cli("--config", str(settings), "call", "GetServiceInfo", "--json", env=cli_env)
        assert plain.returncode == 0, plain.stderr
        assert "1.0" in json.loads(plain.stdout)["interfaceVersions"]
        tls = cli("--config", str(settings), "call", "GetServiceInfo", "--json",
                  "--url", f"https://127.0.0.1:{https_port}/soap", env=cli_env)
        assert tls.returncode == 0, tls.stderr
        assert "1.0" in json.loads(tls.stdout)["interfaceVersions"]
        rows, _ = srv.services.store.query_log(operation="GetServiceInfo", limit=10)
        assert [(r.principal, r.success) for r in rows] == [(BOOTSTRAP, True)] * 2
        # Without the configuration it has no credential: refused, and said so.
        stranger = cli("call", "GetServiceInfo", "--url", f"http://127.0.0.1:{http_port}/soap",
                       env=stranger_env)
        assert stranger.returncode == 2 and "fault NotAuthenticated" in stranger.stderr
    finally:
        blockingCallFromThread(running_reactor, srv.stop)


POLICY = '''
[principals.alice]
roles = ["registrar"]
username = "alice"
password = "alice-secret"

[principals.tls-client]
roles = ["registrar"]
certificate_subject = "{tls}"

[principals.signer]
roles = ["registrar"]
certificate_subject = "{signer}"
require_signature = true
'''


@pytest.fixture
def identities(pki):
    return {"tls": pki.issue("cli-tls.example"), "signer": pki.issue("cli-signer.example")}


@pytest.fixture
def locked_server(start_server, tmp_path, pki, identities):
    """Anonymous off (the default), client certificates from the test CA required at the handshake."""
    policy = write_policy(tmp_path, POLICY.format(tls=identities["tls"].subject,
                                                  signer=identities["signer"].subject))
    return start_server(anonymous=None, security={"policy_file": str(policy), "trusted_ca_file": str(pki.ca[2])},
                        tls={"client_ca_file": str(pki.ca[2])})


def register(server, device_id, *options, env):
    return cli("call", "RegisterDevice", f"device.deviceId={device_id}", "clientPassword=c", "serverPassword=s",
               "--json", *options, env=env)


def test_user_with_the_password_from_the_environment(locked_server, cli_env):
    url = ["--url", locked_server.soap_url]
    ok = register(locked_server, "IMEI:cli-user", *url, "--user", "alice", env={**cli_env, "DMWSI_PASSWORD": "alice-secret"})
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["deviceId"]        # an alias: registrar has no see-identity
    assert locked_server.store.get_device("IMEI:cli-user") is not None
    wrong = register(locked_server, "IMEI:cli-wrong", *url, "--user", "alice", env={**cli_env, "DMWSI_PASSWORD": "no"})
    assert wrong.returncode == 2 and "fault NotAuthenticated" in wrong.stderr
    missing = register(locked_server, "IMEI:cli-missing", *url, "--user", "alice", env=cli_env)   # no tty, no env
    assert missing.returncode == 2 and "DMWSI_PASSWORD" in missing.stderr
    assert log_principals(locked_server, "RegisterDevice") == [("alice", True), (None, False)]


def test_mutual_tls_with_cert_key_and_ca(locked_server, identities, tls_pair, cli_env):
    https = ["--url", locked_server.https_url, "--ca", str(tls_pair[1])]
    tls = identities["tls"]
    ok = register(locked_server, "IMEI:cli-mtls", *https, "--cert", str(tls.cert), "--key", str(tls.key), env=cli_env)
    assert ok.returncode == 0, ok.stderr
    assert locked_server.store.get_device("IMEI:cli-mtls") is not None
    bare = register(locked_server, "IMEI:cli-bare", *https, env=cli_env)
    assert bare.returncode == 2 and "NotAuthenticated" in bare.stderr
    half = register(locked_server, "IMEI:cli-half", *https, "--cert", str(tls.cert), env=cli_env)
    assert half.returncode == 2 and "cert and key go together" in half.stderr
    assert log_principals(locked_server, "RegisterDevice") == [("tls-client", True), (None, False)]


def test_ws_security_signature_with_sign_key_and_sign_cert(locked_server, identities, cli_env):
    signer = identities["signer"]
    url = ["--url", locked_server.soap_url]
    ok = register(locked_server, "IMEI:cli-signed", *url, "--sign-key", str(signer.key),
                  "--sign-cert", str(signer.cert), env=cli_env)
    assert ok.returncode == 0, ok.stderr
    assert locked_server.store.get_device("IMEI:cli-signed") is not None
    assert log_principals(locked_server, "RegisterDevice") == [("signer", True)]


def test_a_profile_holds_the_options(locked_server, identities, tmp_path, cli_env):
    profile = tmp_path / "xdg" / "dmwsi" / "profile.toml"      # the default place
    profile.parent.mkdir(parents=True)
    profile.write_text(f'url = "{locked_server.soap_url}"\nuser = "alice"\npassword_env = "ALICE_PW"\n')
    ok = register(locked_server, "IMEI:cli-profile", env={**cli_env, "ALICE_PW": "alice-secret"})
    assert ok.returncode == 0, ok.stderr
    signer = identities["signer"]
    other = tmp_path / "signer.toml"                          # --profile, paths relative to it
    other.write_text(f'url = "{locked_server.soap_url}"\nsign_key = "{os.path.relpath(signer.key, tmp_path)}"\n'
                     f'sign_cert = "{signer.cert}"\n')
    signed = register(locked_server, "IMEI:cli-profile2", "--profile", str(other), env=cli_env)
    assert signed.returncode == 0, signed.stderr
    with_password = tmp_path / "secret.toml"
    with_password.write_text(f'url = "{locked_server.soap_url}"\nuser = "alice"\npassword = "alice-secret"\n')
    with_password.chmod(0o644)
    refused = register(locked_server, "IMEI:cli-profile3", "--profile", str(with_password), env=cli_env)
    assert refused.returncode == 2 and "chmod 600" in refused.stderr
    with_password.chmod(0o600)
    private = register(locked_server, "IMEI:cli-profile3", "--profile", str(with_password), env=cli_env)
    assert private.returncode == 0, private.stderr
    assert log_principals(locked_server, "RegisterDevice") == [("alice", True), ("signer", True), ("alice", True)]


def test_dmwsi_sim_registers_through_the_bootstrap_credential(running_reactor, tmp_path, cli_env):
    """README's `dmwsi sim` next to a default server: its RegisterDevice calls
    authenticate as the CLI's do, and the devices really are registered."""
    http_port = free_port()
    settings = tmp_path / "dmwsi.toml"
    settings.write_text(f'[server]\nhost = "127.0.0.1"\nhttp_port = {http_port}\nhttps_port = -1\n'
                        f'data_dir = "data"\nsoap_threads = 4\n')
    config = load_config(settings, environ={})
    srv = start(running_reactor, config)
    cli_env = {k: v for k, v in cli_env.items() if k != "DMWSI_SERVER_DATA_DIR"}
    try:
        run = cli("--config", str(settings), "sim", "--devices", "3", "--once", "--listen-port", "0",
                  "--server", f"http://127.0.0.1:{http_port}/soap", env=cli_env)
        assert run.returncode == 0, run.stderr
        rows, _ = srv.services.store.query_log(operation="RegisterDevice", limit=10)
        assert [(r.principal, r.success) for r in rows] == [(BOOTSTRAP, True)] * 3
        registered = [srv.services.store.get_device(r.device_id) for r in rows]
        assert all(d is not None and d.client_password for d in registered), registered
    finally:
        blockingCallFromThread(running_reactor, srv.stop)
