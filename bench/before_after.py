"""The same benches on two checkouts, interleaved, on one machine.

Copies this directory's bench scripts into ``<tree>/bench/`` of each tree
(so both run the same bench code against their own ``dmwsi``), then runs
bulk submission and results paging alternately -- before, after; after,
before; ... -- ``--rounds`` times, so load from other work on the machine
falls on both alike. Prints, per measure, the median time and the median
ratio to the floor of the same repeat, before and after, over every repeat
of every round.

    git worktree add /tmp/before 6986da3; git worktree add /tmp/after 9a27cf4
    python bench/before_after.py --before /tmp/before --after /tmp/after [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ["bench_bulk_submit.py", "bench_results_paging.py", "compat.py"]


def run(tree: Path, script: str, *args: str) -> dict:
    cmd = [sys.executable, str(tree / "bench" / script), *args, "--json"]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    line = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {line['version']:>14} {script} load {line['load']:.1f}", file=sys.stderr, flush=True)
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bulk-n", default="100000")
    parser.add_argument("--paging-n", default="10000")
    parser.add_argument("--repeat", default="3")
    parser.add_argument("--skip-bulk", action="store_true")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for tree in trees.values():
        if tree != HERE.parent:
            for script in SCRIPTS:
                shutil.copy2(HERE / script, tree / "bench" / script)
    benches = [("bench_results_paging.py", args.paging_n)]
    if not args.skip_bulk:
        benches.insert(0, ("bench_bulk_submit.py", args.bulk_n))
    lines: dict[tuple[str, str], list[dict]] = {}
    for r in range(args.rounds):
        order = ["before", "after"] if r % 2 == 0 else ["after", "before"]
        print(f"round {r + 1}: {' then '.join(order)}", file=sys.stderr, flush=True)
        for script, n in benches:
            for side in order:
                lines.setdefault((script, side), []).append(run(trees[side], script, n, "--repeat", args.repeat))
    versions = {side: lines[benches[0][0], side][0]["version"] for side in trees}
    loads = [line["load"] for ls in lines.values() for line in ls]
    print(f"before = {versions['before']}, after = {versions['after']}; {args.rounds} rounds, interleaved; "
          f"load average (1 min) at the end of each run {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores")
    print()
    print("| measure | before: median | after: median | after/before | before: ratio to floor | "
          "after: ratio to floor |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for script, n in benches:
        keys = [k for k in lines[script, "before"][0]["times"] if not k.startswith("floor")]
        readers = ["floor", "store", "shaped", "soap"]
        for key in ["floor"] + keys if script == "bench_bulk_submit.py" else sorted(
                lines[script, "before"][0]["times"],
                key=lambda k: (int(k.split("/")[1]), readers.index(k.split("/")[0]))):
            floor_key = "floor" if script == "bench_bulk_submit.py" else "floor/" + key.split("/")[1]
            med, ratio = {}, {}
            for side in trees:
                ts = [t for line in lines[script, side] for t in line["times"][key]]
                fs = [f for line in lines[script, side] for f in line["times"][floor_key]]
                med[side] = statistics.median(ts)
                ratio[side] = statistics.median(t / f for t, f in zip(ts, fs))
            name = f"{script.removeprefix('bench_').removesuffix('.py')} N={n} {key}"
            print(f"| {name} | {med['before']:.3f} s | {med['after']:.3f} s | {med['after'] / med['before']:.2f} | "
                  f"{ratio['before']:.2f} | {ratio['after']:.2f} |")
    print()
    print(json.dumps({f"{s}|{side}": ls for (s, side), ls in lines.items()}))


if __name__ == "__main__":
    main()
