#!/usr/bin/env python3
"""The two reports of scripts/gpu-evidence.sh.

``env --json FILE --command CMD``: the machine and the code measured (device, driver, CUDA, torch,
Triton, Python, nvcc, package versions, commit, the backends' status on CUDA) as JSON.

``summary --out DIR --stages FILE``: ``DIR/summary.md`` from what the stages left in DIR
(env.json, cuda-tests.xml, precision.json, bench.json, benchmarks.json) and the stage table;
prints the headline. The targets are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pydantic", "pydantic-core", "typing-extensions", "numpy", "PyYAML", "tqdm", "pytest", "pytest-benchmark",
            "hypothesis", "transformers", "matplotlib", "setuptools", "ninja")
TRAINING_TARGET = 0.02  # schedule in the graph: at most 2% over the constant-LR graph
NODE_TARGET_US = 5.0  # a graph holding only scheduler.step(): under 5 us of GPU time
NODE_SPREAD_TARGET = 2.0  # ... and under 2x from the fewest to the most groups
GRAPH_FUSED, GRAPH_FLOOR, NODE_FLOOR = "graph + fusedsched", "graph, constant LR (floor)", "one tiny kernel (floor)"


def _out(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd=ROOT)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def commit_info() -> dict[str, Any]:
    """The commit measured: from git when the tree is a checkout, else from .whl/SOURCE (make gpu-wheels)."""
    commit = _out(["git", "rev-parse", "HEAD"])
    if commit:
        status = _out(["git", "status", "--porcelain"])
        return {"commit": commit, "dirty": bool(status), "from": "git"}
    source = ROOT / ".whl" / "SOURCE"
    if source.exists():
        return {**json.loads(source.read_text(encoding="utf-8")), "from": ".whl/SOURCE (written by make gpu-wheels)"}
    return {"commit": None, "dirty": None, "from": "unknown: no git checkout and no .whl/SOURCE"}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def env_report(command: str) -> dict[str, Any]:
    import torch

    sys.path.insert(0, str(ROOT / "src"))
    from fusedsched.ops import explain

    cuda = torch.cuda.is_available()
    props = torch.cuda.get_device_properties(0) if cuda else None
    smi = _out(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                "--format=csv,noheader"])
    nvcc = _out(["nvcc", "--version"])
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        **commit_info(),
        "device": torch.cuda.get_device_name(0) if cuda else "no CUDA device",
        "capability": f"{props.major}.{props.minor}" if props else None,
        "multiprocessors": props.multi_processor_count if props else None,
        "memory_gib": round(props.total_memory / 2**30, 1) if props else None,
        "driver": smi.split(",")[1].strip() if smi and smi.count(",") >= 1 else None,
        "nvidia_smi": smi,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton": _version("triton"),
        "python": platform.python_version(),
        "nvcc": (re.search(r"release [\d.]+, V[\d.]+", nvcc or "") or [None])[0],
        "packages": {name: _version(name) for name in PACKAGES},
        "backends_on_cuda": explain("cuda"),
        "host": {"cpus": torch.get_num_threads(), "platform": platform.platform()},
    }


# --- summary -----------------------------------------------------------------------------------


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_stages(path: Path) -> list[dict[str, str]]:
    rows = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            name, status, seconds, code, note = (line.split("\t") + [""] * 5)[:5]
            rows.append({"stage": name, "status": status, "seconds": seconds, "exit": code, "note": note})
    return rows


def read_junit(path: Path) -> dict[str, Any] | None:
    """Counts, failures (with their first line) and skip reasons of a pytest JUnit XML file."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    counts = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    failures, skips = [], {}
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = next((child for child in case if child.tag in ("failure", "error", "skipped")), None)
        if outcome is None:
            counts["passed"] += 1
        elif outcome.tag == "skipped":
            counts["skipped"] += 1
            reason = (outcome.get("message") or "").strip()
            skips[reason] = skips.get(reason, 0) + 1
        else:
            counts["failed" if outcome.tag == "failure" else "errors"] += 1
            first = (outcome.get("message") or outcome.text or "").strip().splitlines()
            failures.append(f"{name}: {first[0][:300] if first else outcome.tag}")
    return {**counts, "failures": failures, "skips": skips}


