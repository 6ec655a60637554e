"""Telling consumers about results (OES4): which pushes a finished device
or a finished job produces, and when they are enqueued.

* A device's part ended by its own session (``target_finished``: the DM
  backend, or a refusal at submission) is announced in the transaction
  that records it (transactional outbox), and marked announced there.
* Devices whose part the server ended -- a cancelled job, an expired one --
  are many at once (100,000 targets are one UPDATE). Their state change
  commits alone; the :class:`Announcer` then enqueues their pushes in
  bounded batches (``BATCH`` targets per transaction) on the store thread,
  with DM sessions running between the batches, and the job's closing
  pushes (JobCompleted...) after the last batch. The durable marker
  (``job_targets.announced_at``, set in the batch's transaction) says which
  final targets are announced, so a restart resumes where it stopped: the
  announcer runs at start-up too. Announcing one job this way took one
  transaction of about 9 s before (two queries per device).

Pushes have fixed delivery ids (job, operation, device), so announcing the
same thing twice adds nothing."""
import logging

from twisted.internet import defer
from twisted.python import threadable

from dmwsi.jobs import outbox
from dmwsi.jobs.results import device_result
from dmwsi.records import DELIVERY_EACH, JOB_TERMINAL_STATES

log = logging.getLogger(__name__)

#: Final targets announced per transaction: short enough that the write lock
#: is held for tens of milliseconds, long enough that 100,000 take seconds.
BATCH = 500


def target_finished(store, job_id, device_id, job_completed, view):
    """A device ended its part of the job (``job_completed``: it was the last);
    the caller holds the transaction. ``view(job)``: how results are shown
    to the job's principal (a ``dmwsi.runtime.ResultView``; None: unfiltered)."""
    job = store.get_job(job_id)
    if job.delivery_mode == DELIVERY_EACH:      # pull and collated jobs push nothing per device
        rows, _ = store.job_results(job_id, include_unfinished=True, device_ids=[device_id])
        if rows:
            _push_result(store, job, rows[0], view)
    store.mark_announced(job_id, [device_id])
    if job_completed and not store.unannounced_targets(job_id, 1):
        outbox.job_completed(store, job)
    # else: targets the server closed are still being announced; the
    # announcer enqueues the job's closing pushes after them.


def _push_result(store, job, row, view):
    """Push one device's result of an ``each`` job, as its principal may see it."""
    reader = view(job)
    if reader is None:
        result = device_result(job, row)
    else:
        result = reader.present(device_result(job, row, visible=reader.visible))
    outbox.device_result_pushed(store, job, result)


def announce_batch(store, job_id, view, limit=BATCH):
    """One transaction: up to ``limit`` of the job's unannounced final targets
    get their pushes and are marked announced; once none is left, a job in a
    final state gets its closing pushes. Returns True when the job has
    nothing left to announce."""
    with store.transaction():
        job = store.get_job(job_id)
        if job is None:                 # deleted meanwhile: nothing to tell anyone
            return True
        device_ids = store.unannounced_targets(job_id, limit)
        if device_ids:
            if job.delivery_mode == DELIVERY_EACH:
                rows, _ = store.job_results(job_id, limit=len(device_ids), include_unfinished=True,
                                            device_ids=device_ids)
                for row in rows:
                    _push_result(store, job, row, view)
            store.mark_announced(job_id, device_ids)
        done = len(device_ids) < limit
        if done and job.state in JOB_TERMINAL_STATES:
            outbox.job_completed(store, job)
        return done


def jobs_completed(store, job_ids, view):
    """Jobs ended by the server in the caller's transaction (a job whose
    every device was refused): announce them whole, here."""
    for job_id in job_ids:
        while not announce_batch(store, job_id, view):
            pass


class Announcer:
    """Announces, batch after batch on the store thread, every job with
    unannounced final targets. ``kick()`` (any thread) after committing a
    state change that closed targets; kicks while it runs make it look again
    when it is done. A failed batch (a locked database...) is logged and
    retried at the next kick (the wake-up tick kicks it every scan)."""

    def __init__(self, store, store_thread, reactor, view=None, on_pushes=None, batch=BATCH):
        self.store = store
        self.store_thread = store_thread
        self.reactor = reactor
        self.view = view or (lambda job: None)
        self.on_pushes = on_pushes or (lambda: None)     # pushes committed: send them
        self.batch = batch
        self._running = False       # reactor thread only
        self._again = False

    def kick(self):
        if not threadable.isInIOThread():
            self.reactor.callFromThread(self.kick)
            return
        if self._running:
            self._again = True
            return
        self._running = True
        self._run().addErrback(lambda f: log.error("announcing closed targets failed (retried at the next "
                                                   "kick): %s", f.getTraceback()))

    @defer.inlineCallbacks
    def _run(self):
        try:
            again = True
            while again:
                self._again = False
                job_ids = yield self.store_thread.run(self.store.jobs_with_unannounced_targets)
                for job_id in job_ids:
                    try:
                        yield self._announce(job_id)
                    except Exception:   # one job's failure must not hold up the others
                        log.exception("announcing job %s failed; retried at the next kick", job_id)
                again = self._again
        finally:
            self._running = False

    @defer.inlineCallbacks
    def _announce(self, job_id):
        # One batch per store-thread task: DM sessions queued meanwhile run in between.
        done = False
        while not done:
            done = yield self.store_thread.run(announce_batch, self.store, job_id, self.view, self.batch)
            self.on_pushes()
        log.info("announced the closed targets of job %s", job_id)
