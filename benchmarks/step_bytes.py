"""Bytes per parameter element of every optimizer step path, counted from the ops each step dispatches.

An optimizer step over a large model is bound by memory bandwidth: the bytes it moves per parameter
element are its cost on a GPU. :class:`fusedsched.tools.traffic.Traffic` counts them from what one
step dispatches (after two warm-up steps), each parameter-sized tensor an op reads or writes once,
so the table is the same on every machine and needs no GPU: a fused op is counted from its schema
(the graph-safe ops run their CPU twin here, with the CUDA kernel's arguments), a foreach step from
its ops. Paths: torch's fused and foreach steps (float hyperparameters) and the graph-safe steps,
fused and foreach, every hyperparameter a 0-dim tensor; with ``--amp`` also with a GradScaler's
``grad_scale`` and ``found_inf`` handed to the steps that unscale in the step (``-`` for torch's
foreach steps, before which GradScaler runs its own unscaling pass). Run from the repository root::

    python benchmarks/step_bytes.py                 # the table, float32 and bfloat16
    python benchmarks/step_bytes.py --amp --json benchmarks/results/step-bytes.json
"""

from __future__ import annotations

import argparse
import json

import torch

from fusedsched import GraphSafeAdam, GraphSafeAdamW, GraphSafeSGD
from fusedsched.tools import bench
from fusedsched.tools.traffic import step_traffic

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _t(value: float) -> torch.Tensor:
    return torch.tensor(value)


def _adam_hyper() -> dict:
    return {"lr": _t(1e-3), "betas": (_t(0.9), _t(0.999)), "weight_decay": _t(1e-2), "eps": _t(1e-8)}


def _sgd_hyper(**flags) -> dict:
    return {"lr": _t(0.1), "momentum": _t(0.9), "weight_decay": _t(1e-4), **flags}


def candidates() -> dict[str, dict[str, object]]:
    """Per algorithm, per path, a function of the parameters that builds the optimizer."""
    table: dict[str, dict[str, object]] = {}
    for name, torch_cls, ours_cls, flags in (("Adam", torch.optim.Adam, GraphSafeAdam, {}),
                                             ("AdamW", torch.optim.AdamW, GraphSafeAdamW, {}),
                                             ("AdamW amsgrad", torch.optim.AdamW, GraphSafeAdamW, {"amsgrad": True})):
        table[name] = {
            "torch fused": lambda ps, c=torch_cls, f=flags: c(ps, lr=1e-3, weight_decay=1e-2, fused=True, **f),
            "torch foreach": lambda ps, c=torch_cls, f=flags: c(ps, lr=1e-3, weight_decay=1e-2, foreach=True, **f),
            "graph-safe fused": lambda ps, c=ours_cls, f=flags: c(ps, **_adam_hyper(), fused=True, **f),
            "graph-safe foreach": lambda ps, c=ours_cls, f=flags: c(ps, **_adam_hyper(), fused=False, **f),
        }
    for name, flags in (("SGD momentum", {}), ("SGD nesterov", {"nesterov": True})):
        table[name] = {
            "torch fused": lambda ps, f=flags: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4, fused=True, **f),
            "torch foreach": lambda ps, f=flags: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-4,
                                                                 foreach=True, **f),
            "graph-safe fused": lambda ps, f=flags: GraphSafeSGD(ps, **_sgd_hyper(**f), fused=True),
            "graph-safe foreach": lambda ps, f=flags: GraphSafeSGD(ps, **_sgd_hyper(**f), fused=False),
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amp", action="store_true", help="also count with a GradScaler's grad_scale and found_inf")
    parser.add_argument("--json", help="write the counts here")
    args = parser.parse_args()
    stamp = bench.stamp("cpu")
    print(", ".join(f"{k} {v}" for k, v in stamp.items()))
    amps = (False, True) if args.amp else (False,)
    rows = []
    for algorithm, paths in candidates().items():
        for path, make in paths.items():
            row = {"algorithm": algorithm, "path": path}
            for dtype_name, dtype in DTYPES.items():
                for amp in amps:
                    key = dtype_name + (" amp" if amp else "")
                    try:
                        traffic = step_traffic(make, dtype=dtype, amp=amp)
                    except ValueError:  # a step that does not unscale (GradScaler runs its own pass first)
                        row[key] = row[key + " ops"] = None
                        continue
                    row[key] = traffic.per_element
                    row[key + " ops"] = sum(traffic.ops.values())
            rows.append(row)
    keys = [k for k in rows[0] if k not in ("algorithm", "path") and not k.endswith(" ops")]
    print("\n| step | path | " + " | ".join(f"{k} B/elem (ops)" for k in keys) + " |")
    print("| --- | --- | " + " | ".join("---:" for _ in keys) + " |")
    for row in rows:
        cells = " | ".join("-" if row[k] is None else f"{row[k]:g} ({row[k + ' ops']})" for k in keys)
        print(f"| {row['algorithm']} | {row['path']} | {cells} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": stamp, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