def gpu_targets(bench: dict[str, Any]) -> dict[str, Any]:
    """The GPU targets from ``python -m fusedsched bench``'s JSON (reported, not asserted)."""
    out: dict[str, Any] = {}
    training = {r["candidate"]: r for r in bench.get("training_step", [])}
    if GRAPH_FUSED in training and GRAPH_FLOOR in training:
        fused, floor = training[GRAPH_FUSED]["median_us"], training[GRAPH_FLOOR]["median_us"]
        out["training"] = {"fused_us": fused, "floor_us": floor, "overhead": fused / floor - 1,
                           "backend": training[GRAPH_FUSED]["backend"], "met": fused / floor - 1 <= TRAINING_TARGET}
    nodes: dict[str, dict[int, float]] = {}
    for r in bench.get("schedule_node", []):
        nodes.setdefault(r["candidate"], {})[r["groups"]] = r["median_us"]
    out["schedule_node"] = {}
    for candidate, by_groups in nodes.items():
        lo, hi = min(by_groups), max(by_groups)
        entry = {"us": by_groups, "max_us": max(by_groups.values()), "spread": by_groups[hi] / by_groups[lo],
                 "groups": [lo, hi]}
        if candidate != NODE_FLOOR:
            entry["met"] = entry["max_us"] < NODE_TARGET_US and entry["spread"] < NODE_SPREAD_TARGET
        out["schedule_node"][candidate] = entry
    return out


def _fmt(us: float) -> str:
    return f"{us:.0f}" if us >= 100 else f"{us:.3g}"


