"""Deliver the outbox (OES4): send due pushes to the consumers' callbacks.

Runs from the reactor: a poll every ``[push] poll_interval`` seconds, on
:meth:`PushSender.kick`, when a send finishes and when a backoff ends, reads
``store.due_pushes()`` on the store thread (dmwsi.store.thread: the
reactor never waits on the database; the server's one, or the sender's own
when it runs alone) and hands each push to a dedicated thread pool
(``[push] max_in_flight`` threads), so a slow consumer never blocks the
reactor. One poll at a time (a poll asked for while one is reading runs
again after it), and a push that settled while a poll was reading is not
started from that read: it may predate the settlement. A push is sent with a zeep client built from our callback WSDL,
its address overridden by the push's callback URL; one client per pool
thread. Then, in the same pool thread:

* any non-fault answer acknowledges the push: ``mark_delivered``;
* a SOAP fault, an HTTP error, a connection error or a timeout
  (``[push] timeout`` for the connection and each read) is a failed
  attempt: ``mark_failed`` with the next attempt after an exponential
  backoff with jitter (``initial_backoff`` doubling up to ``max_backoff``);
  the ``max_attempts``-th failure abandons the push (next_attempt_at None)
  and logs an error. A push the callback contract cannot carry (bad stored
  payload) is abandoned at once.

A delivery is never in flight twice (in-flight ids are kept on the reactor
thread). A failed push is rescheduled behind the others, so it does not
hold them up. The pushes that close a job's stream (ResultsAvailable,
JobCompleted) wait until every earlier push of the stream is delivered or
abandoned, so they reach the consumer last; a held-back push is due again
as soon as a push of its stream settles (and at the next poll at the latest).

Signing seam: ``plugins`` are zeep plugins applied to every push (their
``egress`` sees the envelope before it is sent). Set them before the first
send (clients are built lazily, one per pool thread, from this list).
"""
import logging
import random
import threading
from datetime import datetime, timedelta, timezone

import zeep
from twisted.internet import defer, task
from twisted.internet.threads import deferToThreadPool
from twisted.python import threadable
from twisted.python.threadpool import ThreadPool
from zeep.transports import Transport

from dmwsi.config import ConfigError
from dmwsi.contract.payload import PayloadError, callback_contract, decode
from dmwsi.store.thread import StoreThread
from dmwsi.store.base import NotFound
from dmwsi.contract import CALLBACK_WSDL

log = logging.getLogger(__name__)

#: Pushes sent only after every earlier push of their stream has settled.
CLOSING_OPERATIONS = ("ResultsAvailable", "JobCompleted")
MAX_ERROR_TEXT = 500

SETTINGS = {
    # key: (type, minimum, strictly greater than the minimum)
    "poll_interval": (float, 0.0, True),
    "max_in_flight": (int, 1, False),
    "timeout": (float, 0.0, True),
    "initial_backoff": (float, 0.0, True),
    "max_backoff": (float, 0.0, True),
    "max_attempts": (int, 1, False),
    "jitter": (float, 0.0, False),
}


def check_settings(settings):
    """The ``[push]`` section, checked -> a dict of typed values. ConfigError."""
    out = {}
    for key, (kind, minimum, strict) in SETTINGS.items():
        if key not in settings:
            raise ConfigError(f"push.{key}: missing")
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or (kind is int and not isinstance(value, int)):
            raise ConfigError(f"push.{key}: expected {kind.__name__}, got {value!r}")
        if value < minimum or (strict and value == minimum):
            raise ConfigError(f"push.{key}: must be {'>' if strict else '>='} {minimum}, got {value!r}")
        out[key] = kind(value)
    if out["jitter"] >= 1:
        raise ConfigError(f"push.jitter: must be below 1, got {out['jitter']!r}")
    if out["max_backoff"] < out["initial_backoff"]:
        raise ConfigError("push.max_backoff: must be >= push.initial_backoff")
    return out


def backoff_delay(attempts, initial, maximum, jitter, rand=random.random):
    """Seconds before the next attempt after ``attempts`` failed ones:
    ``initial * 2**(attempts-1)`` capped at ``maximum``, then reduced by up
    to ``jitter`` of itself at random (so consumers coming back are not hit
    by every retry at once)."""
    base = min(maximum, initial * 2 ** min(attempts - 1, 64))
    return base * (1 - jitter * rand())


