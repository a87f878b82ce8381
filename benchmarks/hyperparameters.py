"""What scheduling four hyperparameters beside ``lr`` costs a device-mode ``scheduler.step()``, with
the rows of equal schedules shared by the groups (after) and one row per group (before).

One process, one build, candidates alternated round-robin (:func:`fusedsched.tools.bench.alternate`):
``LRShim.step()`` in device mode (native backend) over a ``GraphSafeAdamW`` with 1 and N groups,
``lr`` only, or ``lr`` plus ``weight_decay``, ``beta1``, ``beta2`` and ``eps`` per group (every
schedule one of the bundled example's tml schedules) in three layouts:

- ``same``: every group's hyperparameter on the same schedule (every group's beta1 on one momentum
  cycle, every weight decay on one increment): 4 rows in all when shared;
- ``cycled``: group i's j-th hyperparameter on example schedule (i + j + 1) mod 4 (the layout this
  benchmark measured first): 16 rows in all when shared;
- ``distinct``: ``same`` with a multiplier of its own for each group and key (layer-wise
  ``wd_mult``): nothing to share, 4 rows per group either way.

"before" builds each scheduler with ``hyperparameters.rows(share=False)``, one row per group and
hyperparameter, the layout before rows were shared; "after" is ``LRShim`` as it is. Also timed: the
native op alone over the same tables (``op``), to see where the time goes. Reported: each
candidate's fixed cost (1 group), per-group cost (slope from 1 to N groups) and per-group ratio to
lr only (target: at most 2x). Run from the repository root::

    python benchmarks/hyperparameters.py --json benchmarks/results/hyperparameters-shared-cpu.json
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import warnings
from unittest import mock

import torch

from fusedsched import GraphSafeAdamW, LRShim
from fusedsched.ops import bind
from fusedsched.shim import contract, hyperparameters
from fusedsched.tools import bench

KEYS = ("weight_decay", "beta1", "beta2", "eps")
LAYOUTS = ("same", "cycled", "distinct")


def build(groups: int, layout: str | None, share: bool, device: torch.device) -> LRShim:
    """The scheduler of one candidate (``layout`` None: lr only)."""
    schedules = bench.example_schedules()
    params = [torch.nn.Parameter(torch.zeros(1, device=device)) for _ in range(groups)]
    opt = GraphSafeAdamW([{"params": [p], "name": f"g{i}"} for i, p in enumerate(params)], lr=0.0)
    lr_dict = {f"g{i}": schedules[i % len(schedules)] for i in range(groups)}
    hyper = mults = None
    if layout is not None:
        cycled = layout == "cycled"
        hyper = {f"g{i}": {k: schedules[((i if cycled else 0) + j + 1) % len(schedules)] for j, k in enumerate(KEYS)}
                 for i in range(groups)}
    if layout == "distinct":
        mults = {f"g{i}": {k: 1.0 + (i + 1) / (2 * groups) for k in KEYS} for i in range(groups)}
    rows = hyperparameters.rows if share else functools.partial(hyperparameters.rows, share=False)
    with warnings.catch_warnings(), mock.patch.object(contract, "rows", rows):
        warnings.simplefilter("ignore")
        return LRShim(opt, lr_dict, device_schedule=True, backend="native", hyperparameters=hyper, multipliers=mults)


def op_only(shim: LRShim):
    """The native op over ``shim``'s table and buffer, nothing else (a fresh counter)."""
    engine = shim._engine
    return bind("native", engine.counter.clone(), engine.table, engine.values.clone()).fixed()


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
    variants = [("lr only", None, True)] + [
        (f"{layout}, {when}", layout, share) for layout in LAYOUTS for when, share in (("before", False), ("after", True))]
    shims = {(label, g): build(g, layout, share, device) for label, layout, share in variants for g in (1, n)}
    cands = {}
    for (label, g), shim in shims.items():
        cands[f"step: {label}, {g} groups"] = shim.step
        cands[f"op: {label}, {g} groups"] = op_only(shim)
    timings = bench.alternate(cands, device, args.rounds, 0.02)
    table_rows = {(label, g): len(shim.values_tensor) for (label, g), shim in shims.items()}
    per = {}
    for what in ("step", "op"):
        for label, _, _ in variants:
            lo, hi = timings[f"{what}: {label}, 1 groups"].median, timings[f"{what}: {label}, {n} groups"].median
            per[f"{what}: {label}"] = {"fixed_us": lo * 1e6, "per_group_ns": (hi - lo) / (n - 1) * 1e9,
                                       "rows": table_rows[(label, n)]}
    for what in ("step", "op"):
        base = per[f"{what}: lr only"]["per_group_ns"]
        for label, _, _ in variants:
            per[f"{what}: {label}"]["ratio_to_lr_only"] = per[f"{what}: {label}"]["per_group_ns"] / base
    for name, t in timings.items():
        print(f"{name:>44}: {t.median * 1e6:9.2f} us (p10 {t.p10 * 1e6:.2f}, p90 {t.p90 * 1e6:.2f})")
    for name, d in per.items():
        print(f"{name:>32}: {d['rows']:5d} rows at {n} groups, fixed {d['fixed_us']:.2f} us, per group "
              f"{d['per_group_ns']:.1f} ns = {d['ratio_to_lr_only']:.2f}x lr only (target <= 2x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({**bench.stamp(device), "groups": n, "rounds": args.rounds,
                       "rows": [{"candidate": name, **t.as_us()} for name, t in timings.items()], "per_group": per},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
