"""``LRShim.step()`` at an earlier commit and at this tree, side by side in one run (CPU).

Each round runs one worker process per tree, alternated (before, after, before, ...): the worker
imports that tree's ``fusedsched`` (``PYTHONPATH=<tree>/src``, its native extension copied from
this tree's build when the commit's ``csrc/`` is the same), builds ``LRShim``s over the same
schedules (``fusedsched bench``'s "active" regime: the bundled example's four kinds with their last
phase stretched, cycled over the groups, counter at step 1000) and times a batch of ``step()``
calls per candidate: host mode and device mode (native backend) at 1 and 1,000 groups. Reported:
the median over rounds of each candidate's per-call time in each tree, and after / before. Run from
the repository root::

    python benchmarks/refactor_before_after.py --before aa88f49 --json benchmarks/results/refactor-cpu.json

When ``csrc/`` differs between the two trees, build the earlier commit's extension first and pass it
with ``--before-extension path/to/_C....so``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUPS = (1, 1000)
MODES = ("host", "device")

WORKER = r"""
import gc, json, sys, time, warnings
import torch
warnings.simplefilter("ignore")
from fusedsched import LRShim, LearningRate
schedules = [LearningRate(**d) for d in json.loads(sys.argv[1])]
target_s = float(sys.argv[2])
out = {}
for groups in json.loads(sys.argv[3]):
    for mode in ("host", "device"):
        params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(groups)]
        opt = torch.optim.SGD([{"params": [p], "name": f"g{i}"} for i, p in enumerate(params)], lr=0.0)
        shim = LRShim(opt, {f"g{i}": schedules[i % len(schedules)] for i in range(groups)},
                      device_schedule=(mode == "device"), backend="native" if mode == "device" else None)
        shim.last_epoch = 1000
        step = shim.step
        for _ in range(200):
            step()
        calls, spent = 1, 0.0
        while spent < target_s / 4:  # calibrate a batch of about target_s
            calls *= 2
            t0 = time.perf_counter()
            for _ in range(calls):
                step()
            spent = time.perf_counter() - t0
        calls = max(1, int(calls * target_s / spent))
        gc.disable()
        t0 = time.perf_counter()
        for _ in range(calls):
            step()
        out[f"{mode}/{groups}"] = (time.perf_counter() - t0) / calls
        gc.enable()
print(json.dumps(out))
"""


def _tree_at(rev: str, where: Path, extension: str | None = None) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), rev], check=True,
                   capture_output=True)
    if extension is not None:  # that commit's own build
        shutil.copy(extension, where / "src" / "fusedsched" / Path(extension).name)
        return where
    same_csrc = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", rev, "HEAD", "--", "csrc"]).returncode == 0
    if not same_csrc:
        raise SystemExit(f"csrc/ differs between {rev} and HEAD: build that tree's extension and pass "
                         f"--before-extension")
    for so in (ROOT / "src" / "fusedsched").glob("_C*.so"):
        shutil.copy(so, where / "src" / "fusedsched" / so.name)
    return where


def _run(tree: Path, schedules: str, target_s: float) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
    done = subprocess.run([sys.executable, "-c", WORKER, schedules, str(target_s), json.dumps(GROUPS)],
                          env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="aa88f49", help="the earlier commit (default: aa88f49)")
    parser.add_argument("--before-extension", help="the earlier commit's built fusedsched/_C*.so (when csrc/ differs)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-seconds", type=float, default=0.1)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from fusedsched.tools import bench

    schedules = json.dumps([cfg.model_dump(exclude_none=True) for cfg in bench.regime_schedules("active", 4)])
    with tempfile.TemporaryDirectory() as tmp:
        before = _tree_at(args.before, Path(tmp) / "before", args.before_extension)
        try:
            runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
            for _ in range(args.rounds):
                runs["before"].append(_run(before, schedules, args.batch_seconds))
                runs["after"].append(_run(ROOT, schedules, args.batch_seconds))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)
    rows = []
    print(f"{'candidate':14s} {'before us':>10s} {'after us':>10s} {'after/before':>13s}")
    for key in runs["before"][0]:
        b = statistics.median(r[key] for r in runs["before"]) * 1e6
        a = statistics.median(r[key] for r in runs["after"]) * 1e6
        rows.append({"candidate": key, "before_us": b, "after_us": a, "ratio": a / b})
        print(f"{key:14s} {b:10.2f} {a:10.2f} {a / b:12.2f}x")
    if args.json:
        stamp = bench.stamp("cpu")
        stamp.update(before=args.before, after=subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                     capture_output=True, text=True).stdout.strip(), command=" ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
                     rounds=args.rounds, date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
        Path(args.json).write_text(json.dumps({"stamp": stamp, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
