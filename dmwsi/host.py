"""One Twisted reactor hosting everything: the SOAP endpoint (spyne under
twisted.web.wsgi), the OMA DM endpoint and the download area, on a plain
HTTP port (development) and an HTTPS port.

``Server.start()`` must run on the reactor thread; ``serve()`` is the blocking
entry point used by ``dmwsi serve``.

Threads: the reactor thread does network I/O only. SOAP requests run in the
WSGI pool (``server.soap_threads``); everything else that touches the store
-- the DM session engine and its sweep, the wake-up scan and job expiry,
announcing closed targets, the push sender's outbox reads -- runs on the one
store thread (dmwsi.store.thread) created here and handed to each of
them; pushes are sent from the push pool.
"""
import logging
import sys

from twisted.internet import reactor as default_reactor
from twisted.python.threadpool import ThreadPool
from twisted.web import resource, static

from dmwsi.bounds import BoundedSite, Refusal
from dmwsi.contract.faults import fault_detail, fault_document

from dmwsi.dm.delivery import make_notifier
from dmwsi.dm.server import DMResource, DMServer
from dmwsi.dm.session import SessionPolicy
from dmwsi.jobs.announce import Announcer
from dmwsi.jobs.backend import StoreBackend
from dmwsi.store.thread import StoreThread
from dmwsi.jobs.wakeup import WakeUp
from dmwsi.push.sender import PushSender
from dmwsi.security import mtls, secure_soap_app
from dmwsi.security.principals import ensure_bootstrap_credential
from dmwsi.runtime import Services
from dmwsi.wsi.handlers import HANDLERS
from dmwsi.wsi.application import build_soap_app

log = logging.getLogger(__name__)


