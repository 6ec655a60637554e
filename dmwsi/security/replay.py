"""Replay detection: values (nonces, signature values) seen recently.

In memory and per process: behind a load balancer with several dmwsi
processes, a message replayed to another process is not detected by this
cache (timestamps still bound the window to ``replay_window`` seconds).
"""
import logging
import threading
import time
from collections import OrderedDict

log = logging.getLogger(__name__)


class ReplayCache:
    """An LRU of recently seen values, each remembered until it expires."""

    def __init__(self, max_entries=100_000, clock=time.monotonic):
        self.max_entries = max_entries
        self.clock = clock
        self._seen = OrderedDict()    # value -> expiry (monotonic), oldest first
        self._lock = threading.Lock()

    def check_and_add(self, value, ttl):
        """True if ``value`` is new (and remember it for ``ttl`` seconds); False on replay."""
        now = self.clock()
        with self._lock:
            self._expire(now)
            expiry = self._seen.get(value)
            if expiry is not None and expiry > now:
                return False
            self._seen[value] = now + ttl
            self._seen.move_to_end(value)
            while len(self._seen) > self.max_entries:
                self._seen.popitem(last=False)
                log.warning("replay cache full (%d entries): forgetting the oldest", self.max_entries)
            return True

    def _expire(self, now):
        # Entries are added with the same ttl in practice, so the oldest expire first.
        while self._seen:
            value, expiry = next(iter(self._seen.items()))
            if expiry > now:
                break
            del self._seen[value]

    def __len__(self):
        return len(self._seen)