def describe_error(error):
    """A short text for ``last_error``."""
    if isinstance(error, zeep.exceptions.Fault):
        text = f"SOAP fault {error.code}: {error.message}"
    elif isinstance(error, zeep.exceptions.TransportError):
        text = f"HTTP {error.status_code}: {(error.content or b'')[:200]!r}"
    else:
        text = f"{type(error).__name__}: {error}"
    return text[:MAX_ERROR_TEXT]


def _utcnow():
    return datetime.now(timezone.utc)


class PushSender:
    """Sends the outbox. ``start``/``stop``/``poll`` run on the reactor
    thread; ``kick`` may be called from any thread."""

    def __init__(self, store, settings, reactor=None, *, plugins=None, wsdl=CALLBACK_WSDL, rand=random.random,
                 store_thread=None):
        if reactor is None:
            from twisted.internet import reactor
        self.store = store
        #: where the outbox is read; a sender without the server's gets its own
        self._own_store_thread = store_thread is None
        self.store_thread = StoreThread(reactor, "push-store") if store_thread is None else store_thread
        self.settings = check_settings(settings)
        self.reactor = reactor
        #: zeep plugins applied to every push: the seam for signing pushes.
        self.plugins = list(plugins or [])
        self.wsdl = str(wsdl)
        self.rand = rand
        contract = callback_contract()
        self.binding = f"{{{contract.target_namespace}}}{contract.name}"
        self.in_flight = {}         # delivery id -> Deferred (reactor thread only)
        self.running = False
        # Every thread started with the pool: a thread started on demand is
        # started from the reactor thread, which then waits for it to run,
        # i.e. for the interpreter lock (120-220 ms stalls measured under load,
        # tests/e2e/test_e2e_reactor_latency.py).
        in_flight = self.settings["max_in_flight"]
        self._pool = ThreadPool(minthreads=in_flight, maxthreads=in_flight, name="push")
        self._loop = task.LoopingCall(self.poll)
        self._loop.clock = reactor
        self._kicked = False
        self._polling = False       # a poll is reading the outbox (reactor thread)
        self._poll_again = False
        self._settled_during_read = set()   # ids settled since the current read began
        self._timers = set()
        self._local = threading.local()
        self._held = {}             # stream -> ids of held-back pushes (pool threads, under _held_lock)
        self._held_lock = threading.Lock()

    @classmethod
    def from_config(cls, store, config, reactor=None, **kw):
        return cls(store, config["push"], reactor, **kw)

    # --- life cycle (reactor thread) ----------------------------------------------------

    def start(self):
        if self.running:
            return
        self.running = True
        if self._own_store_thread:
            self.store_thread.start()
        self._pool.start()
        self._loop.start(self.settings["poll_interval"], now=True)

    def stop(self):
        """Stop polling; the Deferred fires once in-flight sends have settled."""
        if not self.running:
            return defer.succeed(None)
        self.running = False
        if self._loop.running:
            self._loop.stop()
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers.clear()
        pending = defer.DeferredList(list(self.in_flight.values()), consumeErrors=True)

        def stop_pool(_):
            self._pool.stop()
            if self._own_store_thread:
                self.store_thread.stop()
        return pending.addBoth(stop_pool)

    def kick(self):
        """Pushes were enqueued (committed): send them now. Any thread; coalesced."""
        if not threadable.isInIOThread():
            self.reactor.callFromThread(self.kick)
            return
        if not self._kicked and self.running:
            self._kicked = True
            self.reactor.callLater(0, self._kicked_poll)

    def _kicked_poll(self):
        self._kicked = False
        self.poll()

    # --- polling (reactor thread) -------------------------------------------------------

    def poll(self):
        """Start sends for due pushes, up to max_in_flight at once -> Deferred
        (None when a poll is already reading: it reads again when done)."""
        if not self.running:
            return None
        if self._polling:
            self._poll_again = True
            return None
        self._polling = True
        return self._poll()

    @defer.inlineCallbacks
    def _poll(self):
        try:
            again = True
            while again and self.running:
                self._poll_again = False
                self._settled_during_read = set()
                free = self.settings["max_in_flight"] - len(self.in_flight)
                if free <= 0:
                    return
                # At most len(in_flight) of the first max_in_flight due rows are in flight.
                due = yield self.store_thread.run(self.store.due_pushes, _utcnow(),
                                                  limit=len(self.in_flight) + free)
                for push in due:
                    if not self.running or len(self.in_flight) >= self.settings["max_in_flight"]:
                        break
                    if push.delivery_id not in self.in_flight and push.delivery_id not in self._settled_during_read:
                        self._start(push)
                again = self._poll_again
        except Exception:   # a store hiccup must not kill the LoopingCall
            log.exception("push poll failed")
        finally:
            self._polling = False

    def _start(self, push):
        d = deferToThreadPool(self.reactor, self._pool, self._deliver, push)
        self.in_flight[push.delivery_id] = d
        d.addCallback(self._settled)
        d.addErrback(lambda f: log.error("push %s: %s", push.delivery_id, f.getTraceback()))
        d.addBoth(self._done, push.delivery_id)

    def _settled(self, retry_in):
        if retry_in is not None and self.running:
            timer = self.reactor.callLater(retry_in, self._retry_due)
            self._timers.add(timer)

    def _retry_due(self):
        self._timers = {t for t in self._timers if t.active()}
        self.kick()

    def _done(self, _, delivery_id):
        self.in_flight.pop(delivery_id, None)
        if self._polling:
            self._settled_during_read.add(delivery_id)
        self.kick()     # a slot is free, and a held-back push may be ready

    # --- one delivery (pool thread) --------------------------------------------------------

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            timeout = self.settings["timeout"]
            transport = Transport(timeout=timeout, operation_timeout=timeout)
            client = zeep.Client(self.wsdl, transport=transport, plugins=self.plugins)
            self._local.client = client
        return client

    def send(self, push):
        """Send one push; returns on acknowledgement, raises otherwise."""
        values = decode(push.operation, push.payload)
        service = self._client().create_service(self.binding, push.callback_url)
        getattr(service, push.operation)(**values)

    def _held_back(self, push):
        if push.operation not in CLOSING_OPERATIONS or push.stream is None:
            return False
        # Under the lock, so a predecessor settling now either is counted
        # here or finds this push registered and releases it (_release_held).
        with self._held_lock:
            if self.store.pending_push_count(push.stream, below_sequence=push.sequence) == 0:
                return False
            # Out of the head of the due queue, so it cannot crowd out the pushes it waits for;
            # due again at the next poll at the latest, or as soon as a push of its stream settles.
            self.store.reschedule_push(push.delivery_id,
                                       _utcnow() + timedelta(seconds=self.settings["poll_interval"]))
            self._held.setdefault(push.stream, set()).add(push.delivery_id)
        return True

    def _release_held(self, push):
        """A push settled: the pushes held back in its stream are due now (re-checked when polled)."""
        if push.stream is None:
            return
        with self._held_lock:
            for delivery_id in self._held.pop(push.stream, ()):
                try:
                    self.store.reschedule_push(delivery_id, _utcnow())
                except NotFound:    # its job was deleted meanwhile
                    pass

    def _deliver(self, push):
        """Send and record the outcome; returns seconds until a retry, or None."""
        if self._held_back(push):
            return None
        try:
            self.send(push)
        except PayloadError as e:
            return self._abandon(push, f"payload cannot be sent: {e}"[:MAX_ERROR_TEXT], push.attempts + 1)
        except Exception as e:
            error = describe_error(e)
        else:
            try:
                self.store.mark_delivered(push.delivery_id)
            except NotFound:
                log.warning("push %s delivered, but it is no longer in the outbox", push.delivery_id)
            self._release_held(push)
            log.debug("push %s (%s #%s) delivered to %s", push.delivery_id, push.operation, push.sequence,
                      push.callback_url)
            return None
        attempts = push.attempts + 1
        if attempts >= self.settings["max_attempts"]:
            return self._abandon(push, error, attempts)
        delay = backoff_delay(attempts, self.settings["initial_backoff"], self.settings["max_backoff"],
                              self.settings["jitter"], self.rand)
        self._mark_failed(push, error, _utcnow() + timedelta(seconds=delay))
        log.warning("push %s (%s) to %s failed (attempt %d, retry in %.1fs): %s", push.delivery_id,
                    push.operation, push.callback_url, attempts, delay, error)
        return delay

    def _abandon(self, push, error, attempts):
        self._mark_failed(push, error, None)
        self._release_held(push)
        log.error("push %s (%s #%s of %s to %s, principal %s) abandoned after %d attempt(s): %s",
                  push.delivery_id, push.operation, push.sequence, push.job_id or push.stream,
                  push.callback_url, push.principal, attempts, error)
        return None

    def _mark_failed(self, push, error, next_attempt_at):
        try:
            self.store.mark_failed(push.delivery_id, error, next_attempt_at)
        except NotFound:
            log.warning("push %s failed, but it is no longer in the outbox", push.delivery_id)
