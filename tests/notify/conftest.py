"""Fixtures for push delivery: a real SQLite store, the reference consumer on
a loopback port and a PushSender on the shared reactor, with small intervals."""
import time

import pytest
from twisted.internet.threads import blockingCallFromThread

from dmwsi.jobs import outbox
from dmwsi.wsi.consumer import ReferenceConsumer
from dmwsi.push.sender import PushSender
from dmwsi.records import Job

#: Test [push] settings: fast polls and retries, no jitter (retry times are exact lower bounds).
FAST = {"poll_interval": 0.05, "max_in_flight": 4, "timeout": 2.0, "initial_backoff": 0.05,
        "max_backoff": 0.2, "max_attempts": 50, "jitter": 0.0}


def wait_until(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Poll ``predicate()`` until it returns something true (returned) or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(interval)


def delivered(store, *delivery_ids):
    return all(store.get_push(d).delivered_at is not None for d in delivery_ids)


def finish(store, job, device, state="succeeded", **fields):
    """What the job code does: a device's final state and its push in one transaction
    -> (job completed, delivery id)."""
    with store.transaction():
        completed = store.set_target_state(job.job_id, device, state)
        delivery_id = outbox.device_result_pushed(store, job, {"deviceId": device, "state": state, **fields})
    return completed, delivery_id


def make_job(store, callback_url, devices=("d1", "d2", "d3"), mode="each", principal="op"):
    return store.create_job(Job(principal, "GetTree", delivery_mode=mode, callback_url=callback_url),
                            [], list(devices))


@pytest.fixture
def consumers(running_reactor):
    """Factory of reference consumers, closed at teardown."""
    made = []

    def make():
        consumer = ReferenceConsumer(running_reactor)
        consumer.start()
        made.append(consumer)
        return consumer
    yield make
    for consumer in made:
        consumer.close()


@pytest.fixture
def consumer(consumers):
    return consumers()


@pytest.fixture
def senders(running_reactor, store):
    """Factory: a started PushSender on ``store`` with FAST settings updated by keywords."""
    made = []

    def make(plugins=None, **settings):
        sender = PushSender(store, {**FAST, **settings}, running_reactor, plugins=plugins)
        blockingCallFromThread(running_reactor, sender.start)
        made.append(sender)
        return sender
    yield make
    for sender in made:
        blockingCallFromThread(running_reactor, sender.stop)


class HangingConsumer:
    """A TCP server on loopback that accepts connections, reads what is sent
    and never answers: a consumer that hangs. Counts connections, and the
    most open at once."""

    def __init__(self, reactor):
        from twisted.internet.protocol import Factory, Protocol

        self.reactor = reactor
        self.open = set()
        self.accepted = 0
        self.most_open = 0
        outer = self

        class Silent(Protocol):
            def connectionMade(self):
                outer.open.add(self)
                outer.accepted += 1
                outer.most_open = max(outer.most_open, len(outer.open))

            def connectionLost(self, reason):
                outer.open.discard(self)

        self._port = blockingCallFromThread(reactor, reactor.listenTCP, 0, Factory.forProtocol(Silent),
                                            interface="127.0.0.1")
        self.url = f"http://127.0.0.1:{self._port.getHost().port}/callback"

    def close(self):
        """Stop listening and drop every open connection (the sender's sends then fail at once)."""
        def close():
            for protocol in list(self.open):
                protocol.transport.abortConnection()
            return self._port.stopListening()
        if self._port is not None:
            blockingCallFromThread(self.reactor, close)
            self._port = None


@pytest.fixture
def hanging(running_reactor, senders):
    """A hanging consumer, closed before the senders stop (they would wait out their timeouts)."""
    consumer = HangingConsumer(running_reactor)
    yield consumer
    consumer.close()
