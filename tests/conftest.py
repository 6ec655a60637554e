"""Shared fixtures: one Twisted reactor for the whole test run (it cannot be
restarted), real servers on loopback ports, each on its own data directory."""
import threading

import pytest
from twisted.internet import reactor
from twisted.internet.threads import blockingCallFromThread

from dmwsi.config import load_config
from dmwsi.host import Server


@pytest.fixture(scope="session")
def running_reactor():
    if not reactor.running:
        thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                                  name="reactor", daemon=True)
        thread.start()
        started = threading.Event()
        reactor.callFromThread(started.set)
        assert started.wait(10), "reactor did not start"
    yield reactor


@pytest.fixture(scope="session")
def tls_pair(tmp_path_factory):
    """One development key/certificate for every test server (RSA keygen is slow)."""
    from dmwsi.tls import generate_dev_pair
    return generate_dev_pair(tmp_path_factory.mktemp("tls"))


def make_config(tmp_path, tls_pair, anonymous=True, **sections):
    """A test server's configuration. Anonymous access is off by default
    (conf/dmwsi.toml); most tests call without credentials, so it is turned on
    here explicitly. ``anonymous=None`` keeps the shipped default (what
    tests/security/test_sec_default.py checks); ``security={...}`` wins."""
    key, cert = tls_pair
    overrides = {"server": {"host": "127.0.0.1", "http_port": 0, "https_port": 0,
                            "data_dir": str(tmp_path / "data"), "soap_threads": 4},
                 "tls": {"key_file": str(key), "cert_file": str(cert)}}
    if anonymous is not None:
        overrides["security"] = {"allow_anonymous": anonymous}
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return load_config(overrides=overrides, environ={})


class RunningServer:
    def __init__(self, server):
        self.server = server
        self.soap_url = server.url("http")
        self.https_url = server.url("https")
        self.store = server.services.store
        self.services = server.services

    def url(self, scheme="http", path="soap"):
        return self.server.url(scheme, path)


class ServerFactory:
    def __init__(self, reactor, base_dir, tls_pair):
        self.reactor, self.base_dir, self.tls_pair = reactor, base_dir, tls_pair
        self.servers = []

    def __call__(self, anonymous=True, **sections):
        """Start a server with these config sections -> RunningServer (``anonymous``: see make_config)."""
        config = make_config(self.base_dir / f"s{len(self.servers)}", self.tls_pair, anonymous, **sections)
        srv = Server(config, reactor=self.reactor)
        blockingCallFromThread(self.reactor, srv.start)
        self.servers.append(srv)
        return RunningServer(srv)

    def stop_all(self):
        for srv in self.servers:
            blockingCallFromThread(self.reactor, srv.stop)


@pytest.fixture
def start_server(running_reactor, tmp_path, tls_pair):
    """Factory for servers of one test (own data directory; stopped at teardown)."""
    factory = ServerFactory(running_reactor, tmp_path, tls_pair)
    yield factory
    factory.stop_all()


@pytest.fixture(scope="session")
def shared_server(running_reactor, tmp_path_factory, tls_pair):
    """One server for tests that only read or that write rows no other test looks at."""
    factory = ServerFactory(running_reactor, tmp_path_factory.mktemp("shared"), tls_pair)
    yield factory()
    factory.stop_all()


@pytest.fixture
def dmwsi_server(start_server):
    """A server of this test alone."""
    return start_server()


@pytest.fixture
def store(tmp_path):
    """A real SQLite store in a fresh file."""
    from dmwsi.store import SQLiteStore
    s = SQLiteStore(tmp_path / "store.db")
    yield s
    s.close()


def fault_code(fault):
    """The stable dmwsi code in a zeep Fault's FaultDetail."""
    return fault.detail.find("{*}FaultDetail/{*}code").text


@pytest.fixture
def client(dmwsi_server):
    """A zeep client of this test's own server."""
    from dmwsi.client import soap_client
    return soap_client(dmwsi_server.soap_url)


@pytest.fixture(scope="session")
def soap(shared_server):
    """A zeep client built from the shared server's served WSDL."""
    from dmwsi.client import soap_client
    return soap_client(shared_server.soap_url)
