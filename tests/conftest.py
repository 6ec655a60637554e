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


def make_config(tmp_path, **sections):
    overrides = {"server": {"host": "127.0.0.1", "http_port": 0, "https_port": 0,
                            "data_dir": str(tmp_path / "data"), "soap_threads": 4}}
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


@pytest.fixture
def start_server(running_reactor, tmp_path):
    """Factory: start_server(**config sections) -> RunningServer (stopped at teardown)."""
    servers = []

    def start(**sections):
        config = make_config(tmp_path / f"s{len(servers)}", **sections)
        srv = Server(config, reactor=running_reactor)
        blockingCallFromThread(running_reactor, srv.start)
        servers.append(srv)
        return RunningServer(srv)

    yield start
    for srv in servers:
        blockingCallFromThread(running_reactor, srv.stop)


@pytest.fixture
def dmwsi_server(start_server):
    return start_server()


@pytest.fixture
def soap(dmwsi_server):
    """A zeep client built from the running server's served WSDL."""
    from dmwsi.client import soap_client
    return soap_client(dmwsi_server.soap_url)
