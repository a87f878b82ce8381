"""What a table mixing every schedule kind costs the op, next to the example's four tml kinds.

One process, one build, candidates alternated round-robin (:func:`fusedsched.tools.bench.alternate`):
for each group count, ``scheduler.step()`` of a device-mode ``LRShim`` whose groups cycle through
(a) the bundled example's four tml schedules, (b) ``MIXED``, one schedule of every kind with phases
of the same length as the example's (tens to hundreds of steps). As in ``fusedsched bench`` the
step counter advances on every call (so most steps lie past the schedules' ends, where periodic
and unbounded kinds still compute a cos / pow / sqrt). ``--at`` also times the op alone
(``increment = 0``) at fixed steps, e.g. inside every schedule's active phase.

Reported per table: the fixed cost (1 group) and the per-group cost (slope from 1 to the largest
group count), and the mixed / tml ratios. Run from the repository root::

    python benchmarks/mixed_kinds.py --json benchmarks/results/mixed-kinds-cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from fusedsched import LearningRate
from fusedsched.schedule.kinds import build_table
from fusedsched.tools import bench

MIXED = [
    LearningRate(**kind) for kind in [
        {"constant": 1e-3},
        {"piecewise_constant": {"learning_rate_boundaries": [60, 150, 240], "learning_rate_values": [1e-3, 5e-4, 2.5e-4, 1e-4]}},
        {"linear_ramp_to_constant": {"learning_rate": 1.5e-3, "num_ramp_steps": 50}},
        {"linear_ramp_to_cosine": {"learning_rate": 1e-3, "final_learning_rate": 1e-4, "num_ramp_steps": 40, "final_num_steps": 250}},
        {"exponential_decay": {"learning_rate": 1e-3, "decay_rate": 0.5, "decay_steps": 50, "num_ramp_steps": 20, "end_learning_rate": 1e-5}},
        {"polynomial_decay": {"learning_rate": 1e-3, "end_learning_rate": 1e-5, "num_ramp_steps": 20, "final_num_steps": 250, "power": 2.0}},
        {"warmup_stable_decay": {"learning_rate": 1e-3, "final_learning_rate": 1e-5, "num_ramp_steps": 20, "num_stable_steps": 100, "num_decay_steps": 130}},
        {"cosine_annealing": {"learning_rate": 1e-3, "final_learning_rate": 1e-5, "num_steps": 250}},
        {"cosine_with_restarts": {"learning_rate": 1e-3, "final_learning_rate": 1e-5, "num_ramp_steps": 20, "cycle_steps": 50, "cycle_mult": 2, "cycle_decay": 0.8}},
        {"one_cycle": {"max_learning_rate": 1e-3, "total_steps": 250}},
        {"inverse_sqrt": {"learning_rate": 1e-3, "num_ramp_steps": 20}},
        {"join": {"schedules": [
            {"linear_ramp_to_constant": {"learning_rate": 1e-3, "num_ramp_steps": 20}},
            {"exponential_decay": {"learning_rate": 1e-3, "decay_rate": 0.5, "decay_steps": 50, "end_learning_rate": 1e-5}},
        ], "boundaries": [20]}},
        {"product": {"schedules": [
            {"linear_ramp_to_constant": {"learning_rate": 1.0, "num_ramp_steps": 20}},
            {"cosine_annealing": {"learning_rate": 1e-3, "final_learning_rate": 1e-5, "num_steps": 250}},
        ]}},
    ]
]
assert {c.kind for c in MIXED} == set(LearningRate.KINDS)

TABLES = {"tml (4 kinds)": bench.example_schedules(), f"mixed ({len(MIXED)} kinds)": MIXED}


def cycled(schedules, groups):
    return [schedules[i % len(schedules)] for i in range(groups)]


def scheduler_rows(groups_list, device, rounds, target_s):
    rows = []
    for groups in groups_list:
        cands = {}
        for name, schedules in TABLES.items():
            ((backend, step),) = bench.scheduler_candidates(
                cycled(schedules, groups), device, names=[bench.fused_name("native")]).values()
            cands[name] = step
        timings = bench.alternate(cands, device, rounds, target_s)
        rows += [{"table": name, "groups": groups, "mode": "scheduler.step()", **t.as_us()} for name, t in timings.items()]
    return rows


def op_rows(groups_list, steps, device, rounds, target_s):
    op = torch.ops.fusedsched.advance_native_.default
    rows = []
    for at in steps:
        for groups in groups_list:
            cands = {}
            for name, schedules in TABLES.items():
                table = build_table(cycled(schedules, groups), device).table
                lrs = torch.zeros(groups, dtype=torch.float32, device=device)
                step = torch.tensor(at, dtype=torch.int64, device=device)
                cands[name] = (lambda step=step, table=table, lrs=lrs: op(step, table, lrs, 0))
            timings = bench.alternate(cands, device, rounds, target_s)
            rows += [{"table": name, "groups": groups, "mode": f"op at step {at}", **t.as_us()} for name, t in timings.items()]
    return rows


def each_kind_rows(steps, device, groups=10_000, rounds=5):
    """Each ``MIXED`` schedule alone, ``groups`` copies, op at fixed steps: ns per group (indicative:
    the kinds are timed one after the other, not alternated)."""
    op = torch.ops.fusedsched.advance_native_.default
    rows = []
    for at in steps:
        for cfg in MIXED:
            cands = {}
            for n in (1, groups):
                table = build_table([cfg] * n, device).table
                lrs = torch.zeros(n, dtype=torch.float32, device=device)
                step = torch.tensor(at, dtype=torch.int64, device=device)
                cands[n] = (lambda step=step, table=table, lrs=lrs: op(step, table, lrs, 0))
            t = bench.alternate(cands, device, rounds, 0.02)
            rows.append({"kind": cfg.kind, "step": at, "per_group_ns": (t[groups].median - t[1].median) / (groups - 1) * 1e9})
    return rows


def summary(rows):
    out = []
    for mode in dict.fromkeys(r["mode"] for r in rows):
        per = {}
        for name in TABLES:
            t = {r["groups"]: r["median_us"] for r in rows if r["mode"] == mode and r["table"] == name}
            lo, hi = min(t), max(t)
            per[name] = {"fixed_us": t[lo], "per_group_ns": (t[hi] - t[lo]) / (hi - lo) * 1e3}
        tml, mixed = per.values()
        out.append({"mode": mode, **{f"{n}: {k}": v for n, d in per.items() for k, v in d.items()},
                    "fixed ratio": mixed["fixed_us"] / tml["fixed_us"],
                    "per-group ratio": mixed["per_group_ns"] / tml["per_group_ns"]})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default="1,10,100,1000,10000")
    parser.add_argument("--at", default="100,1000000", help="fixed steps for the op-alone timing ('' to skip)")
    parser.add_argument("--each", default="", help="fixed steps at which to time each kind alone ('' to skip)")
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    reason = bench.unavailable_reason("native", device)
    if reason:
        print(f"the native backend is unavailable: {reason}", file=sys.stderr)
        return 1
    groups = [int(g) for g in args.groups.split(",")]
    rows = scheduler_rows(groups, device, args.rounds, 0.02)
    if args.at:
        rows += op_rows(groups, [int(s) for s in args.at.split(",")], device, args.rounds, 0.02)
    result = {"stamp": bench.stamp(device), "rows": rows, "summary": summary(rows)}
    if args.each:
        result["each_kind"] = each_kind_rows([int(s) for s in args.each.split(",")], device)
    s = result["stamp"]
    print(f"device {s['device']} ({s['device_name']}), torch {s['torch']}, python {s['python']}, "
          f"commit {s['commit']}{' (dirty tree)' if s['dirty'] else ''}, {s['threads']} threads, "
          f"{args.rounds} alternated rounds, median per call")
    for row in result["summary"]:
        print(f"{row['mode']}:")
        for name in TABLES:
            print(f"  {name:<16} fixed {row[f'{name}: fixed_us']:.3g} us, per group {row[f'{name}: per_group_ns']:.3g} ns")
        print(f"  mixed / tml: fixed {row['fixed ratio']:.3g}x, per group {row['per-group ratio']:.3g}x")
    for row in result.get("each_kind", []):
        print(f"  alone at step {row['step']}: {row['kind']:<24} {row['per_group_ns']:.3g} ns per group")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