class Server:
    """The dmwsi server: its resources, ports and background services."""

    def __init__(self, config, reactor=default_reactor):
        self.config = config
        self.reactor = reactor
        self.ports = {}
        self.services = None
        self.threadpool = None
        self.store_thread = None
        self.bootstrap = None       # dmwsi.security.principals.BootstrapCredential, if enabled

    def build_site(self):
        cfg = self.config["server"]
        # First, so a refused credential file (readable by others) stops the start before anything opens.
        self.bootstrap = ensure_bootstrap_credential(self.config)
        self.services = Services.open(self.config, self.reactor)
        self.store_thread = StoreThread(self.reactor)
        # Every thread started with the pool: one started on demand is started from the reactor
        # thread, which then waits for the interpreter lock (stalls measured, dmwsi/push/sender.py).
        self.threadpool = ThreadPool(minthreads=cfg["soap_threads"], maxthreads=cfg["soap_threads"], name="soap")
        soap_app = build_soap_app(self.services, HANDLERS, cfg["max_request_bytes"])
        # Authentication of every request, before spyne (dmwsi/security).
        soap_app = secure_soap_app(soap_app, self.config, self.services)
        self._add_bootstrap_principal(soap_app.authenticator.policy)
        self.dm_resource = DMResource(self._build_dm(), self.reactor)
        root = resource.Resource()
        root.putChild(cfg["soap_path"].encode(),
                      mtls.PeerCertificateWSGIResource(self.reactor, self.threadpool, soap_app))
        root.putChild(cfg["dm_path"].encode(), self.dm_resource)
        download_dir = self.config.data_dir / "download"
        download_dir.mkdir(parents=True, exist_ok=True)
        root.putChild(cfg["download_path"].encode(), static.File(str(download_dir)))
        return self._bounded(root)

    def _bounded(self, root):
        """The Site, with every request's body size and duration bounded while it arrives (dmwsi.bounds)."""
        cfg, dm = self.config["server"], self.config["dm"]
        too_large = "The request body is larger than the server accepts."
        fault = fault_document("soap:Client", too_large, fault_detail("RequestTooLarge", too_large))
        return BoundedSite(
            root, request_deadline=cfg["request_deadline"],
            body_limits={cfg["soap_path"].encode(): cfg["max_request_bytes"],
                         cfg["dm_path"].encode(): dm["max_body_bytes"],
                         cfg["download_path"].encode(): 0},
            refusals={cfg["soap_path"].encode(): Refusal({413: (500, b"text/xml; charset=utf-8", fault)})})

    def _add_bootstrap_principal(self, authentication_policy):
        """Accept the bootstrap credential's principal (created on first start, read after).

        Authentication and authorization each hold a Policy read from the
        policy file; the bootstrap principal joins both (roles for work done
        on its behalf later come from the latter)."""
        if self.bootstrap is None:
            return
        principal = self.bootstrap.principal()
        authentication_policy.add(principal)
        if self.services.policy is not None and self.services.policy is not authentication_policy:
            self.services.policy.add(principal)
        log.info("bootstrap operator credential (user %r) in %s", self.bootstrap.username, self.bootstrap.path)

    def _build_dm(self):
        dm = self.config["dm"]
        policy = SessionPolicy(
            server_uri=dm["public_url"], accepted_schemes=tuple(dm["accepted_auth"]),
            server_max_msg_size=dm["max_msg_size"], server_max_obj_size=dm["max_obj_size"],
            send_server_cred=dm["send_server_cred"])
        backend = StoreBackend(self.services.store, self.config, on_pushes=self.services.pushes_queued,
                               view=self.services.result_view)
        dm_server = DMServer(backend, policy, session_timeout=dm["session_timeout"],
                             challenge_rate=dm["challenge_rate"], challenge_burst=dm["challenge_burst"],
                             store_thread=self.store_thread, max_parts=dm["max_parts"])
        self.notifier = make_notifier(dm["notifier"], self.reactor, dm["notification_concurrency"])
        self.services.dm_server = dm_server
        #: kicked (from any thread) after a state change closed targets: CancelJob
        self.services.announcer = Announcer(self.services.store, self.store_thread, self.reactor,
                                            view=self.services.result_view, on_pushes=self.services.pushes_queued)
        self.services.wakeup = WakeUp(self.services.store, dm_server, self.notifier, self.config, self.reactor,
                                      self.store_thread, self.services.announcer)
        return dm_server

    def start(self):
        """Open the store, bind the ports; returns {'http': port, 'https': port}."""
        cfg = self.config["server"]
        # The reactor is one thread among the store thread and the worker pools: each
        # time it comes back from polling it waits for the interpreter lock, up to the
        # switch interval per wait (5 ms by default, stalls past 100 ms measured while
        # huge jobs are announced). 1 ms keeps it responsive for a small cost in throughput.
        sys.setswitchinterval(min(sys.getswitchinterval(), 0.001))
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        site = self.build_site()
        self.threadpool.start()
        self.store_thread.start()
        # Queued on the store thread before the ports open, so they run before
        # any device message: start-up recovery, then announcing what a
        # previous run left unannounced.
        self.services.wakeup.start()
        self.services.announcer.kick()
        self.dm_resource.start()
        if cfg["http_port"] >= 0:
            port = self.reactor.listenTCP(cfg["http_port"], site, interface=cfg["host"])
            self.ports["http"] = port
        if cfg["https_port"] >= 0:
            context = mtls.server_context(self.config)   # TLS 1.2+, client certificates if configured
            port = self.reactor.listenSSL(cfg["https_port"], site, context, interface=cfg["host"])
            self.ports["https"] = port
        for name, port in self.ports.items():
            log.info("%s listening on %s:%d", name, cfg["host"], port.getHost().port)
        if not self.services.dm_server.policy.server_uri:
            # Development default: the DM endpoint on the first listener.
            self.services.dm_server.policy.server_uri = self.url(next(iter(self.ports)), "dm")
        # Push delivery (OES4): sends the outbox to consumers' callbacks.
        self.services.pusher = PushSender.from_config(self.services.store, self.config, self.reactor,
                                                      store_thread=self.store_thread)
        self.services.pusher.start()
        return {name: port.getHost().port for name, port in self.ports.items()}

    def url(self, scheme="http", path="soap"):
        port = self.ports[scheme].getHost().port
        return f"{scheme}://{self.config['server']['host']}:{port}/{self.config['server'][path + '_path']}"

    def stop(self):
        """Stop accepting, let running requests finish, close the store."""
        from twisted.internet import defer
        stops = [defer.maybeDeferred(port.stopListening) for port in self.ports.values()]
        self.ports = {}
        if self.services is not None:
            self.services.wakeup.stop()
            self.dm_resource.stop()
            if hasattr(self.notifier, "close"):
                stops.append(self.notifier.close())
            if self.services.pusher is not None:
                stops.append(self.services.pusher.stop())   # waits for in-flight pushes

        def finish(_):
            if self.threadpool is not None:
                self.threadpool.stop()  # waits for in-flight SOAP requests
            if self.store_thread is not None:
                self.store_thread.stop()    # runs what is queued (DM messages being answered)
            if self.services is not None:
                self.services.close()
        return defer.gatherResults(stops).addBoth(finish)


def serve(config):
    """Run the server until SIGTERM/SIGINT (the reactor's handlers stop it)."""
    srv = Server(config)
    default_reactor.callWhenRunning(_start_or_exit, srv)
    default_reactor.addSystemEventTrigger("before", "shutdown", srv.stop)
    default_reactor.run()


def _start_or_exit(srv):
    try:
        ports = srv.start()
    except Exception:
        log.exception("cannot start")
        default_reactor.stop()
        raise
    for name in ports:
        print(f"dmwsi: {name} SOAP endpoint {srv.url(name)} (WSDL at {srv.url(name)}?wsdl)", flush=True)
    if srv.bootstrap is not None:
        # Where, never what: the password stays in the 0600 file.
        print(f"dmwsi: operator credential (user {srv.bootstrap.username}) in {srv.bootstrap.path}; "
              f"`dmwsi call` on this machine uses it", flush=True)
    if srv.config["security"]["allow_anonymous"]:
        print("dmwsi: anonymous access is ON (development): callers without credentials get the roles "
              "of [principals.anonymous]", flush=True)
