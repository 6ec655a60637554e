"""Deliver the outbox (OES4): send due pushes to the consumers' callbacks.

Runs from the reactor: a poll every ``[push] poll_interval`` seconds, on
:meth:`PushSender.kick`, when a send finishes and when a backoff ends, reads
the due pushes on the store thread (dmwsi.store.thread: the reactor never
waits on the database; the server's one, or the sender's own when it runs
alone) and hands each push to a dedicated thread pool (``[push]
max_in_flight`` threads), so a slow consumer never blocks the reactor. One
poll at a time (a poll asked for while one is reading runs again after it),
and a push that settled while a poll was reading is not started from that
read: it may predate the settlement.

Pushes are scheduled per consumer (one callback URL), so one slow or
hanging consumer delays only itself:

* each consumer's due pushes are read from its own range of the outbox
  (``store.due_consumers`` then ``due_pushes(callback_url=...)``), the
  consumers taken in turn from the one after the last served, so a backlog
  of one never hides another's pushes;
* a consumer has at most ``consumer_in_flight`` pushes in flight;
* a consumer that did not answer (connection refused or dropped, timeout,
  HTTP error) is *failing*: it gets its own backoff (``initial_backoff``
  doubling per failed attempt up to ``max_backoff``, with jitter) and then
  one push at a time, a probe, until it answers again; probes hold at most
  half the pool (at least one thread), so failing consumers together
  never take every thread;
* a consumer still failing ``park_after`` seconds after its first failed
  attempt has its pushes *parked* at its next failed attempt: all of them,
  in flight or waiting (``store.park_pushes``), not retried any more, kept
  with their error for ``store.parked_pushes`` and re-delivered with
  :meth:`PushSender.redeliver`. A push enqueued later to it is tried at the
  consumer's next probe and parked too if that fails. How long a consumer
  has been failing is known in memory: a restart starts its clock again.

A push is sent with a zeep client built from our callback WSDL, its address
overridden by the push's callback URL; one client per pool thread. Then,
in the same pool thread:

* any non-fault answer acknowledges the push: ``mark_delivered``;
* a SOAP fault, an HTTP error, a connection error or a timeout
  (``[push] timeout`` for the connection and each read) is a failed
  attempt: ``mark_failed`` with the push's next attempt after its own
  exponential backoff; the ``max_attempts``-th failure parks the push
  alone (next_attempt_at None) and logs an error. A SOAP fault is an
  answer: it fails the push, not its consumer. A push the callback contract
  cannot carry (bad stored payload) is parked at once.

A delivery is never in flight twice (in-flight ids are kept on the reactor
thread). A failed push is rescheduled behind the others, so it does not
hold them up. The pushes that close a job's stream (ResultsAvailable,
JobCompleted) wait until every earlier push of the stream is delivered or
parked, so they reach the consumer last; a held-back push is due again
as soon as a push of its stream settles (and at the next poll at the latest).

Signing seam: ``plugins`` are zeep plugins applied to every push (their
``egress`` sees the envelope before it is sent). Set them before the first
send (clients are built lazily, one per pool thread, from this list).
"""
import bisect
import logging
import random
import threading
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

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
    "consumer_in_flight": (int, 1, False),
    "timeout": (float, 0.0, True),
    "initial_backoff": (float, 0.0, True),
    "max_backoff": (float, 0.0, True),
    "max_attempts": (int, 1, False),
    "jitter": (float, 0.0, False),
    "park_after": (float, 0.0, True),
}
#: Settings a ``[push]`` section written before they existed may lack.
DEFAULTS = {"consumer_in_flight": 2, "park_after": 86400.0}


def check_settings(settings):
    """The ``[push]`` section, checked -> a dict of typed values. ConfigError."""
    settings = {**DEFAULTS, **settings}
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
    if out["consumer_in_flight"] > out["max_in_flight"]:
        raise ConfigError("push.consumer_in_flight: must be <= push.max_in_flight")
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


class _Consumer:
    """What the sender knows of one consumer, a callback URL (reactor thread
    only). Kept while the consumer has pushes in flight or is failing."""

    __slots__ = ("url", "in_flight", "failures", "failing_since", "retry_at")

    def __init__(self, url):
        self.url = url
        self.in_flight = 0
        self.failures = 0            # failed attempts without an answer since it last answered
        self.failing_since = None    # when the first of them failed (UTC)
        self.retry_at = 0.0          # reactor time before which no push is started to it

    @property
    def failing(self):
        return self.failures > 0


class _Outcome(NamedTuple):
    """One delivery, as the pool thread reports it to the reactor."""
    retry_in: float | None      # seconds until the push's own retry is due, or None
    answered: bool | None       # the consumer answered (True), did not (False), was not tried (None)


