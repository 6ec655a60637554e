"""The server's shared services, built once and handed to every handler:
configuration, the store, the transaction log, and (as they are built) the
DM server, notifiers and the push outbox."""
import logging

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from dmwsi import tls
from dataclasses import dataclass

from dmwsi.aliases import Aliases, load_key as load_alias_key
from dmwsi.authz import SEE_IDENTITY, Authorizer
from dmwsi.security.principals import load_policy, policy_path
from dmwsi.store import open_store
from dmwsi.records import LogEntry
from dmwsi.errors import OperationError
from dmwsi.jobs.submit import SyncSlots

log = logging.getLogger(__name__)


@dataclass
class ResultView:
    visible: object       # uri -> bool: nodes the reader may Get
    present: object       # value -> value: identities the reader may see


class Services:
    def __init__(self, config, store, reactor=None, policy=None):
        self.config = config
        self.store = store
        self.policy = policy                       # dmwsi.security.principals.Policy
        self.authz = Authorizer.from_policy(policy.raw if policy else {})
        self.aliases = Aliases(load_alias_key(config), store)
        self.reactor = reactor
        self.handlers = {}
        self.sync_slots = SyncSlots(config["jobs"]["sync_slots"])
        self.dm_server = None     # set by the host
        self.wakeup = None
        #: dmwsi.jobs.announce.Announcer (set by the host); ``kick()`` after a
        #: committed state change closed targets whose pushes are still to enqueue.
        self.announcer = None
        #: dmwsi.push.sender.PushSender (set by the host); call
        #: ``pusher.kick()`` after committing pushes to send them at once.
        self.pusher = None

    def pushes_queued(self):
        """Pushes were committed: send them now (safe from any thread)."""
        if self.pusher is not None:
            self.pusher.kick()

    def notify_now(self, device, ui_mode):
        """Send package 0 to one device now (safe from any thread)."""
        if self.wakeup is not None and self.reactor is not None:
            self.reactor.callFromThread(self.wakeup.notify_device, device, ui_mode)

    def work_queued(self):
        """A job was created: wake its devices now (safe from any thread)."""
        if self.wakeup is not None and self.reactor is not None:
            self.reactor.callFromThread(self.wakeup.kick)

    @classmethod
    def open(cls, config, reactor=None):
        config.data_dir.mkdir(parents=True, exist_ok=True)
        store = open_store(config.data_path(config["store"]["path"]), busy_timeout=config["store"]["busy_timeout"])
        return cls(config, store, reactor, load_policy(policy_path(config)))

    def authorize(self, call):
        """May this caller call this operation at all? (OES7; default deny)"""
        if not self.authz.may_call(call.roles, call.operation):
            raise OperationError("NotAuthorized", f"{call.principal} may not call {call.operation}")

    def visible_nodes(self, roles):
        """A filter of returned nodes: only those these roles may Get (OES7)."""
        return lambda uri: self.authz.may_touch(roles, uri, "Get")

    def present(self, principal, roles, value):
        """What a caller may receive of ``value``: device identities become its
        aliases unless a role grants see-identity (OES6)."""
        if self.authz.has(roles, SEE_IDENTITY):
            return value
        return self.aliases.hide(principal, value)

    def result_view(self, job):
        """How results are shown to the job's own principal (pushes)."""
        roles = self.roles_of(job.principal)
        return ResultView(self.visible_nodes(roles), lambda value: self.present(job.principal, roles, value))

    def roles_of(self, principal):
        """The roles the policy gives a principal (for work done on its behalf later)."""
        entry = self.policy.get(principal) if self.policy else None
        return entry.roles if entry else ()

    def close(self):
        self.store.close()

    def built_operations(self):
        """Operations that do something in this release (the rest fault NotImplemented)."""
        return sorted(self.handlers)

    def server_certificate_der(self):
        """The server's certificate (DER), which consumers use to verify its signatures."""
        _, cert_path = tls.server_key_pair(self.config)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        return cert.public_bytes(Encoding.DER)

    def record_call(self, call, request, response, fault):
        """One transaction-log row per SOAP request (EI1-4): who, what, outcome."""
        response = response or {}
        device = request.get("device") if isinstance(request.get("device"), dict) else {}
        job_id = response.get("jobId") or request.get("jobId")
        entry = LogEntry(
            operation=call.operation, success=fault is None, principal=call.principal,
            job_id=job_id if isinstance(job_id, str) else None,
            device_id=device.get("deviceId") or request.get("deviceId"),
            subscriber_id=device.get("subscriberId"),
            summary=(fault.log_reason or fault.message) if fault is not None else _summary(request),
            error_code=fault.code if fault is not None else None,
            customer_care=getattr(call, "customer_care", False),
        )
        try:
            self.store.append_log(entry)
        except Exception:   # the log must never turn a success into a failure
            log.exception("cannot write transaction log for %s", call.operation)


def _summary(request):
    """A short, identity-free description of the request's shape."""
    return ", ".join(f"{k}[{len(v)}]" if isinstance(v, list) else k for k, v in request.items())[:200]
