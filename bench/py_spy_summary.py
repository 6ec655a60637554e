"""Where a SOAP request's time goes, from a ``py-spy record -f raw`` profile.

Counts the samples of stacks under ``SoapApplication.handle_rpc`` (the SOAP
worker thread) and attributes each to the first matching part below, in
order; the rest is ``other`` (spyne's envelope parsing, dispatch, response).

    py-spy record -f raw -o /tmp/bulk.raw -- python bench/bench_bulk_submit.py 100000 --repeat 1
    python bench/py_spy_summary.py /tmp/bulk.raw [--rate 100]

With ``--under FUNC`` the samples under another function (e.g. ``read_store``
of bench_results_paging.py) are grouped instead by the ``--depth`` frames
below it (function and line), without the parts above.

    python bench/py_spy_summary.py /tmp/paging.raw --rate 500 --under read_store --depth 3
"""

from __future__ import annotations

import argparse
import collections
import re

PARTS = [
    ("spyne: deserialize the request (Soap11.deserialize)", "Soap11.deserialize"),
    ("spyne: parse the envelope (Soap11.create_in_document)", "Soap11.create_in_document"),
    ("store.create_job", "SQLiteStore.create_job"),
    ("store.known_device_ids", "SQLiteStore.known_device_ids"),
    ("jobs.submit.submit: a JobTarget per device", "submit (dmwsi/jobs/submit.py:71)"),
    ("jobs.submit.submit: COMMIT", "SQLiteStore.transaction"),
    ("store.job_counts (the answer's counts)", "SQLiteStore.job_counts"),
]
REQUEST = "SoapApplication.handle_rpc"


def summarize(lines, rate):
    parts, total = collections.Counter(), 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        if REQUEST not in stack:
            continue
        count = int(count)
        total += count
        parts[next((name for name, key in PARTS if key in stack), "other")] += count
    return total, parts


def group_below(lines, under, depth):
    """Samples under ``under`` by the ``depth`` frames below it."""
    parts, total = collections.Counter(), 0
    for line in lines:
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        at = next((i for i, f in enumerate(frames) if f.startswith(under + " ")), None)
        if at is None:
            continue
        count = int(count)
        total += count
        below = [re.sub(r" \((?:.*/)?", "(", f) for f in frames[at + 1:at + 1 + depth]]
        parts[" > ".join(below) or "(itself)"] += count
    return total, parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw")
    parser.add_argument("--rate", type=float, default=100, help="py-spy sampling rate (-r), samples/s")
    parser.add_argument("--under", help="group the samples under this function by the frames below it")
    parser.add_argument("--depth", type=int, default=2)
    args = parser.parse_args()
    with open(args.raw) as f:
        lines = f.read().splitlines()
    if args.under:
        total, parts = group_below(lines, args.under, args.depth)
    else:
        total, parts = summarize(lines, args.rate)
    if not total:
        raise SystemExit(f"no samples under {args.under or REQUEST}")
    print(f"{args.under or REQUEST}: {total} samples = {total / args.rate:.2f} s (profiled)")
    for name, count in parts.most_common():
        print(f"{count / args.rate:6.2f} s {count / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
