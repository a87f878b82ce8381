"""The clock's paths side by side in one process, at 1 and 1,000 groups: what the op costs with a skip
flag and an amount tensor against the plain op (and against the op called through ``torch.ops``, as
every launch was before ``fusedsched._C.launch``), and what ``LRShim.step()`` costs with a skip flag,
an amount tensor, and a plateau fed a metric tensor, against the plain step.

The op rows call the launcher the engine bound (on the native backend, ``fusedsched._C.launch``) on a
device-mode ``LRShim``'s own tensors, as its step does; the step rows call ``step()``. Rounds
alternate between the candidates of a table (so a noisy neighbour hits them alike) and the medians
per call are printed with their ratio to the table's first row::

    python benchmarks/clock_paths.py --backend native --rounds 7 --calls 20000 [--device cuda] [--json out.json]

On CUDA each round ends with a synchronize, so a row is the host's cost or the device's, whichever is larger.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import subprocess
import time
import warnings

import torch
import triton

import fusedsched
import fusedsched.ops

COSINE = {"linear_ramp_to_cosine": {"learning_rate": 0.1, "final_learning_rate": 0.01, "num_ramp_steps": 10,
                                    "final_num_steps": 10**9}}
PLATEAU = {"join": {"boundaries": [10], "schedules": [
    {"linear_ramp_to_constant": {"learning_rate": 0.1, "num_ramp_steps": 10}},
    {"plateau": {"learning_rate": 0.1, "patience": 5, "factor": 0.5, "min_learning_rate": 1e-4}}]}}


DEVICE = torch.device("cpu")  # main() sets it from --device


def _shim(groups: int, backend: str, config: dict, **kwargs) -> fusedsched.LRShim:
    params = [torch.nn.Parameter(torch.zeros(1, device=DEVICE)) for _ in range(groups)]
    param_groups = [{"params": [p], "name": f"g{i}"} for i, p in enumerate(params)]
    optimizer = torch.optim.SGD(param_groups, lr=torch.tensor(0.0, device=DEVICE))
    return fusedsched.LRShim(optimizer, {f"g{i}": config for i in range(groups)}, backend=backend, **kwargs)


def op_candidates(groups: int, backend: str) -> dict:
    """``{name: a no-argument function that launches the op once}`` on one shim's tensors, through the
    launcher its engine bound (``fusedsched.ops.bind``)."""
    engine = _shim(groups, backend, COSINE)._engine
    launcher, counter, table, values = engine.launcher, engine.counter, engine.table, engine.values
    found_inf, amount = torch.zeros((), device=DEVICE), torch.zeros((), dtype=torch.int64, device=DEVICE)  # stays put
    runs = {
        "op: fixed()": launcher.fixed(),
        "op: fixed(skip=found_inf)": launcher.fixed(skip=found_inf),
        "op: advance(amount=tensor)": lambda: launcher.advance(amount=amount),
        "op: advance(amount=tensor, skip=found_inf)": lambda: launcher.advance(amount=amount, skip=found_inf),
    }
    if backend == "native":  # fusedsched._C.launch positionally, and the op through torch.ops (before _C.launch)
        plain, clock = torch.ops.fusedsched.advance_native_.default, torch.ops.fusedsched.advance_native_.clock
        launch = fusedsched.ops._native.launch
        runs["op: _C.launch(step, table, lrs, 1, amount, found_inf)"] = (
            lambda: launch(counter, table, values, 1, amount, found_inf))
        runs["op through torch.ops (before)"] = lambda: plain(counter, table, values, 1)
        runs["op through torch.ops (before), + amount + found_inf"] = (
            lambda: clock(counter, table, values, 1, amount, found_inf))
    return runs


def step_candidates(groups: int, backend: str) -> dict:
    """``{name: a no-argument function that takes one step}``."""
    found_inf = torch.zeros((), device=DEVICE)
    amount, loss = torch.ones((), dtype=torch.int64, device=DEVICE), torch.full((), 0.5, device=DEVICE)
    plain = _shim(groups, backend, COSINE)
    skip = _shim(groups, backend, COSINE, skip_steps_on=found_inf)
    scaler = torch.amp.GradScaler(DEVICE.type)
    scaler.scale(torch.ones((), device=DEVICE))  # its scale tensor exists from the first scale()
    scaled = _shim(groups, backend, COSINE, skip_steps_on=scaler)
    by_amount = _shim(groups, backend, COSINE)
    plateau = _shim(groups, backend, PLATEAU)
    runs = {
        "step()": plain.step,
        "step(), skip_steps_on=found_inf": skip.step,
        "step(), skip_steps_on=GradScaler": scaled.step,
        "step(amount=int64 tensor)": lambda: by_amount.step(amount=amount),
        "step(loss), a plateau after a warm-up": lambda: plateau.step(loss),
    }
    if backend == "native":  # the plain step before fusedsched._C.launch: the same Python, the op through torch.ops
        before = _shim(groups, backend, COSINE)
        engine = before._engine
        engine._launch = functools.partial(torch.ops.fusedsched.advance_native_.default, engine.counter,
                                           engine.table, engine.values, 1)
        runs["step(), the op through torch.ops (before)"] = before.step
    return runs


def measure(calls: int, rounds: int, backend: str, groups: list[int]) -> list[dict]:
    rows = []
    for g in groups:
        for runs in (op_candidates(g, backend), step_candidates(g, backend)):
            times: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(rounds):
                for name, fn in runs.items():
                    start = time.perf_counter()
                    for _ in range(calls):
                        fn()
                    if DEVICE.type == "cuda":  # the launches' work too, not only their enqueueing
                        torch.cuda.synchronize()
                    times[name].append((time.perf_counter() - start) / calls * 1e6)
            base = statistics.median(next(iter(times.values())))
            for name, values in times.items():
                median = statistics.median(values)
                rows.append({"groups": g, "candidate": name, "median_us": round(median, 3),
                             "ratio": round(median / base, 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="native")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 1000])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    global DEVICE
    DEVICE = torch.device(args.device)
    rows = measure(args.calls, args.rounds, args.backend, args.groups)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    device = torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else platform.processor() or platform.machine()
    meta = {"device": device, "torch": torch.__version__,
            "triton": triton.__version__, "python": platform.python_version(), "commit": commit,
            "backend": args.backend, "rounds": args.rounds, "calls": args.calls}
    print(json.dumps(meta))
    print("| groups | candidate | median (us) | / the table's first row |\n| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['groups']:,} | {r['candidate']} | {r['median_us']:.2f} | {r['ratio']:.2f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
