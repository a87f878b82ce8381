"""How far two ``fusedsched bench --json`` runs agree: every verdict value and every median, side by side.

The spread of a number is ``max(a, b) / min(a, b) - 1``. Run from the repository root::

    python benchmarks/compare_runs.py benchmarks/results/cpu.json benchmarks/results/cpu-run2.json
"""

from __future__ import annotations

import argparse
import json


def _spread(a: float, b: float) -> float:
    return max(a, b) / min(a, b) - 1 if min(a, b) > 0 else float("inf")


def verdict_values(result: dict) -> dict[str, float]:
    out = {}
    for regime, t in result.get("targets_by_regime", {"active": result["targets"]}).items():
        for key, value in t.items():
            if isinstance(value, float) and not key.endswith("_target"):
                out[f"{regime}: {key}"] = value
        for key, value in t.get("reference", {}).items():
            if isinstance(value, float) and not key.endswith("_target"):
                out[f"{regime}: reference {key}"] = value
    return out


def medians(result: dict) -> dict[str, float]:
    return {f"{r.get('regime', 'active')}: {r['groups']:>5} {r['candidate']}": r["median_us"] for r in result["scheduler_step"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--medians", action="store_true", help="also every row's median")
    args = parser.parse_args(argv)
    with open(args.first, encoding="utf-8") as f:
        a = json.load(f)
    with open(args.second, encoding="utf-8") as f:
        b = json.load(f)
    sections = [("verdict values", verdict_values)] + ([("medians (us)", medians)] if args.medians else [])
    for title, pick in sections:
        x, y = pick(a), pick(b)
        keys = [k for k in x if k in y]
        width = max(map(len, keys))
        print(f"{title}: run 1, run 2, spread")
        for k in keys:
            print(f"  {k:<{width}}  {x[k]:9.4g}  {y[k]:9.4g}  {_spread(x[k], y[k]):6.1%}")
        worst = max(keys, key=lambda k: _spread(x[k], y[k]))
        print(f"  largest spread: {_spread(x[worst], y[worst]):.1%} ({worst})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
