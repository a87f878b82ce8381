#!/usr/bin/env python3
"""Precision sweep: every ``advance_`` backend on one device against float32(compute_lr).

A table of ``--groups`` groups cycling through tests/_compare.py's ``CONFIGS`` (every schedule
kind) is advanced one step at a time (increment 1, the ``scheduler.step()`` path) over
``--steps`` consecutive steps from step 0 and again from ``2**40 - steps/2``. Every (group, step)
float32 rate is compared with float32(compute_lr(config, step)), computed once per distinct
config. Per backend and window it reports the pairs, how many are identical, how many one ulp
apart, the worst distance in ulp and the NaN mismatches, and whether the goal of
docs/precision.md holds (>= 99.99% identical, never more than one ulp).

    python scripts/gpu_precision_sweep.py --device cuda --json precision.json

Exit status 0 when every backend that ran meets the goal, 1 otherwise, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
GOAL_IDENTICAL = 0.9999


def expected_rates(configs, steps: np.ndarray) -> np.ndarray:
    """float32(compute_lr) as ``[step, group]``, one compute_lr pass per distinct config."""
    from fusedsched import compute_lr

    columns = {}
    for cfg in configs:
        if id(cfg) not in columns:
            columns[id(cfg)] = np.array([compute_lr(cfg, int(s)) for s in steps], np.float64).astype(np.float32)
    return np.stack([columns[id(cfg)] for cfg in configs], axis=1)


def compare(got: np.ndarray, want: np.ndarray) -> dict:
    """Identical / one-ulp / worst-ulp counts of two float32 arrays of one shape."""
    got, want = got.astype(np.float32), want.astype(np.float32)
    nan_mismatch = np.isnan(got) != np.isnan(want)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    ulps = np.abs(got.view(np.int32).astype(np.int64) - want.view(np.int32).astype(np.int64))
    ulps = np.where(same | nan_mismatch, 0, ulps)
    pairs = int(got.size)
    identical = int(same.sum())
    worst = int(ulps.max()) if pairs else 0
    out = {
        "pairs": pairs,
        "identical": identical,
        "identical_fraction": identical / pairs if pairs else 1.0,
        "one_ulp": int((ulps == 1).sum()),
        "worst_ulp": worst,
        "nan_mismatch": int(nan_mismatch.sum()),
    }
    out["goal_met"] = bool(out["identical_fraction"] >= GOAL_IDENTICAL and worst <= 1 and not out["nan_mismatch"])
    if not out["goal_met"]:
        bad = np.argwhere(nan_mismatch | (ulps > 1) | ~same)[:5]
        out["examples"] = [{"row": int(r), "group": int(g), "got": float(got[r, g]), "want": float(want[r, g]),
                            "ulp": int(ulps[r, g])} for r, g in bad]
    return out


def run_backend(backend: str, table, first: int, steps: int):
    """``[steps, groups]`` float32 rates of ``backend`` from step ``first`` on, and seconds spent."""
    import torch

    from fusedsched.ops import advance_op

    device, groups = table.device, table.shape[-1]
    step = torch.full((), first - 1, dtype=torch.int64, device=device)
    lrs = torch.full((groups,), float("nan"), dtype=torch.float32, device=device)
    history = torch.full((steps, groups), float("nan"), dtype=torch.float32, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for i in range(steps):
        advance_op(step, table, lrs, 1, backend=backend)
        history[i].copy_(lrs)
    got = history.cpu().numpy()  # the one sync
    seconds = time.perf_counter() - start
    final = int(step.item())
    if final != first + steps - 1:
        raise AssertionError(f"{backend}: the counter reads {final} after advancing to {first + steps - 1}")
    return got, seconds


def sweep(device: str, groups: int, steps: int) -> dict:
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from _compare import CONFIGS, configs_for  # every schedule kind, kept current by the tests

    from fusedsched.ops import BACKENDS, unavailable_reason
    from fusedsched.schedule.kinds import build_table
    from fusedsched.tools.bench import stamp

    device = torch.device(device)
    configs = configs_for(groups)
    table = build_table(configs, device).table
    windows = {"from 0": 0, "around 2**40": 2**40 - steps // 2}
    result = {
        "stamp": stamp(device),
        "settings": {"groups": groups, "steps": steps, "configs": len(CONFIGS), "kinds": sorted({c.kind for c in CONFIGS}),
                     "windows": {name: [first, first + steps - 1] for name, first in windows.items()},
                     "goal": f">= {GOAL_IDENTICAL:.2%} identical, never more than 1 ulp"},
        "backends": {},
    }
    expected = {name: expected_rates(configs, np.arange(first, first + steps)) for name, first in windows.items()}
    for backend in BACKENDS:
        reason = unavailable_reason(backend, device)
        if reason is None and backend == "triton" and device.type != "cuda":
            reason = "the Triton interpreter is a test tool, too slow for a sweep"
        if reason is not None:
            result["backends"][backend] = {"skipped": reason}
            continue
        entry = {}
        for name, first in windows.items():
            got, seconds = run_backend(backend, table, first, steps)
            entry[name] = {**compare(got, expected[name]), "seconds": round(seconds, 3)}
        result["backends"][backend] = entry
    return result


def format_table(result: dict) -> str:
    s = result["settings"]
    lines = [f"precision sweep on {result['stamp']['device_name']}: {s['groups']} groups ({s['configs']} configs: "
             f"{', '.join(s['kinds'])}), {s['steps']} consecutive steps per window; goal {s['goal']}",
             f"{'backend':<10} {'window':<13} {'pairs':>10} {'identical':>10} {'1 ulp':>6} {'worst':>5} {'NaN':>4}  goal"]
    for backend, entry in result["backends"].items():
        if "skipped" in entry:
            lines.append(f"{backend:<10} skipped: {entry['skipped']}")
            continue
        for window, r in entry.items():
            lines.append(f"{backend:<10} {window:<13} {r['pairs']:>10} {r['identical_fraction']:>10.4%} {r['one_ulp']:>6} "
                         f"{r['worst_ulp']:>5} {r['nan_mismatch']:>4}  {'met' if r['goal_met'] else 'NOT met'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Every advance_ backend against float32(compute_lr).")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--groups", type=int, default=1025, help="groups in the table (default 1025)")
    parser.add_argument("--steps", type=int, default=10_000, help="consecutive steps per window (default 10000)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.groups < 1 or args.steps < 1:
        parser.error(f"--groups and --steps must be >= 1, got {args.groups} and {args.steps}")
    sys.path.insert(0, str(ROOT / "src"))
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"gpu_precision_sweep: --device {args.device} but CUDA is not available (torch {torch.__version__})",
              file=sys.stderr)
        return 2
    result = sweep(args.device, args.groups, args.steps)
    print(format_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    ran = [r for entry in result["backends"].values() if "skipped" not in entry for r in entry.values()]
    return 0 if ran and all(r["goal_met"] for r in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
