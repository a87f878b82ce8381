"""How fusedsched measures: candidates side by side, medians, paired ratios, host syncs, the stamp.

Method: every comparison runs in one process on one machine; the candidates are alternated
round-robin over several rounds (so drift and noisy neighbours hit all of them alike), each round
timing a batch of calls sized to a target duration; a result is the median over rounds with the
p10-p90 spread, per call, and a ratio between two candidates is the median over rounds of their
times in the same round (:func:`paired_ratio`). On CUDA every clock read follows a synchronize (or
uses CUDA events). Every row carries :func:`stamp`: device name, torch / triton / python versions,
git commit. :func:`count_host_syncs` counts the host syncs and ops a call dispatches.
"""

from __future__ import annotations

import gc
import platform
import subprocess
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["SYNC_OPS", "SyncCounter", "Timing", "alternate", "calibrate", "count_host_syncs", "cuda_event_time",
           "paired_ratio", "stamp", "synchronize", "wall_time"]

SYNC_OPS = ("aten::_local_scalar_dense", "aten::item")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def stamp(device: torch.device | str) -> dict[str, Any]:
    """Device name, versions and git commit (``dirty``: the working tree differs from it, new files included)."""
    device = torch.device(device)
    try:
        triton_version = metadata.version("triton")
    except metadata.PackageNotFoundError:
        triton_version = None
    status = _git("status", "--porcelain")
    return {
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model(),
        "torch": torch.__version__,
        "triton": triton_version,
        "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": None if status is None else bool(status),
        "threads": torch.get_num_threads(),
    }


def synchronize(device: torch.device | str) -> None:
    """Wait for the device (a no-op on CPU): call before reading a clock."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """Seconds per call: median and p10 / p90 over rounds; ``calls`` per round; each round's ``samples``."""

    median: float
    p10: float
    p90: float
    rounds: int
    calls: int
    samples: tuple[float, ...] = ()

    @classmethod
    def of(cls, samples: Sequence[float], calls: int) -> Timing:
        p10, p50, p90 = np.percentile(np.asarray(samples), [10, 50, 90])
        return cls(float(p50), float(p10), float(p90), len(samples), calls, tuple(samples))

    def as_us(self, samples: bool = False) -> dict[str, Any]:
        out = {
            "median_us": self.median * 1e6, "p10_us": self.p10 * 1e6, "p90_us": self.p90 * 1e6,
            "rounds": self.rounds, "calls_per_round": self.calls,
        }
        if samples:
            out["samples_us"] = [x * 1e6 for x in self.samples]
        return out


def paired_ratio(a: Timing, b: Timing) -> float:
    """``a`` / ``b``: the median over rounds of their times in the same round (both from one
    :func:`alternate` run), which cancels the drift between rounds; the ratio of medians otherwise."""
    if len(a.samples) == len(b.samples) > 0:
        return float(np.median(np.asarray(a.samples) / np.asarray(b.samples)))
    return a.median / b.median


def wall_time(fn: Callable[[], object], calls: int, device: torch.device) -> float:
    """Seconds per call over ``calls`` calls, synchronized before each clock read."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / calls


def cuda_event_time(fn: Callable[[], object], calls: int, device: torch.device) -> float:
    """GPU seconds per call between two CUDA events around ``calls`` calls."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    synchronize(device)
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e-3 / calls


def calibrate(fn: Callable[[], object], device: torch.device | str, target_s: float = 0.01, timer=None) -> int:
    """How many calls of ``fn`` take about ``target_s`` (``fn`` should be warmed up already)."""
    device, timer = torch.device(device), timer or wall_time
    n = 1
    per_call = timer(fn, n, device)
    while per_call * n < target_s / 8 and n < 1 << 20:
        n *= 8
        per_call = timer(fn, n, device)
    return max(1, min(1 << 22, round(target_s / max(per_call, 1e-9))))


def alternate(
    candidates: dict[str, Callable[[], object]],
    device: torch.device | str,
    rounds: int = 9,
    target_s: float = 0.01,
    warmup: int = 2,
    timer: Callable[[Callable[[], object], int, torch.device], float] = wall_time,
) -> dict[str, Timing]:
    """Time every candidate round-robin (round r starts at candidate r), batches of about ``target_s``;
    Python's cyclic garbage collector is paused while the rounds run (as ``timeit`` does)."""
    device = torch.device(device)
    calls: dict[str, int] = {}
    for name, fn in candidates.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LambdaLR warns once that optimizer.step() was not called
            for _ in range(warmup):
                fn()
        calls[name] = calibrate(fn, device, target_s, timer)
    names = list(candidates)
    samples: dict[str, list[float]] = {name: [] for name in names}
    collecting = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                samples[name].append(timer(candidates[name], calls[name], device))
    finally:
        if collecting:
            gc.enable()
    return {name: Timing.of(samples[name], calls[name]) for name in names}


class SyncCounter(TorchDispatchMode):
    """Counts dispatched ops and host syncs (``aten::_local_scalar_dense`` / ``aten::item``).

    A custom op's Python implementation runs below the mode, where its ops would be invisible; it
    is re-dispatched to its backend kernel with the mode pushed back, so they are counted too.
    """

    _KEYS = {"cpu": "CPU", "cuda": "CUDA"}

    def __init__(self) -> None:
        super().__init__()
        self.syncs = 0
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.ops += 1
        if func.name() in SYNC_OPS:
            self.syncs += 1
        if func.namespace != "aten":
            device = next((a.device for a in args if isinstance(a, torch.Tensor)), None)
            key = self._KEYS.get(device.type) if device is not None else None
            if key and torch._C._dispatch_has_computed_kernel_for_dispatch_key(func.name(), key):
                with self:
                    return func.redispatch(torch._C.DispatchKeySet(getattr(torch._C.DispatchKey, key)), *args, **kwargs)
        return func(*args, **kwargs)


def count_host_syncs(fn: Callable[[], object], calls: int = 5) -> tuple[float, float]:
    """(host syncs, dispatched ops) per call of ``fn``, counted over ``calls`` calls."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with SyncCounter() as counter:
            for _ in range(calls):
                fn()
    return counter.syncs / calls, counter.ops / calls
