"""The store thread: where the reactor side of the server does its SQLite work.

The reactor thread only does network I/O. Everything the DM side asks of
the store -- every step of the DM session engine (whose Backend is
synchronous, dmwsi.jobs.backend), the idle-session sweep, the wake-up scan,
job expiry, announcing closed targets, the push sender's outbox reads and
writes -- is handed to this one thread and comes back as a Deferred on the
reactor. A SQLite call that waits for the write lock (another writer, up to
``store.busy_timeout``) or runs long (cancelling 100,000 targets) then delays
only the work queued behind it, never the reactor.

One thread, not a pool: the work runs in the order it was queued, one piece
at a time, so the state it shares (the DM session table, the wake-up
bookkeeping) needs no locks, and long jobs are cut into short pieces
(queued one after the other) so that DM sessions interleave with them.
SOAP handlers keep their own WSGI threads; the store is safe for both
(one connection per thread, WAL).
"""
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from dmwsi.errors import DmwsiError


class StoreThreadStopped(DmwsiError):
    """Work was handed to the store thread after it stopped (server shutdown)."""


class StoreThread:
    def __init__(self, reactor, name="store"):
        self.reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=name)

    @property
    def running(self):
        return self._pool.started and not self._pool.joined

    def start(self):
        self._pool.start()

    def stop(self):
        """Run what is queued, then end the thread (blocks until then)."""
        if self.running:
            self._pool.stop()

    def run(self, f, *args, **kwargs):
        """``f(*args, **kwargs)`` on the store thread -> a Deferred fired on the reactor."""
        if not self.running:
            # The pool would drop the work silently and the Deferred never fire.
            return defer.fail(StoreThreadStopped(f"store thread stopped: {getattr(f, '__name__', f)} not run"))
        return deferToThreadPool(self.reactor, self._pool, f, *args, **kwargs)
