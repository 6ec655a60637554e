"""The ``dmwsi`` command: serve, call an operation (and follow its job), print a job's results, inspect jobs."""
import argparse
import json
import logging
import sys
import time

from dmwsi.config import ConfigError, load_config
from dmwsi.errors import DmwsiError


def _config_from(args):
    overrides = {}
    for key in ("host", "http_port", "https_port", "data_dir"):
        value = getattr(args, key, None)
        if value is not None:
            overrides.setdefault("server", {})[key] = value
    if getattr(args, "dev", False):
        overrides["security"] = {"allow_anonymous": True}
    return load_config(args.config, overrides=overrides or None)


def cmd_serve(args):
    from dmwsi.host import serve
    serve(_config_from(args))


def parse_assignments(pairs):
    """``a=1 b.c=x b.d=y l=1 l=2`` -> {'a': '1', 'b': {'c': 'x', 'd': 'y'}, 'l': ['1', '2']}.

    A value starting with ``[`` or ``{`` is read as JSON, for lists of records.
    """
    request = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value, got {pair!r}")
        if value[:1] in "[{":
            value = json.loads(value)
        *parents, leaf = key.split(".")
        node = request
        for part in parents:
            node = node.setdefault(part, {})
        if leaf in node:
            node[leaf] = (node[leaf] if isinstance(node[leaf], list) else [node[leaf]]) + [value]
        else:
            node[leaf] = value
    return request


class CallFailed(DmwsiError):
    """A SOAP call answered a fault or did not get through: exit code 2, the message on stderr."""


def _client(args):
    import requests
    from dmwsi.client import soap_client
    url, auth = client_settings(args)
    try:
        return soap_client(url, auth=auth)
    except requests.RequestException as e:
        raise CallFailed(f"error: cannot load the WSDL from {url}: {e}")


# --- how the CLI authenticates ------------------------------------------------

PASSWORD_ENV = "DMWSI_PASSWORD"
PROFILE_KEYS = {"url", "user", "password", "password_env", "cert", "key", "sign_key", "sign_cert", "ca"}
PROFILE_PATHS = ("cert", "key", "sign_key", "sign_cert", "ca")
FALLBACK_URL = "http://127.0.0.1:8080/soap"


def default_profile_path(environ=None):
    """~/.config/dmwsi/profile.toml (or under $XDG_CONFIG_HOME)."""
    import os
    from pathlib import Path
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CONFIG_HOME") or Path(environ.get("HOME") or Path.home()) / ".config"
    return Path(base) / "dmwsi" / "profile.toml"


def load_profile(path, explicit):
    """The settings of a profile file -> dict (paths made absolute). A missing
    default profile is no profile; a missing ``--profile`` is an error."""
    import stat
    import tomllib
    from pathlib import Path
    path = Path(path)
    try:
        with open(path, "rb") as f:
            profile = tomllib.load(f)
    except FileNotFoundError:
        if explicit:
            raise CallFailed(f"error: no profile {path}")
        return {}
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise CallFailed(f"error: cannot read the profile {path}: {e}")
    unknown = set(profile) - PROFILE_KEYS
    if unknown:
        raise CallFailed(f"error: {path}: unknown setting(s) {sorted(unknown)}; known: {sorted(PROFILE_KEYS)}")
    for key, value in profile.items():
        if not isinstance(value, str):
            raise CallFailed(f"error: {path}: {key} must be a string")
    if "password" in profile and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        # A password others can read is no secret: refused, as ssh refuses such keys.
        raise CallFailed(f"error: {path} holds a password and others can read it: chmod 600 it "
                         f"(or use password_env)")
    for key in PROFILE_PATHS:
        if key in profile:
            profile[key] = str((path.parent / Path(profile[key]).expanduser()).resolve())
    return profile


