"""The Twisted host: HTTPS with the generated development pair, the download
area, configuration layering, graceful stop."""
import signal
import subprocess
import sys
import time

import pytest
import requests

from dmwsi.config import ConfigError, load_config


def test_https_serves_the_wsdl_with_the_dev_certificate(dmwsi_server, tls_pair):
    _, cert = tls_pair
    response = requests.get(dmwsi_server.https_url + "?wsdl", verify=str(cert), timeout=10)
    assert response.status_code == 200
    assert b"GetServiceInfo" in response.content


def test_tls12_is_accepted(dmwsi_server, tls_pair):
    import ssl
    import socket
    port = int(dmwsi_server.https_url.split(":")[2].split("/")[0])
    context = ssl.create_default_context(cafile=str(tls_pair[1]))
    context.maximum_version = context.minimum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with context.wrap_socket(sock, server_hostname="localhost") as tls:
            assert tls.version() == "TLSv1.2"


def test_download_area_serves_files(dmwsi_server):
    download = dmwsi_server.server.config.data_dir / "download"
    (download / "fw-1.1.bin").write_bytes(b"\x00firmware")
    response = requests.get(dmwsi_server.url("http", "download") + "/fw-1.1.bin", timeout=10)
    assert response.content == b"\x00firmware"
    assert requests.get(dmwsi_server.url("http", "download") + "/nope", timeout=10).status_code == 404


def test_dm_endpoint_is_mounted(dmwsi_server):
    response = requests.get(dmwsi_server.url("http", "dm"), timeout=10)
    assert response.status_code == 405 and "POST" in response.headers["allow"]


def test_config_layers(tmp_path):
    user = tmp_path / "site.toml"
    user.write_text('[server]\nhttp_port = 9000\nhost = "0.0.0.0"\n')
    config = load_config(user, environ={"DMWSI_SERVER_HTTP_PORT": "9100"},
                         overrides={"server": {"host": "127.0.0.2"}})
    assert config["server"]["http_port"] == 9100          # env beats file
    assert config["server"]["host"] == "127.0.0.2"         # flags beat env
    assert config["server"]["https_port"] == 8443          # default kept
    assert config.data_dir == (tmp_path / "var").resolve()  # relative to the file


@pytest.mark.parametrize("environ,message", [
    ({"DMWSI_SERVER_HTTP_PORT": "eighty"}, "expected int"),
    ({"DMWSI_DM_AUTO_REGISTER": "maybe"}, "expected bool"),
])
def test_config_errors_are_clear(environ, message):
    with pytest.raises(ConfigError, match=message):
        load_config(environ=environ)


def test_unknown_setting_in_file_is_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("listen = 1\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_config(bad, environ={})


def test_serve_stops_gracefully_on_sigterm(tmp_path):
    """`dmwsi serve` as a process: answers, then exits 0 on SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dmwsi.cli", "serve", "--http-port", "0", "--https-port", "-1",
         "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            if "SOAP endpoint" in line:
                url = line.split("SOAP endpoint ")[1].split()[0]
        assert url, "server did not announce its endpoint"
        assert requests.get(url + "?wsdl", timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert (tmp_path / "data" / "dmwsi.sqlite").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
