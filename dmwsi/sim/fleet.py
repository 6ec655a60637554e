"""A fleet of simulated devices on one Twisted reactor.

Every device is a ``SimulatedDevice`` (pure protocol state); this module does
their I/O: one ``twisted.web.client.Agent`` over a shared persistent
``HTTPConnectionPool`` carries every DM message, and one twisted.web listener
takes package 0 POSTs at ``/notify/<device id>`` (content type
``application/vnd.syncml.notification``, reference §10.3) and starts that
device's 1200 session. No thread or process per device: thousands of devices
are thousands of small objects and some Deferreds.

Device classes (how many of each, DevInfo values, auth scheme, encoding,
latency, failure rates, FUMO/SCOMO scripts) come from a small TOML file,
``conf/sim.toml``; see ``load_sim_config``. ``Fleet.register`` registers every
device with the server's SOAP ``RegisterDevice`` (zeep, in threads).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import tomllib
from dataclasses import dataclass, field, fields
from io import BytesIO
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from twisted.internet import defer, task
from twisted.web import resource, server
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from dmwsi.dm import wbxml
from dmwsi.dm.codes import AlertCode
from dmwsi.sim.client import (OUTCOME_ABORTED, OUTCOME_DROPPED, OUTCOME_FAILED, OUTCOME_OK,
                              DeviceBehaviour, DeviceStats, SimulatedDevice, default_profile)
from dmwsi.sim.counters import counters, total
from dmwsi.sim.objects import FumoScript, ScomoScript
from dmwsi.resources import CONF_DIR

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = CONF_DIR / "sim.toml"     # shipped with the package (dmwsi.resources)
NOTIFY_PATH = "notify"


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class DeviceClass:
    """One kind of device in the fleet (a ``[[class]]`` table of sim.toml)."""

    name: str
    share: float = 1.0                   # relative weight in the fleet
    id_format: str = "IMEI:35{index:013d}"   # device id from a fleet-wide index
    man: str = "ACME"
    mod: str = "Sim-1"
    fwv: str = "1.0.0"
    swv: str = "1.0"
    hwv: str = "A"
    lang: str = "en-US"
    dev_type: str = "phone"
    auth_scheme: str = "md5"
    encoding: str = "xml"
    latency: float = 0.0
    fail_rate: float = 0.0
    drop_rate: float = 0.0
    wrong_credentials: bool = False
    require_server_auth: bool = False
    max_msg_size: int = 16384
    ui_confirm: bool = True
    session_id_one: bool = False         # quirks: see DeviceBehaviour
    chunks_as_whole: bool = False
    atomic_refusal: int | None = None
    fumo: Mapping[str, Any] = field(default_factory=dict)     # FumoScript fields
    scomo: Mapping[str, Any] = field(default_factory=dict)    # ScomoScript fields
    components: tuple = ()                                   # InstalledComponent dicts

    def behaviour(self, seed: int | None = None) -> DeviceBehaviour:
        return DeviceBehaviour(
            encoding=self.encoding, auth_scheme=self.auth_scheme, latency=self.latency,
            fail_rate=self.fail_rate, drop_rate=self.drop_rate, wrong_credentials=self.wrong_credentials,
            require_server_auth=self.require_server_auth, max_msg_size=self.max_msg_size,
            ui_confirm=self.ui_confirm, session_id_one=self.session_id_one,
            chunks_as_whole=self.chunks_as_whole, atomic_refusal=self.atomic_refusal,
            fumo_script=FumoScript(**self.fumo),
            scomo_script=ScomoScript(**self.scomo), seed=seed)


@dataclass(frozen=True)
class SimConfig:
    server_id: str = "dmwsi"
    # Seed the per-device passwords are derived from (stable across runs, so
    # re-registering and re-running agree with the server's records).
    secret: str = "dmwsi-simulator"
    request_timeout: float = 30.0
    max_concurrent_sessions: int = 200
    register_batch: int = 25
    register_threads: int = 4
    classes: tuple[DeviceClass, ...] = (DeviceClass(name="default"),)


def load_sim_config(path: str | Path | None = None) -> SimConfig:
    """Read sim.toml (``None``: conf/sim.toml if present, else built-in defaults)::

        [fleet]
        server_id = "dmwsi"
        secret = "..."
        [[class]]
        name = "acme-phone"
        share = 3
        man = "ACME"; mod = "P1"; fwv = "1.0.0"
        auth_scheme = "md5"; encoding = "wbxml"; latency = 0.05
        fail_rate = 0.01; drop_rate = 0.0
        [class.fumo]
        download_seconds = 2.0
        update_result = 200
    """
    if path is None:
        if not DEFAULT_CONFIG_PATH.exists():
            return SimConfig()
        path = DEFAULT_CONFIG_PATH
    with open(path, "rb") as f:
        data = tomllib.load(f)
    return sim_config_from_dict(data)


def sim_config_from_dict(data: Mapping[str, Any]) -> SimConfig:
    fleet = dict(data.get("fleet", {}))
    known = {f.name for f in fields(SimConfig)} - {"classes"}
    unknown = set(fleet) - known
    if unknown:
        raise ValueError(f"unknown [fleet] keys: {sorted(unknown)}")
    class_fields = {f.name for f in fields(DeviceClass)}
    classes = []
    for entry in data.get("class", []):
        entry = dict(entry)
        unknown = set(entry) - class_fields
        if unknown:
            raise ValueError(f"class {entry.get('name')!r}: unknown keys {sorted(unknown)}")
        entry["components"] = tuple(entry.get("components", ()))
        cls = DeviceClass(**entry)
        cls.behaviour()                        # validates encoding, scheme, scripts
        if cls.share <= 0:
            raise ValueError(f"class {cls.name!r}: share must be > 0")
        classes.append(cls)
    if classes:
        fleet["classes"] = tuple(classes)
    return SimConfig(**fleet)


def allocate(classes: tuple[DeviceClass, ...], count: int) -> list[int]:
    """Devices per class for ``count`` devices, by share (largest remainder)."""
    total = sum(c.share for c in classes)
    exact = [count * c.share / total for c in classes]
    counts = [int(x) for x in exact]
    order = sorted(range(len(classes)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in order[: count - sum(counts)]:
        counts[i] += 1
    return counts


def derive_dm_url(soap_url: str, dm_path: str = "/dm") -> str:
    """The DM endpoint on the same host as the SOAP URL."""
    parts = urlsplit(soap_url)
    return urlunsplit((parts.scheme, parts.netloc, dm_path, "", ""))


def _password(secret: str, purpose: str, device_id: str) -> str:
    return hmac.new(secret.encode(), f"{purpose}:{device_id}".encode(), hashlib.sha256).hexdigest()[:24]


# --------------------------------------------------------------------------- fleet


FleetCounters = counters(
    "FleetCounters", "What only the fleet sees (the rest is summed from the devices' stats).",
    "timeouts http_errors notifications_received registered register_failed busy_skipped")


class Fleet:
    """N simulated devices sharing one reactor, one HTTP client pool and one listener."""

    def __init__(self, config: SimConfig, count: int, dm_url: str, *, reactor=None,
                 notify_base_url: str | None = None, clock=time.time):
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self.reactor = reactor
        self.dm_url = dm_url
        self.notify_base_url = notify_base_url
        self.counters = FleetCounters()
        self.devices: dict[str, SimulatedDevice] = {}
        self.device_class: dict[str, DeviceClass] = {}
        self.passwords: dict[str, tuple[str, str]] = {}      # device id -> (client, server)
        self.last_errors: list[str] = []
        index = 0
        for cls, n in zip(config.classes, allocate(config.classes, count)):
            for _ in range(n):
                index += 1
                device_id = cls.id_format.format(index=index)
                client_pw = _password(config.secret, "client", device_id)
                server_pw = _password(config.secret, "server", device_id)
                profile = default_profile(
                    device_id, man=cls.man, mod=cls.mod, fwv=cls.fwv, swv=cls.swv, hwv=cls.hwv,
                    lang=cls.lang, dev_type=cls.dev_type, server_id=config.server_id,
                    server_password=server_pw, client_user=device_id, client_password=client_pw,
                    auth_scheme=cls.auth_scheme, server_address=dm_url, components=list(cls.components))
                if device_id in self.devices:
                    raise ValueError(f"duplicate device id {device_id!r}: check the classes' id_format")
                self.devices[device_id] = SimulatedDevice(profile, cls.behaviour(seed=index), clock=clock)
                self.device_class[device_id] = cls
                self.passwords[device_id] = (client_pw, server_pw)
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = max(2, min(config.max_concurrent_sessions, 256))
        self.agent = Agent(reactor, pool=self.pool, connectTimeout=config.request_timeout)
        self.session_slots = defer.DeferredSemaphore(max(1, config.max_concurrent_sessions))
        self.active_sessions = 0
        self.port = None
        self._sessions: set[defer.Deferred] = set()

    # ------------------------------------------------------------ listener

    def listen(self, port: int = 0, interface: str = "127.0.0.1"):
        """Serve /notify/<device id>; returns the listening port."""
        root = resource.Resource()
        root.putChild(NOTIFY_PATH.encode(), NotifyResource(self))
        site = server.Site(root)
        site.noisy = False
        self.port = self.reactor.listenTCP(port, site, interface=interface)
        if self.notify_base_url is None:
            host = self.port.getHost()
            self.notify_base_url = f"http://{interface}:{host.port}"
        return self.port

    def notification_url(self, device_id: str) -> str:
        if self.notify_base_url is None:
            raise RuntimeError("call listen() (or pass notify_base_url) first")
        return f"{self.notify_base_url}/{NOTIFY_PATH}/{quote(device_id, safe='')}"

    def on_notification(self, device_id: str, pkg0: bytes) -> int:
        """A package 0 arrived for ``device_id``; returns the HTTP status to answer."""
        device = self.devices.get(device_id)
        if device is None:
            return 404
        self.counters.notifications_received += 1
        rejected_before = device.stats.notifications_rejected
        session_id = device.on_notification(pkg0)
        if session_id is None:
            # 403 for a package 0 that does not verify; 200 for one ignored
            # because that session (or another) is already running.
            return 403 if device.stats.notifications_rejected > rejected_before else 200
        self.reactor.callLater(0, self.run_session, device, AlertCode.SERVER_INITIATED_MGMT, session_id)
        return 202

    # ------------------------------------------------------------ sessions

    def start_client_sessions(self, device_ids=None) -> defer.Deferred:
        """One client-initiated (1201) session per device; fires with {outcome: count}."""
        ids = list(self.devices) if device_ids is None else list(device_ids)
        runs = []
        for device_id in ids:
            device = self.devices[device_id]
            if device.in_session:
                self.counters.busy_skipped += 1
                continue
            runs.append(self.run_session(device, AlertCode.CLIENT_INITIATED_MGMT))

        def tally(outcomes):
            summary = {}
            for ok, outcome in outcomes:
                key = outcome if ok else OUTCOME_FAILED
                summary[key] = summary.get(key, 0) + 1
            return summary
        return defer.DeferredList(runs, consumeErrors=True).addCallback(tally)

    def run_session(self, device: SimulatedDevice, alert: int = AlertCode.CLIENT_INITIATED_MGMT,
                    session_id: str | None = None) -> defer.Deferred:
        """Run one session of ``device`` to its end; fires with the outcome."""
        d = self.session_slots.run(self._session, device, alert, session_id)
        self._sessions.add(d)

        def done(result):
            self._sessions.discard(d)
            return result
        return d.addBoth(done)

    @defer.inlineCallbacks
    def _session(self, device: SimulatedDevice, alert: int, session_id: str | None):
        if device.in_session:
            self.counters.busy_skipped += 1
            return None
        self.active_sessions += 1
        try:
            request = device.open_session(alert, session_id)
            while request is not None:
                if device.behaviour.latency:
                    yield task.deferLater(self.reactor, device.behaviour.latency, lambda: None)
                try:
                    code, body, ctype, headers = yield self._post(request)
                except defer.TimeoutError:
                    self.counters.timeouts += 1
                    device.abort_session("timeout")
                    break
                except Exception as e:          # connection refused, reset...
                    self.counters.http_errors += 1
                    self._note(f"{device.device_id}: {e!r}")
                    device.abort_session(f"HTTP error: {e}")
                    break
                if code != 200:
                    self.counters.http_errors += 1
                    self._note(f"{device.device_id}: HTTP {code} {body[:200]!r}")
                    device.abort_session(f"HTTP {code}")
                    break
                request = device.on_response(body, ctype, headers)
        finally:
            self.active_sessions -= 1
        outcome = device.last_outcome
        if device.deferred_session_id is not None:
            # A package 0 came while this session ran: answer it now.
            deferred, device.deferred_session_id = device.deferred_session_id, None
            self.reactor.callLater(0, self.run_session, device, AlertCode.SERVER_INITIATED_MGMT, deferred)
        return outcome

    @defer.inlineCallbacks
    def _post(self, request):
        headers = Headers({k.encode(): [v.encode()] for k, v in request.headers.items()})
        d = self.agent.request(b"POST", request.url.encode(), headers,
                               FileBodyProducer(BytesIO(request.body)))
        d.addTimeout(self.config.request_timeout, self.reactor)
        response = yield d
        body_d = readBody(response)
        body_d.addTimeout(self.config.request_timeout, self.reactor)
        body = yield body_d
        raw = {k.decode("latin-1").lower(): v[-1].decode("latin-1") for k, v in response.headers.getAllRawHeaders()}
        return response.code, body, raw.get("content-type", wbxml.DM_XML), raw

    def _note(self, text: str) -> None:
        log.debug("%s", text)
        self.last_errors = (self.last_errors + [text])[-20:]

    # ------------------------------------------------------------ registration

    def registration_request(self, device_id: str) -> dict:
        """RegisterDevice fields for one device."""
        device = self.devices[device_id]
        profile = device.sim.profile
        client_pw, server_pw = self.passwords[device_id]
        info = {"deviceId": device_id, "man": profile.man, "mod": profile.mod, "fwV": profile.fwv,
                "swV": profile.swv, "hwV": profile.hwv, "lang": profile.lang, "dmV": profile.dmv,
                "devTyp": profile.dev_type, "oem": profile.oem or profile.man}
        if device_id.startswith("IMEI:"):
            info["imei"] = device_id.split(":", 1)[1]
        return {
            "device": info,
            "clientUsername": profile.client_user,
            "clientPassword": client_pw,
            "serverPassword": server_pw,
            "authScheme": profile.auth_scheme,
            "notificationUrl": self.notification_url(device_id),
        }

    def register(self, soap_url: str, device_ids=None, auth=None) -> defer.Deferred:
        """RegisterDevice for every device (zeep in threads, in batches); fires with (ok, failed).
        ``auth``: how the CLI authenticates (dmwsi.client), the same for registration."""
        from twisted.internet.threads import deferToThreadPool
        ids = list(self.devices) if device_ids is None else list(device_ids)
        requests = [(device_id, self.registration_request(device_id)) for device_id in ids]
        size = max(1, self.config.register_batch)
        batches = [requests[i:i + size] for i in range(0, len(requests), size)]
        limit = defer.DeferredSemaphore(max(1, self.config.register_threads))
        local = threading.local()
        pool = self.reactor.getThreadPool()

        def run_batch(batch):
            from dmwsi.client import soap_client
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = soap_client(soap_url, timeout=self.config.request_timeout, auth=auth)
            ok, failed = 0, []
            for device_id, request in batch:
                try:
                    client.service.RegisterDevice(**request)
                    ok += 1
                except Exception as e:
                    failed.append(f"{device_id}: {e}")
            return ok, failed

        def count(result):
            ok, failed = result
            self.counters.registered += ok
            self.counters.register_failed += len(failed)
            for text in failed:
                self._note(text)
            return result

        def one(batch):
            return limit.run(deferToThreadPool, self.reactor, pool, run_batch, batch).addCallback(count)

        def total(results):
            ok = sum(r[0] for success, r in results if success)
            failed = sum(len(r[1]) for success, r in results if success)
            for success, failure in results:
                if not success:
                    self._note(f"registration batch failed: {failure.getErrorMessage()}")
                    failed += size
                    self.counters.register_failed += size
            return ok, failed
        return defer.DeferredList([one(b) for b in batches], consumeErrors=True).addCallback(total)

    # ------------------------------------------------------------ summary

    def totals(self) -> DeviceStats:
        return total(DeviceStats, (device.stats for device in self.devices.values()))

    def summary(self) -> dict:
        t, c = self.totals(), self.counters
        return {
            "devices": len(self.devices), "active": self.active_sessions,
            "ok": t.sessions_ok, "failed": t.sessions_failed, "dropped": t.sessions_dropped,
            "aborted": t.sessions_aborted, "timeouts": c.timeouts, "http_errors": c.http_errors,
            "messages": t.messages_sent, "commands": t.commands_executed, "cmd_failed": t.commands_failed,
            "alerts_sent": t.alerts_sent, "alerts_acked": t.alerts_acknowledged,
            "notifications": c.notifications_received, "notif_rejected": t.notifications_rejected,
            "registered": c.registered, "register_failed": c.register_failed,
        }

    def summary_line(self) -> str:
        s = self.summary()
        return (f"devices {s['devices']}  active {s['active']}  ok {s['ok']}  failed {s['failed']}  "
                f"dropped {s['dropped']}  aborted {s['aborted']}  timeouts {s['timeouts']}  "
                f"http-err {s['http_errors']}  msgs {s['messages']}  cmds {s['commands']}  "
                f"alerts {s['alerts_sent']}/{s['alerts_acked']} acked  pkg0 {s['notifications']}  "
                f"registered {s['registered']}" + (f" (+{s['register_failed']} failed)" if s['register_failed'] else ""))

    def wait_idle(self) -> defer.Deferred:
        """Fires when no session is running."""
        return defer.DeferredList(list(self._sessions), consumeErrors=True)

    def close(self) -> defer.Deferred:
        stops = [self.pool.closeCachedConnections()]
        if self.port is not None:
            stops.append(defer.maybeDeferred(self.port.stopListening))
            self.port = None
        return defer.DeferredList(stops, consumeErrors=True)


class NotifyResource(resource.Resource):
    """``POST /notify/<device id>`` with the raw package 0 (reference §10.3)."""

    isLeaf = True

    def __init__(self, fleet: Fleet):
        super().__init__()
        self.fleet = fleet

    def render_POST(self, request):
        if len(request.postpath) != 1 or not request.postpath[0]:
            request.setResponseCode(404)
            return b"POST /notify/<device id>\n"
        device_id = unquote(request.postpath[0].decode("utf-8", "replace"))
        ctype = (request.getHeader("content-type") or "").split(";")[0].strip().lower()
        if ctype not in (wbxml.NOTIFICATION, "application/octet-stream"):
            request.setResponseCode(415)
            return f"expected {wbxml.NOTIFICATION}\n".encode()
        code = self.fleet.on_notification(device_id, request.content.read())
        request.setResponseCode(code)
        return {202: b"session starting\n", 200: b"ignored: session already running\n",
                403: b"package 0 rejected\n", 404: b"no such device\n"}.get(code, b"")


__all__ = ["DeviceClass", "SimConfig", "Fleet", "FleetCounters", "NotifyResource", "load_sim_config",
           "sim_config_from_dict", "allocate", "derive_dm_url", "OUTCOME_OK", "OUTCOME_FAILED",
           "OUTCOME_DROPPED", "OUTCOME_ABORTED"]