def is_local_url(url):
    """Does ``url`` name this machine (loopback)?"""
    import ipaddress
    from urllib.parse import urlsplit
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_url(config):
    """The SOAP URL of a server running on this machine with ``config``."""
    server = config["server"]
    host = server["host"] if server["host"] not in ("", "0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    for scheme in ("http", "https"):
        if server[f"{scheme}_port"] > 0:
            return f"{scheme}://{host}:{server[f'{scheme}_port']}/{server['soap_path']}"
    return FALLBACK_URL


def client_settings(args, environ=None):
    """(SOAP URL, ClientAuth) from the options, then the profile, then, for a
    server on this machine, what it left in its data directory: the bootstrap
    operator credential (when no credentials are given) and its development
    certificate (as the CA of an https URL)."""
    import os
    from dmwsi.client import ClientAuth
    from dmwsi.security.principals import PolicyError, bootstrap_credential_path, read_bootstrap_credential
    from dmwsi.tls import DEV_CERT
    environ = os.environ if environ is None else environ
    config = _config_from(args)
    explicit = getattr(args, "profile", None)
    profile = load_profile(explicit or default_profile_path(environ), bool(explicit))
    url = getattr(args, "url", None) or getattr(args, "server", None) or profile.get("url") or _local_url(config)

    def pick(name):
        value = getattr(args, name, None)
        return str(value) if value else profile.get(name)

    settings = {name: pick(name) for name in ("user", "cert", "key", "sign_key", "sign_cert", "ca")}
    password = None
    if settings["user"]:
        password = environ.get(PASSWORD_ENV) or environ.get(profile.get("password_env") or PASSWORD_ENV) \
            or profile.get("password") or _prompt_password(settings["user"])
    local = is_local_url(url)
    if local and not (settings["user"] or settings["cert"] or settings["sign_key"]):
        path = bootstrap_credential_path(config)
        if path is not None and os.access(path, os.R_OK):    # another user's server: not ours to use
            try:
                credential = read_bootstrap_credential(path)
            except PolicyError as e:
                raise CallFailed(f"error: {e}")
            if credential is not None:
                settings["user"], password = credential.username, credential.password
    if local and not settings["ca"] and url.startswith("https:") and not config["tls"]["cert_file"]:
        dev_cert = config.data_dir / "tls" / DEV_CERT
        if dev_cert.is_file():
            settings["ca"] = str(dev_cert)
    try:
        return url, ClientAuth(username=settings["user"], password=password, cert=settings["cert"],
                               key=settings["key"], sign_key=settings["sign_key"],
                               sign_cert=settings["sign_cert"], ca=settings["ca"])
    except ValueError as e:
        raise CallFailed(f"error: {e.args[0].replace('_', '-')}")


def _prompt_password(user):
    import getpass
    if not sys.stdin.isatty():
        raise CallFailed(f"error: --user {user} needs a password: set {PASSWORD_ENV} (or password_env in "
                         f"the profile), or run on a terminal to be asked")
    return getpass.getpass(f"password for {user}: ")


def _invoke(client, operation, request):
    """Call ``operation``; the answer as plain dicts and lists. Faults -> CallFailed."""
    import requests
    from zeep.exceptions import Fault
    from zeep.helpers import serialize_object
    try:
        return serialize_object(getattr(client.service, operation)(**request), dict)
    except Fault as fault:
        detail = _fault_detail(fault)
        raise CallFailed(f"fault {detail.get('code', fault.code)}: {detail.get('message', fault.message)}")
    except requests.RequestException as e:
        raise CallFailed(f"error: {operation}: {e}")


def cmd_call(args):
    try:
        client = _client(args)
        answer = _invoke(client, args.operation, parse_assignments(args.params))
        if args.follow:
            return _follow_answer(client, args, answer)
    except CallFailed as e:
        print(e, file=sys.stderr)
        return 2
    except (ValueError, TypeError, AttributeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _print_answer(answer, args.json)
    return 0


def _follow_answer(client, args, answer):
    """``call --follow``: the answer, then its job followed to the end, then the final counts."""
    job_id = answer.get("jobId") if isinstance(answer, dict) else None
    if not job_id:
        _print_answer(answer, args.json)
        raise CallFailed(f"error: {args.operation} answered no jobId to follow")
    if not args.json:
        _print_answer(answer, False)
    job, code = follow_job(client, job_id)
    if args.json:
        print(json.dumps({"response": answer, "job": job}, indent=2, default=str))
    else:
        print(_counts_line(job))
    return code


def _print_answer(answer, as_json):
    if as_json:
        print(json.dumps(answer, indent=2, default=str))
    else:
        _print_table(answer)


def _fault_detail(fault):
    if fault.detail is None:
        return {}
    return {child.tag.split("}")[-1]: child.text for el in fault.detail for child in el}


# --- following a job --------------------------------------------------------

JOB_FINAL_STATES = ("completed", "cancelled", "expired")
SHOWN_COUNTS = ("succeeded", "failed", "refused", "timedOut", "cancelled", "pending", "inSession")
OPEN_COUNTS = ("pending", "inSession")
FOLLOW_INTERVAL = 0.5


def follow_job(client, job_id, interval=FOLLOW_INTERVAL):
    """Poll GetJobStatus with a live progress bar (stderr) until the job is
    final -> (JobInfo, 0); Ctrl-C stops following, not the job -> (last JobInfo, 130)."""
    job = _job_status(client, job_id)
    progress = _job_progress()
    try:
        with progress:
            bar = progress.add_task(job["state"])
            while True:
                _show(progress, bar, job)
                if job["state"] in JOB_FINAL_STATES:
                    return job, 0
                time.sleep(interval)
                job = _job_status(client, job_id)
    except KeyboardInterrupt:
        print(f"stopped following {job_id}; the job goes on", file=sys.stderr)
        return job, 130


def _job_progress():
    """A rich Progress on stderr: state, bar, finished/total, elapsed; the counts on the line below."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    class JobProgress(Progress):
        counts = ""

        def get_renderables(self):
            yield self.make_tasks_table(self.tasks)
            yield self.counts

    return JobProgress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), console=Console(stderr=True), refresh_per_second=4)


def _job_status(client, job_id):
    answer = _invoke(client, "GetJobStatus", {"jobId": job_id})
    return answer.get("job", answer)    # zeep unwraps a response of one element: the JobInfo itself


def _show(progress, bar, job):
    counts = job["counts"]
    done = counts["total"] - sum(counts[k] for k in OPEN_COUNTS)
    progress.counts = " ".join(f"{k}={counts[k]}" for k in SHOWN_COUNTS)
    progress.update(bar, description=job["state"], total=counts["total"], completed=done)


def _counts_line(job):
    counts = job["counts"]
    return f"job {job['jobId']} {job['state']}: total={counts['total']} " + \
        " ".join(f"{k}={counts[k]}" for k in SHOWN_COUNTS)


# --- results ---------------------------------------------------------------

def cmd_results(args):
    """Every per-device result of a job, keyset-paged through GetJobResults."""
    try:
        client = _client(args)
        state, results = job_results(client, args.job_id, args.state, args.page_size)
    except CallFailed as e:
        print(e, file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    else:
        _print_results(args.job_id, state, results)
    return 0


def job_results(client, job_id, states=None, page_size=None):
    """-> (job state, [DeviceResult as dict]) over every page."""
    request = {"jobId": job_id, "states": states or None, "pageSize": page_size}
    results, cursor = [], None
    while True:
        page = _invoke(client, "GetJobResults", {**request, "after": cursor})
        results.extend(page.get("results") or [])
        cursor = page.get("nextCursor")
        if not cursor:
            return page["state"], results


def _print_results(job_id, state, results):
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"job {job_id} ({state}): {len(results)} results", show_header=True,
                  header_style="bold")
    for column in ("device", "state", "status", "message", "items"):
        table.add_column(column)
    for r in results:
        items = "\n".join(f"{i['uri']}={'' if i.get('value') is None else i['value']}"
                          for i in r.get("items") or [])
        table.add_row(r["deviceId"], r["state"], _blank(r.get("statusCode")), _blank(r.get("message")), items)
    Console().print(table)


def _blank(value):
    return "" if value is None else str(value)


def _print_table(value):
    from rich.console import Console
    from rich.table import Table

    rows = []

    def flatten(prefix, v):
        if isinstance(v, dict):
            for k, sub in v.items():
                flatten(f"{prefix}.{k}" if prefix else k, sub)
        elif isinstance(v, list):
            for i, sub in enumerate(v):
                flatten(f"{prefix}[{i}]", sub)
        elif v is not None:
            rows.append((prefix, str(v)))

    flatten("", value)
    table = Table(show_header=True, header_style="bold")
    table.add_column("field")
    table.add_column("value")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


def cmd_jobs(args):
    from dmwsi.store import open_store
    config = _config_from(args)
    store = open_store(config.data_path(config["store"]["path"]))
    try:
        if args.job_id:
            job = store.get_job(args.job_id)
            if job is None:
                print(f"no job {args.job_id}", file=sys.stderr)
                return 1
            print(json.dumps({"job": _record(job), "counts": store.job_counts(args.job_id)}, indent=2, default=str))
        else:
            jobs, _ = store.list_jobs(limit=args.limit)
            for job in jobs:
                counts = store.job_counts(job.job_id)
                print(f"{job.job_id}  {job.state:<10} {job.operation:<22} {job.principal:<16} "
                      + " ".join(f"{k}={v}" for k, v in counts.items() if v))
    finally:
        store.close()
    return 0


def _record(record):
    from dataclasses import asdict
    return asdict(record)


def cmd_sim(args):
    """Run a simulated device fleet against a dmwsi server until Ctrl-C (or --once)."""
    from rich.console import Console
    from rich.live import Live
    from twisted.internet import defer, reactor, task

    from dmwsi.sim.fleet import Fleet, derive_dm_url, load_sim_config

    try:
        sim_config = load_sim_config(args.sim_config)
    except (OSError, ValueError, TypeError) as e:
        print(f"simulator configuration error: {e}", file=sys.stderr)
        return 2
    try:
        server, auth = client_settings(args)
    except CallFailed as e:
        print(e, file=sys.stderr)
        return 2
    dm_url = args.dm_url or derive_dm_url(server)
    fleet = Fleet(sim_config, args.devices, dm_url, reactor=reactor)
    port = fleet.listen(args.listen_port, args.listen_host)
    console = Console(stderr=True)
    console.print(f"{len(fleet.devices)} devices, DM {dm_url}, "
                  f"notifications on {fleet.notify_base_url}/notify/<device id> (port {port.getHost().port})")
    live = Live(fleet.summary_line(), console=console, refresh_per_second=4, transient=False)
    ticker = task.LoopingCall(lambda: live.update(fleet.summary_line()))
    state = {"code": 0}

    @defer.inlineCallbacks
    def run():
        try:
            if args.register:
                ok, failed = yield fleet.register(server, auth=auth)
                if failed and not ok:
                    state["code"] = 1
                    for line in fleet.last_errors[-3:]:
                        console.print(f"[red]{line}[/red]")
                    return
            if args.once:
                yield fleet.start_client_sessions()
                summary = fleet.summary()
                # Drops and aborts are simulated behaviours; failures are not.
                state["code"] = 1 if summary["failed"] or summary["timeouts"] or summary["http_errors"] else 0
                reactor.stop()
        except Exception as e:
            console.print(f"[red]error: {e}[/red]")
            state["code"] = 1
            reactor.stop()

    def start():
        live.start()
        ticker.start(1.0)
        run()

    def shutdown():
        if ticker.running:
            ticker.stop()
        live.update(fleet.summary_line())
        live.stop()
        return fleet.close()

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    reactor.run()
    for line in fleet.last_errors[-5:]:
        console.print(f"[yellow]{line}[/yellow]")
    return state["code"]


URL_HELP = ("SOAP endpoint (default: the profile's url, else this machine's server from the "
            "configuration, http://127.0.0.1:8080/soap by default)")


def _auth_options():
    """Credentials of call, results and sim (docs/security.rst, "The command line")."""
    auth = argparse.ArgumentParser(add_help=False)
    group = auth.add_argument_group(
        "credentials", f"default: the profile, else for a server on this machine its bootstrap operator "
                       f"credential; the password of --user comes from ${PASSWORD_ENV}, the profile or a prompt")
    group.add_argument("--profile", metavar="PATH",
                       help="profile file (TOML: url, user, password_env, password, cert, key, sign_key, "
                            "sign_cert, ca); default ~/.config/dmwsi/profile.toml if it exists")
    group.add_argument("--user", help="WS-Security UsernameToken user (PasswordDigest)")
    group.add_argument("--cert", metavar="PEM", help="TLS client certificate (mutual TLS), with --key")
    group.add_argument("--key", metavar="PEM", help="private key of --cert")
    group.add_argument("--sign-key", metavar="PEM", help="sign requests (WS-Security X.509, RSA-SHA256) with this key")
    group.add_argument("--sign-cert", metavar="PEM", help="certificate of --sign-key, sent with each request")
    group.add_argument("--ca", metavar="PEM", help="CA bundle the server's certificate must chain to "
                                                   "(default: system CAs; a local server's development certificate)")
    return auth


def build_parser():
    parser = argparse.ArgumentParser(prog="dmwsi", description=__doc__)
    parser.add_argument("--config", help="configuration file (TOML); defaults to conf/dmwsi.toml")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host")
    serve.add_argument("--http-port", type=int)
    serve.add_argument("--https-port", type=int)
    serve.add_argument("--data-dir")
    serve.add_argument("--dev", action="store_true",
                       help="development: accept requests without credentials (security.allow_anonymous)")
    serve.set_defaults(func=cmd_serve)

    auth = _auth_options()
    call = sub.add_parser("call", parents=[auth], help="call a SOAP operation: dmwsi call GetJobStatus jobId=J1")
    call.add_argument("operation")
    call.add_argument("params", nargs="*", metavar="key=value")
    call.add_argument("--url", help=URL_HELP)
    call.add_argument("--json", action="store_true", help="print JSON instead of a table")
    call.add_argument("--follow", action="store_true",
                      help="follow the job the call answers (GetJobStatus every 0.5 s, a progress bar) "
                           "until it is final; Ctrl-C stops following, not the job (exit 130). "
                           "With --json, prints {response, job} once the job is final")
    call.set_defaults(func=cmd_call)

    results = sub.add_parser("results", parents=[auth], help="print a job's per-device results (every page of GetJobResults)")
    results.add_argument("job_id", metavar="JOBID")
    results.add_argument("--url", help=URL_HELP)
    results.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    results.add_argument("--state", action="append", metavar="STATE",
                         help="only results in this target state (repeatable); default: every final state")
    results.add_argument("--page-size", type=int, help="results per GetJobResults page (server default: 100)")
    results.set_defaults(func=cmd_results)

    sim = sub.add_parser("sim", parents=[auth], help="run a simulated device fleet against a server")
    sim.add_argument("--devices", type=int, default=10, help="number of devices (split by class share)")
    sim.add_argument("--server", help="SOAP URL of the server RegisterDevice goes to; " + URL_HELP)
    sim.add_argument("--dm-url", help="DM URL (default: the SOAP host with path /dm)")
    sim.add_argument("--listen-port", type=int, default=9090, help="port for package 0 POSTs (0: any)")
    sim.add_argument("--listen-host", default="127.0.0.1")
    sim.add_argument("--config", dest="sim_config", default=None,
                     help="fleet configuration (TOML); defaults to conf/sim.toml")
    sim.add_argument("--register", action=argparse.BooleanOptionalAction, default=True,
                     help="register every device with RegisterDevice first")
    sim.add_argument("--once", action="store_true", help="one client-initiated session per device, then exit")
    sim.set_defaults(func=cmd_sim)

    jobs = sub.add_parser("jobs", help="list jobs in the store, or show one")
    jobs.add_argument("job_id", nargs="?")
    jobs.add_argument("--data-dir")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.set_defaults(func=cmd_jobs)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args) or 0
    except ConfigError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
