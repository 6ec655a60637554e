"""Push delivery (OES4), the consumer edge: :class:`dmwsi.push.sender.PushSender`
runs on the reactor, sends the outbox's due pushes with zeep (payloads
converted by :mod:`dmwsi.contract.payload`), retries with backoff and
abandons after max_attempts. What is pushed is decided and enqueued by the
domain (:mod:`dmwsi.jobs.outbox`, :mod:`dmwsi.jobs.announce`); a reference
consumer for tests and demos is :mod:`dmwsi.wsi.consumer`.
"""
