"""``GraphSafeAdamW.step()`` against torch's fused and foreach AdamW, side by side in one run (CPU or CUDA).

Two shapes: 10 groups of one 1M-element parameter, and 1,000 groups of one 1K-element parameter
(float32, gradients fixed). Candidates, alternated round-robin (:func:`fusedsched.tools.bench.alternate`):

- ``torch fused``: ``torch.optim.AdamW(fused=True)``, float hyperparameters (the baseline);
- ``torch foreach``: ``torch.optim.AdamW(foreach=True)``, float hyperparameters;
- ``graph-safe, tensors``: ``GraphSafeAdamW`` with every hyperparameter (lr, betas, weight_decay,
  eps) a 0-dim float32 tensor (the target: within 1.25x of ``torch fused``);
- ``graph-safe, floats``: ``GraphSafeAdamW`` with float hyperparameters;
- ``graph-safe, tensors, foreach``: ``GraphSafeAdamW(native=False)``, every hyperparameter a tensor
  (the foreach step, bit-identical to torch's capturable AdamW).

``GraphSafeAdamW`` takes the native CPU kernel (``fusedsched::graphsafe_adam_``) where it is built;
on CUDA its foreach step (the project's GPU target: within 1.05x of ``torch fused``; the GPU
evidence script runs this with ``--device cuda``, where the foreach-only candidate is the same step
and is left out).

Each candidate owns its parameters and state; every call is one ``optimizer.step()``. Reported:
medians, each over torch fused's, and the paired ratio (the median over rounds of the ratio within
a round, :func:`fusedsched.tools.bench.paired_ratio`, which the target is judged by). Run from the
repository root::

    python benchmarks/graphsafe_adamw.py --threads 1 --json benchmarks/results/graphsafe-adamw-cpu.json
    python benchmarks/graphsafe_adamw.py --device cuda --rounds 5
"""

from __future__ import annotations

import argparse
import json

import torch

from fusedsched import GraphSafeAdamW
from fusedsched.tools import bench

SHAPES = {"10 groups x 1M": (10, 1_000_000), "1,000 groups x 1K": (1_000, 1_000)}
TARGETS = {"cpu": 1.25, "cuda": 1.05}  # graph-safe with tensor hyperparameters / torch fused


def _params(groups: int, size: int, device: torch.device) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(0)
    ps = [torch.nn.Parameter(torch.randn(size, generator=gen).to(device)) for _ in range(groups)]
    for p in ps:
        p.grad = (torch.randn(size, generator=gen) * 1e-2).to(device)
    return ps


def _candidates(groups: int, size: int, device: torch.device) -> dict[str, torch.optim.Optimizer]:
    def hyper(tensors: bool) -> dict:
        t = (lambda v: torch.tensor(v, device=device)) if tensors else (lambda v: v)
        return {"lr": t(1e-3), "betas": (t(0.9), t(0.999)), "weight_decay": t(1e-2), "eps": t(1e-8)}

    def groups_of(tensors: bool) -> list[dict]:
        return [{"params": [p], **hyper(tensors)} for p in _params(groups, size, device)]

    candidates = {
        "torch fused": torch.optim.AdamW(groups_of(False), fused=True),
        "torch foreach": torch.optim.AdamW(groups_of(False), foreach=True),
        "graph-safe, tensors": GraphSafeAdamW(groups_of(True)),
        "graph-safe, floats": GraphSafeAdamW(groups_of(False)),
    }
    if device.type == "cpu":
        candidates["graph-safe, tensors, foreach"] = GraphSafeAdamW(groups_of(True), native=False)
    return candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--device", default="cpu", choices=sorted(TARGETS))
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--json", help="write the timings here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device, target = torch.device(args.device), TARGETS[args.device]
    stamp = bench.stamp(device)
    print(", ".join(f"{k} {v}" for k, v in stamp.items()))
    results = {}
    for label, (groups, size) in SHAPES.items():
        optimizers = _candidates(groups, size, device)
        timings = bench.alternate({name: opt.step for name, opt in optimizers.items()}, device, rounds=args.rounds, target_s=0.05)
        base = timings["torch fused"].median
        fused = timings["torch fused"]
        results[label] = {
            name: {**t.as_us(), "over_fused": t.median / base, "paired_over_fused": bench.paired_ratio(t, fused)}
            for name, t in timings.items()
        }
        print(f"{label}:")
        for name, t in timings.items():
            print(
                f"  {name:30s} {t.median * 1e3:9.3f} ms  (p10 {t.p10 * 1e3:.3f}, p90 {t.p90 * 1e3:.3f})  "
                f"{t.median / base:5.2f}x fused, paired {bench.paired_ratio(t, fused):5.2f}x"
            )
        ratio = bench.paired_ratio(timings["graph-safe, tensors"], fused)
        print(f"  target <= {target}x fused: {'met' if ratio <= target else 'missed'} ({ratio:.2f}x)")
        del optimizers
    if args.json:
        meta = {**stamp, "target_over_fused": target}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