def summary_markdown(out: Path, stages: list[dict[str, str]], stage_dir: Path, seconds: int | None) -> tuple[str, list[str]]:
    """The summary's Markdown, and its headline lines (``stage_dir`` holds each stage's ``NAME.out``)."""
    env = _load(out / "env.json") or {}
    tests = read_junit(out / "cuda-tests.xml")
    precision = _load(out / "precision.json")
    bench = _load(out / "bench.json")
    benchmarks = _load(out / "benchmarks.json")
    commit = env.get("commit")
    commit_text = f"`{commit[:12]}`{' (uncommitted changes)' if env.get('dirty') else ''}, from {env.get('from')}" if commit else \
        f"unknown ({env.get('from', 'env.json missing')})"
    md = [f"# GPU evidence: {env.get('device', '?')}, {env.get('date', '?')}", "",
          "| | |", "| --- | --- |",
          f"| device | {env.get('device', '?')}, compute capability {env.get('capability', '?')}, "
          f"{env.get('multiprocessors', '?')} SMs, {env.get('memory_gib', '?')} GiB |",
          f"| driver / CUDA | {env.get('driver', '?')} / torch built for CUDA {env.get('torch_cuda', '?')}, "
          f"nvcc {env.get('nvcc', '?')} |",
          f"| torch / triton / python | {env.get('torch', '?')} / {env.get('triton', '?')} / {env.get('python', '?')} |",
          f"| commit | {commit_text} |",
          f"| command | `{env.get('command', '?')}` |",
          f"| backends on cuda | {'; '.join(f'{k}: {v}' for k, v in env.get('backends_on_cuda', {}).items()) or '?'} |",
          f"| wall time | {seconds if seconds is not None else '?'} s |", ""]
    head = [f"GPU evidence on {env.get('device', '?')} (driver {env.get('driver', '?')}, torch {env.get('torch', '?')}, "
            f"triton {env.get('triton', '?')}), commit {commit[:12] if commit else '?'}"
            f"{' + changes' if env.get('dirty') else ''}, {seconds if seconds is not None else '?'} s"]

    md += ["## Stages", "", "| stage | result | seconds | note |", "| --- | --- | --- | --- |"]
    md += [f"| {s['stage']} | {s['status']} | {s['seconds']} | {s['note']} |" for s in stages]
    head.append("stages: " + ", ".join(f"{s['stage']} {s['status']}" for s in stages))

    md += ["", "## CUDA tests: `pytest -m cuda tests`", ""]
    if tests is None:
        md.append("No results (cuda-tests.xml missing or unreadable; see run.log).")
        head.append("cuda tests: no results")
    else:
        counts = f"{tests['passed']} passed, {tests['failed']} failed, {tests['errors']} errors, {tests['skipped']} skipped"
        md.append(counts + ".")
        head.append(f"cuda tests: {counts}")
        md += [f"- FAILED {f}" for f in tests["failures"]]
        md += [f"- skipped ({n}): {reason}" for reason, n in tests["skips"].items()]
        head += [f"  FAILED {f[:200]}" for f in tests["failures"][:8]]

    md += ["", "## Precision: every backend against float32(compute_lr)", ""]
    if precision is None:
        md.append("No results (precision.json missing; see run.log).")
        head.append("precision: no results")
    else:
        sys.path.insert(0, str(ROOT / "scripts"))
        from gpu_precision_sweep import format_table

        md += ["```", format_table(precision), "```"]
        for backend, entry in precision["backends"].items():
            if "skipped" in entry:
                head.append(f"precision {backend}: skipped ({entry['skipped']})")
                continue
            worst = max(r["worst_ulp"] for r in entry.values())
            identical = min(r["identical_fraction"] for r in entry.values())
            met = all(r["goal_met"] for r in entry.values())
            head.append(f"precision {backend}: {identical:.4%} identical at worst, worst {worst} ulp: goal {'met' if met else 'NOT met'}")

    md += ["", "## Targets (reported, not asserted)", ""]
    if bench is None:
        md.append("No results (bench.json missing; see run.log).")
        head.append("targets: no bench results")
    else:
        targets = gpu_targets(bench)
        t = targets.get("training")
        if t:
            line = (f"whole training step, schedule inside the graph ({t['backend']}): {_fmt(t['fused_us'])} us vs "
                    f"{_fmt(t['floor_us'])} us with a constant LR: {t['overhead']:+.2%} (target <= "
                    f"{TRAINING_TARGET:.0%}): {'met' if t['met'] else 'NOT met'}")
            md.append(f"- {line}")
            head.append(line)
        for candidate, n in targets["schedule_node"].items():
            per = ", ".join(f"{g}: {_fmt(us)}" for g, us in sorted(n["us"].items()))
            if candidate == NODE_FLOOR:
                line = f"graph of one tiny kernel (the floor of a replay): {per} us"
            else:
                line = (f"graph holding only scheduler.step(), {candidate}: {per} us (groups: GPU us); max "
                        f"{_fmt(n['max_us'])} us (target < {NODE_TARGET_US:g}), {n['groups'][1]} vs {n['groups'][0]} "
                        f"groups {n['spread']:.2f}x (target < {NODE_SPREAD_TARGET:g}x): {'met' if n['met'] else 'NOT met'}")
            md.append(f"- {line}")
            head.append(line)
        try:
            sys.path.insert(0, str(ROOT / "src"))
            from fusedsched.tools.bench import format_report

            md += ["", "## `python -m fusedsched bench`", "", "```", format_report(bench), "```"]
        except Exception as exc:  # noqa: BLE001 - the table is a convenience; the JSON is the record
            md += ["", f"(bench table not rendered: {type(exc).__name__}: {exc})"]

    md += ["", "## `pytest benchmarks/` (pytest-benchmark, candidates run one after the other)", ""]
    if benchmarks is None:
        md.append("No results (benchmarks.json missing; see run.log).")
    else:
        md += ["| group | test | median us | GPU us (CUDA events) |", "| --- | --- | --- | --- |"]
        for b in benchmarks.get("benchmarks", []):
            gpu = b.get("extra_info", {}).get("gpu_us_cuda_events")
            md.append(f"| {b.get('group')} | {b.get('name')} | {_fmt(b['stats']['median'] * 1e6)} | "
                      f"{_fmt(gpu) if gpu is not None else ''} |")
        head.append(f"pytest benchmarks/: {len(benchmarks.get('benchmarks', []))} benchmarks recorded")

    md += ["", "## Demo: `python -m fusedsched demo --device cuda`", ""]
    demo = next((s for s in stages if s["stage"] == "demo"), None)
    demo_path = stage_dir / "demo.out"
    demo_lines = [line for line in demo_path.read_text(encoding="utf-8", errors="replace").splitlines()
                  if line.strip()][-20:] if demo_path.exists() else []
    md += ["```", *(demo_lines or [f"(no output; demo stage {demo['status'] if demo else 'not run'})"]), "```",
           "", "Files: summary.md, run.log (every stage's output), env.json, cuda-tests.xml, precision.json, "
           "bench.json, benchmarks.json, demo.png."]
    return "\n".join(md) + "\n", head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="report", required=True)
    e = sub.add_parser("env", help="describe the machine and the code as JSON")
    e.add_argument("--json", type=Path, required=True)
    e.add_argument("--command", default="bash scripts/gpu-evidence.sh")
    s = sub.add_parser("summary", help="write summary.md from the stages' files")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--stages", type=Path, required=True, help="the stage table (tab-separated), beside each stage's .out")
    s.add_argument("--seconds", type=int)
    args = parser.parse_args(argv)
    if args.report == "env":
        report = env_report(args.command)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"{report['device']} (capability {report['capability']}), driver {report['driver']}, torch {report['torch']}, "
              f"triton {report['triton']}, python {report['python']}, commit {report['commit']}; "
              f"backends: {report['backends_on_cuda']}")
        return 0
    text, head = summary_markdown(args.out, read_stages(args.stages), args.stages.parent, args.seconds)
    (args.out / "summary.md").write_text(text, encoding="utf-8")
    print("\n".join(head))
    print(f"wrote {args.out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
