"""What scheduling four hyperparameters beside ``lr`` costs a device-mode ``scheduler.step()``.

One process, one build, candidates alternated round-robin (:func:`fusedsched.tools.bench.alternate`):
``LRShim.step()`` in device mode (native backend) over a ``GraphSafeAdamW`` with 1 and N groups,
(a) ``lr`` only, (b) ``lr`` plus ``weight_decay``, ``beta1``, ``beta2`` and ``eps`` per group (five
rows per group in the same table, one launch), every row from the bundled example's tml schedules.
Reported: the fixed cost (1 group), the per-group cost (slope from 1 to N groups) and the
four-hyperparameter / lr-only per-group ratio (target: at most 2x). Run from the repository root::

    python benchmarks/hyperparameters.py --json benchmarks/results/hyperparameters-cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import torch

from fusedsched import GraphSafeAdamW, LRShim
from fusedsched.tools import bench

KEYS = ("weight_decay", "beta1", "beta2", "eps")


def step_of(groups: int, hyperparameters: bool, device: torch.device):
    schedules = bench.example_schedules()
    params = [torch.nn.Parameter(torch.zeros(1, device=device)) for _ in range(groups)]
    opt = GraphSafeAdamW([{"params": [p], "name": f"g{i}"} for i, p in enumerate(params)], lr=0.0)
    lr_dict = {f"g{i}": schedules[i % len(schedules)] for i in range(groups)}
    hyper = {f"g{i}": {k: schedules[(i + j + 1) % len(schedules)] for j, k in enumerate(KEYS)}
             for i in range(groups)} if hyperparameters else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shim = LRShim(opt, lr_dict, device_schedule=True, backend="native", hyperparameters=hyper)
    return shim.step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    device = torch.device("cpu")
    reason = bench.unavailable_reason("native", device)
    if reason:
        print(f"the native backend is unavailable: {reason}", file=sys.stderr)
        return 1
    n = args.groups
    cands = {(label, g): step_of(g, hyper, device)
             for label, hyper in (("lr only", False), ("lr + 4 hyperparameters", True)) for g in (1, n)}
    timings = bench.alternate({f"{label}, {g} groups": fn for (label, g), fn in cands.items()}, device, args.rounds, 0.02)
    rows = [{"candidate": name, **t.as_us()} for name, t in timings.items()]
    per = {}
    for label in ("lr only", "lr + 4 hyperparameters"):
        lo, hi = timings[f"{label}, 1 groups"].median, timings[f"{label}, {n} groups"].median
        per[label] = {"fixed_us": lo * 1e6, "per_group_ns": (hi - lo) / (n - 1) * 1e9}
    ratio = per["lr + 4 hyperparameters"]["per_group_ns"] / per["lr only"]["per_group_ns"]
    for row in rows:
        print(f"{row['candidate']:>40}: {row['median_us']:9.2f} us (p10 {row['p10_us']:.2f}, p90 {row['p90_us']:.2f})")
    for label, d in per.items():
        print(f"{label:>40}: fixed {d['fixed_us']:.2f} us, per group {d['per_group_ns']:.1f} ns")
    print(f"per-group ratio (4 hyperparameters / lr only): {ratio:.2f}x (target <= 2x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
                       "groups": n, "rows": rows, "per_group": per, "ratio": ratio}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
