"""A reference consumer of pushes (OES4), for tests and demos.

It implements the callback interface the way the contract asks consumers to:
its spyne service is generated from ``wsdl/dmwsi-callback-1.0.wsdl`` by
:func:`dmwsi.wsi.application.build_service` (the same generator as the server's),
it answers an accepted push with the empty response (the acknowledgement)
and it de-duplicates on ``deliveryId``: a push delivered again (its first
acknowledgement was lost) is acknowledged but not recorded twice.

It can be told to misbehave, to exercise the sender's retries:

* :meth:`ReferenceConsumer.fail` - answer a SOAP fault (``"fault"``), an
  HTTP 503 without a SOAP body (``"http"``), or accept the push and then
  answer a fault as if the acknowledgement were lost (``"lost-ack"``), for
  the next N pushes or until :meth:`recover`;
* :attr:`ReferenceConsumer.delay` - answer only after that many seconds;
* :meth:`stop` / :meth:`start` - go down (port closed, open connections
  dropped) and come back on the same port.

``start``, ``stop`` and ``close`` may be called from the reactor thread or
from any other thread while the reactor runs.

    consumer = ReferenceConsumer(reactor)
    url = consumer.start()          # http://127.0.0.1:<port>/callback
    ... enqueue pushes with callback_url=url ...
    consumer.wait_for(lambda c: len(c.pushes) == 3)
"""
import io
import threading
import time
import weakref
from dataclasses import dataclass

from lxml import etree
from spyne import Application
from spyne.protocol.soap import Soap11
from twisted.internet import defer
from twisted.internet.threads import blockingCallFromThread
from twisted.python import threadable
from twisted.python.threadpool import ThreadPool
from twisted.web import resource, server
from twisted.web.wsgi import WSGIResource

from dmwsi.contract import CALLBACK_WSDL, load_contract
from dmwsi.wsi.models import ModelFactory
from dmwsi.errors import OperationError
from dmwsi.wsi.application import SoapApplication, build_service

FAILURE_MODES = ("fault", "http", "lost-ack")
_FAILURE_KEY = "dmwsi.consumer.failure"
_ATTEMPT_KEY = "dmwsi.consumer.attempt"


@dataclass
class Attempt:
    """One push request as the consumer saw it (every retry included)."""
    operation: str | None
    delivery_id: str | None
    job_id: str | None
    sequence: int | None
    received_at: float          # time.monotonic()
    outcome: str = "pending"    # accepted, duplicate, fault, http, lost-ack


class _ConsumerServices:
    """The little the generated service needs from its host: no authorization
    (pushes come from the server it subscribed to), nothing to log."""

    def roles_of(self, principal):
        return ()

    def authorize(self, call):
        pass

    def present(self, principal, roles, value):
        return value

    def record_call(self, call, request, response, fault):
        pass


