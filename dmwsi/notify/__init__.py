"""Push delivery (OES4): results and events pushed to consumers' callbacks.

* :mod:`dmwsi.notify.outbox` - the domain side: enqueue pushes in the same
  store transaction as what they announce (transactional outbox).
* :mod:`dmwsi.notify.sender` - :class:`PushSender`, on the reactor: sends
  due pushes with zeep, retries with backoff, abandons after max_attempts.
* :mod:`dmwsi.notify.payload` - payloads checked against, and converted by,
  the callback contract (``wsdl/dmwsi-callback-1.0.wsdl``).
* :mod:`dmwsi.notify.consumer` - a reference consumer built from the
  callback contract (tests, demos).
"""
