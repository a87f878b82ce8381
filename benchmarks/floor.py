"""The floor of ``scheduler.step()`` on CPU: an empty C++ custom op with ``advance_native_``'s signature.

Builds, for this benchmark only (``torch.utils.cpp_extension.load_inline`` with setup.py's C++
flags, cached by torch in its extensions folder; never part of fusedsched's own extension), the op
``fusedsched_floor::empty_(Tensor(a!) step, Tensor table, Tensor(b!) lrs, int increment) -> ()``
whose CPU kernel does nothing, and times side by side in one run (candidates alternated round-robin,
:func:`fusedsched.tools.bench.alternate`), at 1 group, the schedules of ``fusedsched bench``'s regimes,
every scheduler from step :data:`fusedsched.tools.bench.START_STEP`:

- ``empty op``: the empty op, called as ``LRShim`` calls ``advance_native_`` (its ``.default``
  overload, arguments of the same shapes): the cost of reaching any C++ kernel from Python;
- ``advance_native_``: the native op itself on the same arguments;
- ``LRShim.step() native`` and ``LRShim.step() reference``: device mode, per regime;
- ``LambdaLR float``: torch's scheduler with fusedsched's prepared formula (per regime).

Reported: every median, and each one over the empty op's (the target: ``LRShim.step()`` with the
native backend within 1.5x of the empty op). Run from the repository root::

    python benchmarks/floor.py --json benchmarks/results/floor-cpu.json
"""

from __future__ import annotations

import argparse
import functools
import json

import torch
from torch.utils.cpp_extension import load_inline

from fusedsched.schedule.kinds import build_table
from fusedsched.tools import bench

EMPTY_OP = r"""
#include <torch/library.h>

namespace {
void empty_(at::Tensor& step, const at::Tensor& table, at::Tensor& lrs, int64_t increment) {}
}  // namespace

TORCH_LIBRARY(fusedsched_floor, m) {
  m.def("empty_(Tensor(a!) step, Tensor table, Tensor(b!) lrs, int increment) -> ()");
}

TORCH_LIBRARY_IMPL(fusedsched_floor, CPU, m) {
  m.impl("empty_", &empty_);
}
"""
TARGET = 1.5  # LRShim.step() (native) / the empty op


def build_empty_op():
    """``torch.ops.fusedsched_floor.empty_.default``, built on first use."""
    # setup.py's C++ flags: the boxed-call wrapper is compiled here, and unoptimized it costs ~0.6 us
    load_inline("fusedsched_floor", cpp_sources=[EMPTY_OP], extra_cflags=["-O3", "-ffp-contract=off"],
                is_python_module=False, verbose=False)
    return torch.ops.fusedsched_floor.empty_.default


def candidates(empty) -> dict[str, callable]:
    out = {}
    for regime in bench.REGIMES:
        schedules = bench.regime_schedules(regime, 1)
        table = build_table(schedules).table
        step, lrs = torch.tensor(bench.START_STEP), torch.zeros(1)
        if regime == "active":
            native = torch.ops.fusedsched.advance_native_.default
            # bound now: the loop rebinds step, table and lrs for the next regime
            out["empty op"] = functools.partial(empty, step, table, lrs, 1)
            out["advance_native_"] = functools.partial(native, step, table, lrs, 1)
        names = [bench.fused_name("native"), bench.fused_name("reference"), bench.LAMBDA_FLOAT]
        cands = bench.scheduler_candidates(schedules, "cpu", names=names, start=bench.START_STEP)
        for name, label in zip(names, ["LRShim.step() native", "LRShim.step() reference", "LambdaLR float"]):
            out[f"{label}, {regime}"] = cands[name][1]
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    reason = bench.unavailable_reason("native", "cpu")
    if reason:
        raise SystemExit(f"the native backend is unavailable: {reason}")
    cands = candidates(build_empty_op())
    timings = bench.alternate(cands, "cpu", args.rounds, bench.BATCH_S)
    floor = timings["empty op"]
    rows = [{"candidate": name, **t.as_us(), "over_empty_op": bench.paired_ratio(t, floor)} for name, t in timings.items()]
    s = bench.stamp("cpu")
    print(f"device cpu ({s['device_name']}), torch {s['torch']}, python {s['python']}, commit {s['commit']}"
          f"{' (dirty tree)' if s['dirty'] else ''}, {s['threads']} threads; {args.rounds} alternated rounds of "
          f"about {bench.BATCH_S * 1e3:g} ms, 1 group, from step {bench.START_STEP}; x = median over rounds of "
          f"(time / the empty op's time) in the same round")
    width = max(len(r["candidate"]) for r in rows)
    for r in rows:
        print(f"  {r['candidate']:<{width}}  {r['median_us']:6.3g} us  (p10-p90 {r['p10_us']:.3g}-{r['p90_us']:.3g})"
              f"  {r['over_empty_op']:5.2f}x")
    step_ratio = next(r["over_empty_op"] for r in rows if r["candidate"] == "LRShim.step() native, active")
    verdict = "met" if step_ratio <= TARGET else "NOT met"
    print(f"LRShim.step() (native, schedules active) / empty op: {step_ratio:.2f}x (target <= {TARGET:g}x): {verdict}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"stamp": s, "rounds": args.rounds, "rows": rows, "target": TARGET,
                       "step_over_empty_op": step_ratio}, f, indent=1)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
