"""The ``dmwsi`` command: serve, call an operation, inspect jobs."""
import argparse
import json
import logging
import sys

from dmwsi.config import ConfigError, load_config


def _config_from(args):
    server = {}
    for key in ("host", "http_port", "https_port", "data_dir"):
        value = getattr(args, key, None)
        if value is not None:
            server[key] = value
    return load_config(args.config, overrides={"server": server} if server else None)


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


def cmd_call(args):
    import zeep
    from zeep.exceptions import Fault
    from zeep.helpers import serialize_object
    from dmwsi.client import soap_client

    client = soap_client(args.url)
    try:
        request = parse_assignments(args.params)
        result = getattr(client.service, args.operation)(**request)
    except Fault as fault:
        detail = _fault_detail(fault)
        print(f"fault {detail.get('code', fault.code)}: {detail.get('message', fault.message)}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, AttributeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    plain = serialize_object(result, dict)
    if args.json:
        print(json.dumps(plain, indent=2, default=str))
    else:
        _print_table(plain)
    return 0


def _fault_detail(fault):
    if fault.detail is None:
        return {}
    return {child.tag.split("}")[-1]: child.text for el in fault.detail for child in el}


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
    dm_url = args.dm_url or derive_dm_url(args.server)
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
                ok, failed = yield fleet.register(args.server)
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
    serve.set_defaults(func=cmd_serve)

    call = sub.add_parser("call", help="call a SOAP operation: dmwsi call GetJobStatus jobId=J1")
    call.add_argument("operation")
    call.add_argument("params", nargs="*", metavar="key=value")
    call.add_argument("--url", default="http://127.0.0.1:8080/soap", help="SOAP endpoint")
    call.add_argument("--json", action="store_true", help="print JSON instead of a table")
    call.set_defaults(func=cmd_call)

    sim = sub.add_parser("sim", help="run a simulated device fleet against a server")
    sim.add_argument("--devices", type=int, default=10, help="number of devices (split by class share)")
    sim.add_argument("--server", default="http://127.0.0.1:8080/soap", help="SOAP URL of the server")
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
