"""Package 0 delivery (reference §10.3). A notifier takes the device record
and the package 0 bytes; ``http`` POSTs them to the device's notification URL
(what the simulator listens on, or an operator's push proxy), ``log`` only
logs them (development). An SMS gateway is one more class with ``send``."""
import logging
from io import BytesIO

from twisted.internet import defer
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from dmwsi.dm.wbxml import NOTIFICATION
from dmwsi.errors import DmwsiError

log = logging.getLogger(__name__)


class NotificationFailed(DmwsiError):
    """The device's notification URL refused package 0 or could not be reached."""


class LogNotifier:
    """Development: write package 0 to the log instead of sending it."""

    def send(self, device, package0):
        log.info("package 0 for %s: %s", device.device_id, package0.hex())
        return defer.succeed(None)


class HttpNotifier:
    """POST package 0 to the device's notification URL, a bounded number at
    a time: a burst of thousands of connections would overflow the peer's
    listen backlog and stall in TCP retransmits."""

    def __init__(self, reactor, timeout=10, concurrency=32):
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = concurrency
        self.agent = Agent(reactor, pool=self.pool, connectTimeout=timeout)
        self.slots = defer.DeferredSemaphore(concurrency)

    def send(self, device, package0):
        return self.slots.run(self._post, device, package0)

    @defer.inlineCallbacks
    def _post(self, device, package0):
        if not device.notification_url:
            raise NotificationFailed(f"{device.device_id} has no notification URL")
        response = yield self.agent.request(
            b"POST", device.notification_url.encode(),
            Headers({b"content-type": [NOTIFICATION.encode()]}),
            FileBodyProducer(BytesIO(package0)))
        yield readBody(response)
        if not 200 <= response.code < 300:
            raise NotificationFailed(f"{device.notification_url} answered HTTP {response.code}")

    def close(self):
        return self.pool.closeCachedConnections()


def make_notifier(kind, reactor, concurrency=32):
    if kind == "http":
        return HttpNotifier(reactor, concurrency=concurrency)
    if kind == "log":
        return LogNotifier()
    raise ValueError(f"unknown notifier {kind!r} (expected 'http' or 'log')")
