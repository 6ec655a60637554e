"""The device client of the simulator: one OMA DM 1.2 client, no I/O.

``SimulatedDevice`` couples a ``SimulatedDeviceTree`` (``dmwsi.sim.objects``)
with the client half of the DM protocol (omadm-reference.md §3-§10, §15).
It is a pure state machine: bytes of a package 0 or of a server message go
in, ``Request`` objects (URL, body bytes, content type, headers) come out.
The fleet (``dmwsi.sim.fleet``) does the HTTP; tests drive it directly.
Modules: ``session`` (``SimulatedDevice``), ``auth``, ``packing``,
``execution``, ``behaviour``, ``outcomes``; this package exports their public names.

One session at a time::

    sid = device.on_notification(pkg0)            # or None: ignored
    request = device.open_session(1200, sid)      # package 1
    while request is not None:
        body, ctype, headers = http_post(request)
        request = device.on_response(body, ctype, headers)
    device.last_outcome                           # "ok", "failed", ...

What the client does, in protocol terms:

* package 1: Alert 1200/1201, Replace with every ./DevInfo leaf, SyncHdr
  Cred per the DMAcc CLCRED AAuthType (basic, MD5 digest) or the
  ``x-syncml-hmac`` header (HMAC), Meta MaxMsgSize/MaxObjSize, and any
  Generic Alerts still owed from earlier operations (§3.1, §15);
* the server's SyncHdr Status: 212 stops credentials, 200 keeps them, 401/407
  with a Chal stores the new nonce and restarts package 1 (at most
  ``max_auth_retries`` times), anything else fails the session (§3.5, §9.4);
* the server's credentials (MD5 Cred or HMAC header, SRVCRED) are checked when
  present and answered 212/401 (407 when absent and ``require_server_auth``);
  a 212 carries a Chal with a fresh nonce for the server's next Cred and the
  next package 0 (§9.4, §10.2);
* Get/Add/Replace/Delete/Copy/Exec/Atomic/Sequence and UI alerts run against
  the tree with the DMAcc ServerID; one Status per command (per item when the
  codes differ), Results for Gets, Atomic rollback (216/516/215, 507);
* multi-message: a server message without Final is answered with statuses
  plus Alert 1222 and no Final (§4); large objects in (213 per chunk, Meta
  Size check → 424, Alert 1225 when interrupted) and out (Results chunked to
  the server's MaxMsgSize with MoreData and Size) (§5);
* Generic Alerts (1226) produced by FUMO/SCOMO/DiagMon are sent with the next
  device message, or in the next session's package 1, and kept until the
  server acknowledges them with a 2xx Status;
* a server message with Final and no commands ends the session without an
  answer (§3.4); Alert 1223 aborts it (§3.6).

Real clients' quirks (issue 11), each a ``DeviceBehaviour`` option off by
default so end-to-end tests can reproduce them: ``session_id_one`` (SessionID
1 every session), ``chunks_as_whole`` (MoreData ignored: 200 per chunk, the
last kept), ``atomic_refusal`` (an Atomic answered with that code alone, no
member statuses). docs/dm-conformance.rst lists what the server does with each.
"""
from dmwsi.sim.client.auth import CRED_TYPE_BY_SCHEME, SCHEME_BY_AAUTH_TYPE, SCHEME_BY_CRED_TYPE, ClientAuth
from dmwsi.sim.client.behaviour import ENCODINGS, DeviceBehaviour, default_profile
from dmwsi.sim.client.execution import CommandExecution
from dmwsi.sim.client.outcomes import OUTCOME_ABORTED, OUTCOME_DROPPED, OUTCOME_FAILED, OUTCOME_OK, DeviceStats
from dmwsi.sim.client.packing import MessagePacking, Request
from dmwsi.sim.client.session import NOTIFICATION_VERSIONS, SimulatedDevice

__all__ = [
    "CRED_TYPE_BY_SCHEME", "SCHEME_BY_AAUTH_TYPE", "SCHEME_BY_CRED_TYPE", "ClientAuth",
    "ENCODINGS", "DeviceBehaviour", "default_profile", "CommandExecution",
    "OUTCOME_ABORTED", "OUTCOME_DROPPED", "OUTCOME_FAILED", "OUTCOME_OK", "DeviceStats",
    "MessagePacking", "Request", "NOTIFICATION_VERSIONS", "SimulatedDevice",
]
