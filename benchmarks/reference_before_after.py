"""The ``reference`` backend on CPU before and after, side by side in one run, next to native and LambdaLR.

"Before" is the evaluator of an earlier ``program.py`` (default: commit ``aa88f49``'s, read with
``git show``), loaded as a module of its own, run the way ``LRShim`` ran the reference backend then:
through the custom op ``fusedsched::advance_`` (registered here under the backend name
``old-reference``), whose body was ``step.add_(increment); lrs.copy_(evaluate_table(table, step))``.
"After" is this tree's ``LRShim(..., backend="reference").step``. Every candidate is a device-mode
``LRShim`` (or ``LambdaLR``) built by :func:`fusedsched.tools.bench.scheduler_candidates` on the schedules
of ``fusedsched bench``'s regimes, from step :data:`fusedsched.tools.bench.START_STEP`, alternated
round-robin (:func:`fusedsched.tools.bench.alternate`). Reported per regime: the medians, and the reference
targets (fixed cost at most 10x native's, per-group cost at most 5x native's at 1,000 and 10,000
groups, never slower than LambdaLR at 1 group). Run from the repository root::

    python benchmarks/reference_before_after.py --json benchmarks/results/reference-cpu.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from fusedsched.ops import advance as advance_module
from fusedsched.ops import advance_op
from fusedsched.tools import bench

OLD, NEW, NATIVE = "reference before", "reference after", "native"
NAMES = {bench.fused_name("native"): NATIVE, bench.fused_name("reference"): NEW, bench.LAMBDA_FLOAT: bench.LAMBDA_FLOAT}


def load_old_program(commit: str, path: str | None):
    """The earlier ``program.py`` as the module ``fusedsched._program_before``."""
    if path is None:
        text = subprocess.run(["git", "show", f"{commit}:src/fusedsched/program.py"], check=True,
                              capture_output=True, text=True).stdout
        path = str(Path(tempfile.mkdtemp()) / "program_before.py")
        Path(path).write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("fusedsched._program_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def candidates(old, regime: str, groups: int) -> dict:
    schedules = bench.regime_schedules(regime, groups)
    cands = bench.scheduler_candidates(schedules, "cpu", names=list(NAMES), start=bench.START_STEP)
    out = {NAMES[name]: fn for name, (_, fn) in cands.items()}
    (_, before), = bench.scheduler_candidates(schedules, "cpu", names=[bench.fused_name("reference")],
                                              start=bench.START_STEP).values()
    shim = before.__self__
    shim._advance = lambda step, table, lrs, increment: advance_op(step, table, lrs, increment, "old-reference")
    out[OLD] = before
    return out


def summary(rows: list[dict]) -> dict:
    t = {(r["candidate"], r["groups"]): r["median_us"] for r in rows}
    out = {"fixed_vs_native": t[(NEW, 1)] / t[(NATIVE, 1)], "before_fixed_vs_native": t[(OLD, 1)] / t[(NATIVE, 1)],
           "vs_lambdalr_float_at_1": t[(NEW, 1)] / t[(bench.LAMBDA_FLOAT, 1)]}
    for n in sorted({g for _, g in t if g > 1}):
        native = (t[(NATIVE, n)] - t[(NATIVE, 1)]) / (n - 1)
        out[f"per_group_vs_native_at_{n}"] = (t[(NEW, n)] - t[(NEW, 1)]) / (n - 1) / native
        out[f"before_per_group_vs_native_at_{n}"] = (t[(OLD, n)] - t[(OLD, 1)]) / (n - 1) / native
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="aa88f49", help="the commit whose program.py is 'before'")
    parser.add_argument("--before-file", default=None, help="a program.py file to use as 'before' instead")
    parser.add_argument("--groups", default="1,1000,10000")
    parser.add_argument("--rounds", type=int, default=bench.ROUNDS)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    old = load_old_program(args.before, args.before_file)

    def old_launch(step, table, lrs, increment):
        step.add_(increment)
        lrs.copy_(old.evaluate_table(table, step))

    advance_module._LAUNCHERS["old-reference"] = old_launch
    groups = [int(g) for g in args.groups.split(",")]
    s = bench.stamp("cpu")
    print(f"device cpu ({s['device_name']}), torch {s['torch']}, python {s['python']}, commit {s['commit']}"
          f"{' (dirty tree)' if s['dirty'] else ''}, {s['threads']} threads; before: program.py of "
          f"{args.before_file or args.before}; {args.rounds} alternated rounds of about {bench.BATCH_S * 1e3:g} ms, "
          f"LRShim.step() / LambdaLR.step() median per call, from step {bench.START_STEP}")
    result = {"stamp": s, "before": args.before_file or args.before, "rounds": args.rounds, "rows": [], "summary": {}}
    for regime in bench.REGIMES:
        rows = []
        for n in groups:
            timings = bench.alternate(candidates(old, regime, n), "cpu", args.rounds, bench.BATCH_S)
            rows += [{"regime": regime, "candidate": name, "groups": n, **t.as_us()} for name, t in timings.items()]
        result["rows"] += rows
        result["summary"][regime] = summary(rows)
        print(f"schedules {regime}:")
        for r in rows:
            print(f"  {r['groups']:>6} {r['candidate']:<17} {r['median_us']:9.3g} us  (p10-p90 {r['p10_us']:.3g}-{r['p90_us']:.3g})")
        for key, value in result["summary"][regime].items():
            print(f"  {key}: {value:.3g}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