class _Site(server.Site):
    """A Site that remembers its connections, so stop() can drop them."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.protocols = weakref.WeakSet()

    def buildProtocol(self, addr):
        protocol = super().buildProtocol(addr)
        self.protocols.add(protocol)
        return protocol


class ReferenceConsumer:
    def __init__(self, reactor=None, *, host="127.0.0.1", port=0, path="callback", threads=4):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.host = host
        self.port_number = port
        self.path = path
        #: Seconds to wait before answering each push (a slow consumer).
        self.delay = 0.0
        #: Unique pushes in the order accepted: {"operation": ..., <request fields>}.
        self.pushes = []
        #: Every request, retries included.
        self.attempts = []
        #: Pushes received again after being accepted (removed by deliveryId).
        self.duplicates = 0
        self._seen = {}
        self._rules = []            # [mode, remaining or None, operations or None]
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._port = None
        self.contract = load_contract(CALLBACK_WSDL)
        self._pool = ThreadPool(minthreads=1, maxthreads=threads, name="consumer")
        self._site = _Site(self._build_root())
        self._pool_started = False

    # --- the service -----------------------------------------------------------------------

    def _build_root(self):
        contract = self.contract
        handlers = {name: self._handler(name) for name in contract.operations}
        service = build_service(contract, handlers.get, ModelFactory(contract))
        app = Application([service], tns=contract.target_namespace, name=contract.name,
                          in_protocol=Soap11(validator="lxml"), out_protocol=Soap11())
        app.dmwsi_services = _ConsumerServices()
        wsgi = self._middleware(SoapApplication(app))
        root = resource.Resource()
        root.putChild(self.path.encode(), WSGIResource(self.reactor, self._pool, wsgi))
        return root

    def _middleware(self, app):
        """Record the attempt and decide, before spyne runs, whether it fails."""
        def wsgi(environ, start_response):
            if environ.get("REQUEST_METHOD") != "POST":
                return app(environ, start_response)
            body = environ["wsgi.input"].read()
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
            attempt = Attempt(*_peek(body), received_at=time.monotonic())
            with self._lock:
                self.attempts.append(attempt)
                mode = self._take_failure(attempt.operation)
            if mode == "http":
                attempt.outcome = "http"
                start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
                return [b"consumer told to fail\n"]
            environ[_FAILURE_KEY], environ[_ATTEMPT_KEY] = mode, attempt
            return app(environ, start_response)
        return wsgi

    def _handler(self, operation):
        def handle(call, request):
            env = call.environ
            mode, attempt = env.get(_FAILURE_KEY), env.get(_ATTEMPT_KEY)
            if self.delay:
                self._closing.wait(self.delay)
            with self._lock:
                if mode == "fault":
                    attempt.outcome = "fault"
                    raise OperationError("ServiceUnavailable", "consumer told to fail")
                delivery_id = request["deliveryId"]
                if delivery_id in self._seen:
                    self.duplicates += 1
                    attempt.outcome = "duplicate"
                else:
                    push = {"operation": operation, **request}
                    self._seen[delivery_id] = push
                    self.pushes.append(push)
                    attempt.outcome = "accepted"
                if mode == "lost-ack":     # processed, but the acknowledgement never arrives
                    attempt.outcome = "lost-ack"
                    raise OperationError("ServiceUnavailable", "acknowledgement lost")
            return {}
        return handle

    # --- behaviour ---------------------------------------------------------------------------

    def fail(self, how="fault", times=None, operations=None):
        """Fail the next ``times`` pushes (None: every push until recover())
        of ``operations`` (None: all) in manner ``how``."""
        if how not in FAILURE_MODES:
            raise ValueError(f"how must be one of {FAILURE_MODES}")
        with self._lock:
            self._rules.append([how, times, set(operations) if operations else None])

    def recover(self):
        """Stop failing."""
        with self._lock:
            self._rules.clear()

    def _take_failure(self, operation):
        for rule in self._rules:
            how, remaining, operations = rule
            if operations is not None and operation not in operations:
                continue
            if remaining is not None:
                if remaining <= 0:
                    continue
                rule[1] -= 1
            return how
        return None

    # --- observations ---------------------------------------------------------------------------

    def pushes_of(self, job_id, operation=None):
        with self._lock:
            return [p for p in self.pushes
                    if p["jobId"] == job_id and (operation is None or p["operation"] == operation)]

    def attempts_of(self, delivery_id):
        with self._lock:
            return [a for a in self.attempts if a.delivery_id == delivery_id]

    def wait_for(self, predicate, timeout=10.0, interval=0.02):
        """Poll ``predicate(self)`` until it is true (returned) or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"consumer condition not met within {timeout}s "
                                   f"({len(self.pushes)} pushes, {len(self.attempts)} attempts)")
            time.sleep(interval)

    # --- life cycle --------------------------------------------------------------------------------

    @property
    def url(self):
        return f"http://{self.host}:{self.port_number}/{self.path}"

    def start(self):
        """Listen (on the same port as before after a stop); returns the URL."""
        return self._on_reactor(self._start)

    def stop(self):
        """Go down: close the port and drop open connections."""
        return self._on_reactor(self._stop)

    def close(self):
        """Stop for good (also ends the consumer's threads)."""
        self._closing.set()
        self._on_reactor(self._stop)
        if self._pool_started:
            self._pool.stop()
            self._pool_started = False

    def _start(self):
        if not self._pool_started:
            self._pool.start()
            self._pool_started = True
        if self._port is None:
            self._port = self.reactor.listenTCP(self.port_number, self._site, interface=self.host)
            self.port_number = self._port.getHost().port
        return self.url

    def _stop(self):
        port, self._port = self._port, None
        d = defer.maybeDeferred(port.stopListening) if port is not None else defer.succeed(None)
        for protocol in list(self._site.protocols):
            transport = getattr(protocol, "transport", None)
            if transport is not None:
                transport.abortConnection()
        return d

    def _on_reactor(self, f):
        if threadable.isInIOThread():
            return f()
        return blockingCallFromThread(self.reactor, f)


def _peek(body):
    """(operation, deliveryId, jobId, sequence) of a push envelope, best effort."""
    try:
        root = etree.fromstring(body)
    except etree.XMLSyntaxError:
        return None, None, None, None
    body_el = next((el for el in root if isinstance(el.tag, str) and etree.QName(el).localname == "Body"), None)
    op = next((el for el in body_el if isinstance(el.tag, str)), None) if body_el is not None else None
    if op is None:
        return None, None, None, None
    fields = {etree.QName(el).localname: el.text for el in op if isinstance(el.tag, str)}
    sequence = fields.get("sequence")
    return (etree.QName(op).localname, fields.get("deliveryId"), fields.get("jobId"),
            int(sequence) if sequence and sequence.strip().isdigit() else None)
