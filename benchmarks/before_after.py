"""One benchmark run on two checkouts, alternated, medians side by side: what a change costs.

Each round runs ``benchmarks/clock_paths.py`` (the ``step()`` rows: the plain step, a found_inf flag,
a GradScaler, an amount tensor, a plateau's metric) in the ``before`` checkout and then in the
``after`` one, each in a fresh process on its own sources and built extension; the two alternate
so that a noisy neighbour hits them alike. Reported per (groups, candidate): the median of the
rounds' medians in each checkout and after / before. Run from the repository root::

    python benchmarks/before_after.py --before ../old-checkout --after . --rounds 3 --json out.json

Both checkouts need their extension built in place (``python setup.py build_ext --inplace``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def _run(root: Path, args: argparse.Namespace) -> tuple[dict, list[dict]]:
    with tempfile.TemporaryDirectory() as out:
        path = Path(out) / "run.json"
        env = dict(os.environ, PYTHONPATH=str(root / "src"))
        subprocess.run([sys.executable, str(root / "benchmarks" / "clock_paths.py"), "--backend", args.backend,
                        "--rounds", str(args.inner_rounds), "--calls", str(args.calls), "--json", str(path),
                        "--groups", *map(str, args.groups)],
                       cwd=root, env=env, check=True, capture_output=True, text=True)
        data = json.loads(path.read_text())
    return data["meta"], [r for r in data["rows"] if r["candidate"].startswith("step(")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the checkout before the change")
    parser.add_argument("--after", type=Path, default=Path("."), help="the checkout after it (default: here)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated runs of each checkout")
    parser.add_argument("--inner-rounds", type=int, default=5, help="clock_paths.py's own rounds per run")
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 1000])
    parser.add_argument("--backend", default="native")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    medians: dict[str, dict[tuple[int, str], list[float]]] = {"before": {}, "after": {}}
    metas = {}
    for _ in range(args.rounds):
        for side, root in (("before", args.before), ("after", args.after)):
            metas[side], rows = _run(root.resolve(), args)
            for r in rows:
                medians[side].setdefault((r["groups"], r["candidate"]), []).append(r["median_us"])
    print(json.dumps(metas))
    print("| groups | candidate | before (us) | after (us) | after / before |\n| --- | --- | --- | --- | --- |")
    table = []
    for key in medians["after"]:
        if key not in medians["before"]:
            continue
        before, after = (statistics.median(medians[side][key]) for side in ("before", "after"))
        table.append({"groups": key[0], "candidate": key[1], "before_us": round(before, 3),
                      "after_us": round(after, 3), "ratio": round(after / before, 3)})
        print(f"| {key[0]:,} | {key[1]} | {before:.2f} | {after:.2f} | {after / before:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": metas, "rounds": args.rounds, "rows": table}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