class PushSender:
    """Sends the outbox. ``start``/``stop``/``poll`` run on the reactor
    thread; ``kick`` may be called from any thread, ``redeliver`` from any
    thread but the reactor's."""

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
        self.consumers = {}         # callback URL -> _Consumer (reactor thread only)
        self.running = False
        # Every thread started with the pool: a thread started on demand is
        # started from the reactor thread, which then waits for it to run,
        # i.e. for the interpreter lock (120-220 ms stalls measured under load,
        # tests/e2e/test_e2e_reactor_latency.py).
        in_flight = self.settings["max_in_flight"]
        self._pool = ThreadPool(minthreads=in_flight, maxthreads=in_flight, name="push")
        # Probes of failing consumers may hold half the pool, so however many
        # consumers hang, the others keep the rest.
        self._probe_cap = max(1, in_flight // 2)
        self._probes = 0            # probes in flight (reactor thread)
        self._last_url = None       # the consumer served last: the next poll starts after it
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

    def redeliver(self, *, delivery_ids=None, callback_url=None, job_id=None):
        """Schedule parked pushes again (``store.redeliver_pushes``: selected
        by ids, consumer and/or job; a new retry series, same delivery ids)
        and probe their consumers now rather than at the end of their
        backoff. A consumer still failing past ``park_after`` has them parked
        again at its next failed attempt. Returns {callback URL: count}.
        Writes the store in the calling thread, so never the reactor's."""
        if threadable.isInIOThread():
            raise RuntimeError("PushSender.redeliver writes the store: call it off the reactor thread")
        counts = self.store.redeliver_pushes(delivery_ids=delivery_ids, callback_url=callback_url, job_id=job_id)
        if counts:
            self.reactor.callFromThread(self._probe_now, list(counts))
        return counts

    def _probe_now(self, urls):
        for url in urls:
            consumer = self.consumers.get(url)
            if consumer is not None:
                consumer.retry_at = 0.0
        self.kick()

    # --- polling (reactor thread) -------------------------------------------------------

    def poll(self):
        """Start sends for due pushes, within the pool's and each consumer's
        limits -> Deferred (None when a poll is already reading: it reads
        again when done)."""
        if not self.running:
            return None
        if self._polling:
            self._poll_again = True
            return None
        self._polling = True
        return self._poll()

    def _room(self, consumer, now):
        """How many more pushes may be started to ``consumer`` at reactor time ``now``."""
        if consumer.failing:
            if now < consumer.retry_at or self._probes >= self._probe_cap:
                return 0
            return 1 - consumer.in_flight
        return self.settings["consumer_in_flight"] - consumer.in_flight

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
                now = self.reactor.seconds()
                blocked, limits = set(), {}
                for url, consumer in self.consumers.items():
                    room = self._room(consumer, now)
                    if room > 0:
                        # Its in-flight pushes are still due in the store: read past them.
                        limits[url] = consumer.in_flight + room
                    else:
                        blocked.add(url)
                due = yield self.store_thread.run(self._read_due, _utcnow(), free, frozenset(self.in_flight),
                                                  blocked, limits, self._last_url)
                now = self.reactor.seconds()
                for push in due:
                    if not self.running or len(self.in_flight) >= self.settings["max_in_flight"]:
                        break
                    if push.delivery_id in self.in_flight or push.delivery_id in self._settled_during_read:
                        continue
                    consumer = self.consumers.get(push.callback_url) or _Consumer(push.callback_url)
                    if self._room(consumer, now) > 0:
                        self._start(push, consumer)
                again = self._poll_again
        except Exception:   # a store hiccup must not kill the LoopingCall
            log.exception("push poll failed")
        finally:
            self._polling = False

    def _read_due(self, now, free, in_flight, blocked, limits, last_url):
        """(store thread) Due pushes of the consumers not ``blocked``, at most
        ``limits[url]`` each (``consumer_in_flight`` for one not in
        ``limits``), until ``free`` of them are not ``in_flight``; consumers in
        URL order from the one after ``last_url``, round and round."""
        urls = self.store.due_consumers(now)
        if last_url is not None:
            turn = bisect.bisect_right(urls, last_url)
            urls = urls[turn:] + urls[:turn]
        due = []
        for url in urls:
            if url in blocked:
                continue
            pushes = self.store.due_pushes(now, limit=limits.get(url, self.settings["consumer_in_flight"]),
                                           callback_url=url)
            due.extend(pushes)
            free -= sum(1 for push in pushes if push.delivery_id not in in_flight)
            if free <= 0:
                break
        return due

    def _start(self, push, consumer):
        probe = consumer.failing
        consumer.in_flight += 1
        self._probes += probe
        self.consumers[consumer.url] = consumer
        self._last_url = consumer.url
        d = deferToThreadPool(self.reactor, self._pool, self._deliver, push, consumer.failing_since)
        self.in_flight[push.delivery_id] = d
        d.addCallback(self._settled, consumer)
        d.addErrback(lambda f: log.error("push %s: %s", push.delivery_id, f.getTraceback()))
        d.addBoth(self._done, push.delivery_id, consumer, probe)

    def _settled(self, outcome, consumer):
        if outcome.answered:
            consumer.failures, consumer.failing_since, consumer.retry_at = 0, None, 0.0
        elif outcome.answered is False:
            consumer.failures += 1
            if consumer.failing_since is None:
                consumer.failing_since = _utcnow()
            delay = backoff_delay(consumer.failures, self.settings["initial_backoff"],
                                  self.settings["max_backoff"], self.settings["jitter"], self.rand)
            consumer.retry_at = max(consumer.retry_at, self.reactor.seconds() + delay)
            self._kick_in(delay)
        if outcome.retry_in is not None:
            self._kick_in(outcome.retry_in)

    def _kick_in(self, delay):
        if self.running:
            self._timers.add(self.reactor.callLater(delay, self._retry_due))

    def _retry_due(self):
        self._timers = {t for t in self._timers if t.active()}
        self.kick()

    def _done(self, _, delivery_id, consumer, probe):
        self.in_flight.pop(delivery_id, None)
        consumer.in_flight -= 1
        self._probes -= probe
        if consumer.in_flight == 0 and not consumer.failing and self.consumers.get(consumer.url) is consumer:
            del self.consumers[consumer.url]    # healthy and idle: nothing to remember
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

    def _deliver(self, push, failing_since):
        """Send and record the outcome -> _Outcome. ``failing_since``: when
        the consumer's current run of failures began (None: it is not failing)."""
        if self._held_back(push):
            return _Outcome(None, None)
        try:
            self.send(push)
        except PayloadError as e:
            self._park(push, f"payload cannot be sent: {e}"[:MAX_ERROR_TEXT], push.attempts + 1)
            return _Outcome(None, None)
        except zeep.exceptions.Fault as e:     # an answer: the push failed, its consumer is up
            error, answered = describe_error(e), True
        except Exception as e:
            error, answered = describe_error(e), False
        else:
            try:
                self.store.mark_delivered(push.delivery_id)
            except NotFound:
                log.warning("push %s delivered, but it is no longer in the outbox", push.delivery_id)
            self._release_held(push)
            log.debug("push %s (%s #%s) delivered to %s", push.delivery_id, push.operation, push.sequence,
                      push.callback_url)
            return _Outcome(None, True)
        attempts = push.attempts + 1
        if not answered and failing_since is not None \
                and (_utcnow() - failing_since).total_seconds() >= self.settings["park_after"]:
            self._park_consumer(push, error, failing_since)
            return _Outcome(None, False)
        if attempts >= self.settings["max_attempts"]:
            self._park(push, error, attempts)
            return _Outcome(None, answered)
        delay = backoff_delay(attempts, self.settings["initial_backoff"], self.settings["max_backoff"],
                              self.settings["jitter"], self.rand)
        self._mark_failed(push, error, _utcnow() + timedelta(seconds=delay))
        log.warning("push %s (%s) to %s failed (attempt %d, retry in %.1fs): %s", push.delivery_id,
                    push.operation, push.callback_url, attempts, delay, error)
        return _Outcome(delay, answered)

    def _park(self, push, error, attempts):
        """This push alone is not retried any more (attempts ran out, or it cannot be sent)."""
        self._mark_failed(push, error, None)
        self._release_held(push)
        log.error("push %s (%s #%s of %s to %s, principal %s) parked after %d attempt(s): %s",
                  push.delivery_id, push.operation, push.sequence, push.job_id or push.stream,
                  push.callback_url, push.principal, attempts, error)

    def _park_consumer(self, push, error, failing_since):
        """The consumer stayed down past park_after: park all its pushes."""
        reason = f"parked: consumer failing since {failing_since.isoformat(timespec='seconds')}: {error}"
        reason = reason[:MAX_ERROR_TEXT]
        self._mark_failed(push, reason, None)    # this attempt counted
        parked = 1 + self.store.park_pushes(push.callback_url, reason)
        self._release_held(push)
        log.error("consumer %s failing since %s, over push.park_after (%gs): %d push(es) parked, "
                  "re-deliverable; last error: %s", push.callback_url, failing_since.isoformat(timespec="seconds"),
                  self.settings["park_after"], parked, error)

    def _mark_failed(self, push, error, next_attempt_at):
        try:
            self.store.mark_failed(push.delivery_id, error, next_attempt_at)
        except NotFound:
            log.warning("push %s failed, but it is no longer in the outbox", push.delivery_id)
