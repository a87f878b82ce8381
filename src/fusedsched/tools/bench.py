"""Measurements shared by ``fusedsched bench``, the demo's report and the ``benchmarks/`` suites.

How it times (alternated rounds, medians, paired ratios, the stamp every row carries):
``fusedsched.tools.timing``, whose names this module re-exports.

``scheduler.step()`` is timed in two regimes (:data:`REGIMES`), every candidate starting at step
:data:`START_STEP`: ``active``, every schedule in a phase that changes at every step (the headline:
what a training run pays while its schedules run), and ``finished``, every schedule past its last
change (a constant per group).

The stock alternative is ``torch.optim.lr_scheduler.LambdaLR`` with, per group, the lambda
:func:`stock_lambda` = :func:`fusedsched.schedule.reference.prepare_lr`: fusedsched's own float64 formula for
the schedule (the one ``compute_lr`` and host mode run), its constants bound once and no argument
checks, so as cheap as a hand-written closure; once with float learning rates and once with tensor
ones (the ``torch.compile`` recipe).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..ops import BACKENDS, resolve_backend, unavailable_reason
from ..ops.backends import AUTO_ORDER
from ..schedule.kinds import LearningRate
from ..schedule.reference import compute_lr, prepare_lr, schedule_marks
from ..shim.scheduler import LRShim
from ..tml.config import load_config
from .models import mlp, regression_batches
from .timing import (
    SyncCounter,
    Timing,
    alternate,
    calibrate,
    count_host_syncs,
    cuda_event_time,
    paired_ratio,
    stamp,
    synchronize,
)

__all__ = [
    "DEFAULT_GROUPS",
    "REGIMES",
    "START_STEP",
    "SyncCounter",
    "Timing",
    "alternate",
    "calibrate",
    "count_host_syncs",
    "cycled_schedules",
    "device_backends",
    "example_config_path",
    "example_schedules",
    "format_report",
    "fused_name",
    "paired_ratio",
    "regime_schedules",
    "run",
    "scheduler_candidates",
    "schedule_node_candidates",
    "schedule_node_rows",
    "scheduler_step_rows",
    "stamp",
    "stock_lambda",
    "synchronize",
    "targets",
    "training_candidates",
    "training_step_rows",
]

DEFAULT_GROUPS = (1, 10, 100, 1000, 10000)
TARGETS = {"fixed_us": 20.0, "per_group_ns": 50.0, "vs_lambdalr_float_at_1000": 50.0, "vs_lambdalr_tensor_at_1000": 500.0}
# The reference backend (the CPU fallback) against native: fixed cost, per-group cost, LambdaLR at 1 group.
REFERENCE_TARGETS = {"fixed_vs_native": 10.0, "per_group_vs_native_at_1000": 5.0,
                     "per_group_vs_native_at_10000": 5.0, "vs_lambdalr_float_at_1": 1.0}
BASELINE = ("torch.optim.lr_scheduler.LambdaLR, one lambda per group: fusedsched.schedule.reference.prepare_lr(cfg), "
            "fusedsched's own float64 formula for the schedule (what compute_lr and host mode run) with its "
            "constants bound once and no checks; 'LambdaLR tensor': the same with 0-dim tensor learning rates")
OPS_NOTE = ("syncs_per_step: aten::_local_scalar_dense / aten::item per step; ops_per_step: torch ops dispatched "
            "per step (aten and custom, seen by a TorchDispatchMode, inside fusedsched's custom op too; "
            "numpy and Python work are not ops)")
ACTIVE_STEPS = 10**12  # the last phase's length in the active regime: no step timed reaches its end
START_STEP = 1000  # every candidate starts here: past the example's marks (<= 250) and its ramps
REGIMES = {
    "active": "the example's four schedules with their last phase 10**12 steps long: two "
              "linear_ramp_to_cosine in their cosine (a cos per step), a linear_ramp_to_constant in its "
              "ramp, a piecewise_constant at its last value",
    "finished": "the example's four schedules as they are, every one past its last change (step 250): "
                "a constant per group",
}
LAMBDA_FLOAT, LAMBDA_TENSOR, HOST = "LambdaLR float", "LambdaLR tensor", "LRShim host"
GRAPH_FUSED, GRAPH_FLOOR, GRAPH_HOST_FILL, EAGER_LAMBDA = (
    "graph + fusedsched", "graph, constant LR (floor)", "graph + host fill_ per group", "eager + LambdaLR")
NODE_FLOOR = "one tiny kernel (floor)"


# --- environment -------------------------------------------------------------------------------


def example_config_path() -> Path:
    """The bundled tml optimizer YAML (``fusedsched/examples/recap_multitask.yaml``)."""
    return Path(str(resources.files("fusedsched") / "examples" / "recap_multitask.yaml"))


def device_backends(device: torch.device | str) -> list[str]:
    """The ``advance_`` backends that really run on ``device``, best first (no Triton interpreter on CPU)."""
    device = torch.device(device)
    order = list(AUTO_ORDER.get(device.type, ())) + [b for b in BACKENDS if b not in AUTO_ORDER.get(device.type, ())]
    return [
        b for b in order
        if unavailable_reason(b, device) is None and not (b == "triton" and device.type != "cuda")
    ]


# --- schedules ---------------------------------------------------------------------------------


def example_schedules() -> list[LearningRate]:
    """The bundled example's four schedules (one of each kind), towers first, backbone last."""
    rates = load_config(example_config_path(), section="optimizer").multi_task_learning_rates
    return [*rates.tower_learning_rates.values(), rates.backbone_learning_rate]


def stock_lambda(cfg: LearningRate) -> Callable[[int], float]:
    """The closure a ``LambdaLR`` user writes for ``cfg``: ``compute_lr``'s formula, constants bound once."""
    return prepare_lr(cfg)


def _stretched(cfg: LearningRate) -> LearningRate:
    """``cfg`` with its last phase :data:`ACTIVE_STEPS` long (kinds without a running phase unchanged)."""
    params = getattr(cfg, cfg.kind).model_dump()
    if cfg.kind == "linear_ramp_to_cosine":
        params["final_num_steps"] = ACTIVE_STEPS
    elif cfg.kind == "linear_ramp_to_constant":
        params["num_ramp_steps"] = ACTIVE_STEPS
    return LearningRate(**{cfg.kind: params})


def regime_schedules(regime: str, groups: int) -> list[LearningRate]:
    """``groups`` schedules for ``regime`` (see :data:`REGIMES`): the example's four kinds, repeated."""
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {', '.join(REGIMES)}; got {regime!r}")
    base = example_schedules()
    if regime == "active":
        base = [_stretched(cfg) for cfg in base]
    return [base[i % len(base)] for i in range(groups)]


def _check_stock(schedules: Sequence[LearningRate]) -> None:
    for cfg in {id(c): c for c in schedules}.values():
        f = stock_lambda(cfg)
        for s in {0, 1, 10**6, *schedule_marks(cfg), *(m - 1 for m in schedule_marks(cfg) if m)}:
            if f(s) != compute_lr(cfg, s):
                raise AssertionError(f"stock_lambda differs from compute_lr for {cfg.kind} at step {s}")


# --- scheduler.step() --------------------------------------------------------------------------


def _one_group_each(params: list[torch.Tensor], lrs: list[Any], resumed: bool = False) -> torch.optim.SGD:
    """SGD with one param group per param. Groups are appended directly: the constructor's overlap
    check is quadratic in the group count (about 10 s at 10,000 groups). ``resumed``: every group has
    its ``initial_lr``, as a scheduler resuming at ``last_epoch >= 0`` requires."""
    opt = torch.optim.SGD([{"params": [params[0]], "lr": lrs[0]}], lr=0.0)
    template = {k: v for k, v in opt.param_groups[0].items() if k not in ("params", "lr")}
    opt.param_groups.extend({**template, "params": [p], "lr": lr} for p, lr in zip(params[1:], lrs[1:]))
    if resumed:
        for group in opt.param_groups:
            group["initial_lr"] = group["lr"].clone() if isinstance(group["lr"], torch.Tensor) else group["lr"]
    return opt


def fused_name(backend: str) -> str:
    return f"fusedsched[{backend}]"


def scheduler_candidates(
    schedules: Sequence[LearningRate], device: torch.device | str, names: Sequence[str] | None = None,
    start: int = -1,
) -> dict[str, tuple[str, Callable[[], object]]]:
    """``name -> (backend, scheduler.step)`` for one group per schedule on ``device``.

    Names: ``fusedsched[<backend>]`` for each of :func:`device_backends` (device mode),
    ``LRShim host``, ``LambdaLR float``, ``LambdaLR tensor``; ``names`` picks a subset. Every
    scheduler is built with ``last_epoch=start`` (-1: a fresh schedule).
    """
    device = torch.device(device)
    _check_stock(schedules)
    groups = len(schedules)
    lr_dict = {f"g{i}": cfg for i, cfg in enumerate(schedules)}
    wanted = list(names) if names is not None else [fused_name(b) for b in device_backends(device)] + [HOST, LAMBDA_FLOAT, LAMBDA_TENSOR]
    resumed = start >= 0
    out: dict[str, tuple[str, Callable[[], object]]] = {}
    for name in wanted:
        params = [torch.nn.Parameter(torch.zeros(1, device=device)) for _ in range(groups)]
        if name.startswith("fusedsched["):
            backend = name[len("fusedsched["):-1]
            shim = LRShim(_one_group_each(params, [0.0] * groups, resumed), lr_dict, last_epoch=start,
                          device_schedule=True, backend=backend, device=device)
            out[name] = (shim.backend, shim.step)
        elif name == HOST:
            shim = LRShim(_one_group_each(params, [0.0] * groups, resumed), lr_dict, last_epoch=start, device_schedule=False)
            out[name] = ("host", shim.step)
        elif name in (LAMBDA_FLOAT, LAMBDA_TENSOR):
            tensor = name == LAMBDA_TENSOR
            lrs = [torch.ones((), device=device) if tensor else 1.0 for _ in range(groups)]
            sched = torch.optim.lr_scheduler.LambdaLR(_one_group_each(params, lrs, resumed),
                                                      [stock_lambda(c) for c in schedules], last_epoch=start)
            out[name] = (device.type if tensor else "host", sched.step)
        else:
            raise ValueError(f"unknown candidate {name!r}")
    return out


def cycled_schedules(groups: int) -> list[LearningRate]:
    """``groups`` schedules: the example's four kinds, repeated."""
    base = example_schedules()
    return [base[i % len(base)] for i in range(groups)]


QUICK_ROUNDS, ROUNDS = 3, 15
QUICK_BATCH_S, BATCH_S = 0.002, 0.02


def _settings(quick: bool, rounds: int | None) -> tuple[int, float]:
    return (rounds or (QUICK_ROUNDS if quick else ROUNDS)), (QUICK_BATCH_S if quick else BATCH_S)


def scheduler_step_rows(
    groups_list: Sequence[int], device: torch.device | str, quick: bool = False, rounds: int | None = None,
    log: Callable[[str], None] = lambda msg: None, regimes: Sequence[str] = tuple(REGIMES),
) -> list[dict[str, Any]]:
    """One row per (regime, groups, candidate): per-call time of ``scheduler.step()`` from step
    :data:`START_STEP` on, each round's time (``samples_us``) and the ratio to fusedsched's in the
    same round. Per regime, every (groups, candidate) pair is alternated in one run, so the
    per-group slopes and the ratios pair times taken moments apart (:func:`paired_ratio`)."""
    device = torch.device(device)
    rounds, target = _settings(quick, rounds)
    base_name, env, rows = fused_name(resolve_backend(device)), stamp(device), []
    for regime in regimes:
        log(f"scheduler.step(), schedules {regime}: {', '.join(map(str, groups_list))} groups")
        cands = {(groups, name): pair for groups in groups_list
                 for name, pair in scheduler_candidates(regime_schedules(regime, groups), device, start=START_STEP).items()}
        timings = alternate({key: fn for key, (_, fn) in cands.items()}, device, rounds, target)
        for (groups, name), (backend, fn) in cands.items():
            syncs, ops = count_host_syncs(fn, calls=2)
            base = timings.get((groups, base_name))
            rows.append({
                "suite": "scheduler_step", "regime": regime, "candidate": name, "backend": backend,
                "groups": groups, **timings[(groups, name)].as_us(samples=True),
                "ratio_vs_fusedsched": paired_ratio(timings[(groups, name)], base) if base else float("nan"),
                "syncs_per_step": syncs, "ops_per_step": ops, **env,
            })
        del cands
        gc.collect()
    return rows


def _paired(rows: dict[int, dict[str, Any]], groups: int, f: Callable[..., float], *others: dict[int, dict[str, Any]]) -> float:
    """The median over rounds of ``f`` of the rounds' times (us) of ``rows[groups]`` and ``rows[1st]``
    (the fewest groups), then the same of ``others``, all from one alternated run."""
    lo = min(rows)
    series = [np.asarray(r[g]["samples_us"]) for r in (rows, *others) for g in (groups, lo)]
    if len({len(x) for x in series}) != 1:  # rows from separate runs: medians
        series = [np.asarray([r[g]["median_us"]]) for r in (rows, *others) for g in (groups, lo)]
    return float(np.median(f(*series)))


def _per_group_ns(rows: dict[int, dict[str, Any]], groups: int | None = None) -> float | None:
    """The slope from the fewest groups measured to ``groups`` (default the most), ns per group."""
    lo, hi = min(rows), (max(rows) if groups is None else groups)
    if hi not in rows or hi <= lo:
        return None
    return _paired(rows, hi, lambda t_hi, t_lo: (t_hi - t_lo) / (hi - lo) * 1e3)


def targets(rows: Sequence[dict[str, Any]], device: torch.device | str, regime: str = "active") -> dict[str, Any]:
    """The targets for the auto backend in ``regime``, as measured (reported, never asserted); on CPU
    also the reference backend's against native (``reference``). Slopes and ratios pair the times of
    one round."""
    base = fused_name(resolve_backend(device))
    rows = [r for r in rows if r.get("regime", regime) == regime]
    by = {name: {r["groups"]: r for r in rows if r["candidate"] == name} for name in {r["candidate"] for r in rows}}
    at = {(r["candidate"], r["groups"]): r["ratio_vs_fusedsched"] for r in rows}
    out: dict[str, Any] = {"candidate": base, "regime": regime}
    fused = by.get(base, {})
    if fused:
        out["fixed_us"] = fused[min(fused)]["median_us"]
        if (slope := _per_group_ns(fused)) is not None:
            out["per_group_ns"] = slope
    for key, cand in (("vs_lambdalr_float_at_1000", LAMBDA_FLOAT), ("vs_lambdalr_tensor_at_1000", LAMBDA_TENSOR)):
        if (cand, 1000) in at:
            out[key] = at[(cand, 1000)]
    for key, goal in TARGETS.items():
        if key in out:
            out[f"{key}_target"] = goal
            out[f"{key}_met"] = bool(out[key] < goal) if key in ("fixed_us", "per_group_ns") else bool(out[key] >= goal)
    native, reference = by.get(fused_name("native"), {}), by.get(fused_name("reference"), {})
    if 1 in native and 1 in reference:
        ref: dict[str, Any] = {"fixed_vs_native": _paired(reference, 1, lambda r, _r, n, _n: r / n, native)}
        for n in (1000, 10000):
            if n in native and n in reference:
                ref[f"per_group_vs_native_at_{n}"] = _paired(
                    reference, n, lambda r_hi, r_lo, n_hi, n_lo: (r_hi - r_lo) / (n_hi - n_lo), native)
        lambdalr = by.get(LAMBDA_FLOAT, {})
        if 1 in lambdalr:
            ref["vs_lambdalr_float_at_1"] = _paired(reference, 1, lambda r, _r, f, _f: r / f, lambdalr)
        for key, goal in REFERENCE_TARGETS.items():
            if key in ref:
                ref[f"{key}_target"] = goal
                ref[f"{key}_met"] = bool(ref[key] <= goal)
        out["reference"] = ref
    return out


# --- CUDA: whole training steps and the schedule node alone ------------------------------------


def _capture(body: Callable[[], object], warmup: int = 3) -> torch.cuda.CUDAGraph:
    """``body`` alone captured after warm-ups, for graphs that hold only a scheduler step (whole
    training steps use ``CapturedTrainingStep``)."""
    from ..shim.graphs import capture

    return capture(body, warmup)[0]


def training_candidates(device: torch.device | str, width: int = 256, depth: int = 8) -> tuple[int, dict[str, tuple[str, Callable[[], object]]]]:
    """Four ways to train the same MLP (one Adam group per tensor, the example schedules cycled).

    The three graph variants share :class:`fusedsched.shim.graphs.CapturedTrainingStep`, so they differ
    only in how the learning rates move: on the device inside the graph, not at all, or by the host.
    """
    from ..shim.graphs import CapturedTrainingStep

    device = torch.device(device)
    xs, ys = regression_batches(width, device=device)
    groups = 2 * depth
    schedules = cycled_schedules(groups)
    lambdas = [stock_lambda(c) for c in schedules]

    def setup(tensor_lr: bool):
        torch.manual_seed(0)
        model = mlp(width, depth).to(device)
        lr = (lambda: torch.tensor(1e-3, device=device)) if tensor_lr else (lambda: 1.0)
        opt = torch.optim.Adam([{"params": [p], "lr": lr()} for p in model.parameters()], lr=0.0,
                               fused=True, capturable=tensor_lr)
        return (lambda x, y: F.mse_loss(model(x), y)), opt

    def replayer(captured):
        i = [0]

        def replay():
            i[0] += 1
            captured.replay(xs[i[0] % len(xs)], ys[i[0] % len(ys)])

        return replay

    out: dict[str, tuple[str, Callable[[], object]]] = {}
    loss_fn, opt = setup(True)
    shim = LRShim(opt, {f"g{k}": c for k, c in enumerate(schedules)}, device_schedule=True, device=device)
    out[GRAPH_FUSED] = (shim.backend, replayer(CapturedTrainingStep(loss_fn, opt, shim, (xs[0], ys[0]))))
    loss_fn, opt = setup(True)
    out[GRAPH_FLOOR] = ("none", replayer(CapturedTrainingStep(loss_fn, opt, None, (xs[0], ys[0]))))
    loss_fn, opt = setup(True)
    lr_tensors = [g["lr"] for g in opt.param_groups]
    fill_replay, step = replayer(CapturedTrainingStep(loss_fn, opt, None, (xs[0], ys[0]))), [0]

    def host_fill_then_replay():
        step[0] += 1
        for t, f in zip(lr_tensors, lambdas):
            t.fill_(f(step[0]))
        fill_replay()

    out[GRAPH_HOST_FILL] = ("host", host_fill_then_replay)
    loss_fn, opt = setup(False)
    sched, j = torch.optim.lr_scheduler.LambdaLR(opt, lambdas), [0]

    def eager():
        j[0] += 1
        opt.zero_grad(set_to_none=True)
        loss_fn(xs[j[0] % len(xs)], ys[j[0] % len(ys)]).backward()
        opt.step()
        sched.step()

    out[EAGER_LAMBDA] = ("host", eager)
    return groups, out


def training_step_rows(device: torch.device | str, quick: bool = False, rounds: int | None = None,
                       width: int = 256, depth: int = 8) -> list[dict[str, Any]]:
    """CUDA only: one replayed training step (MLP, one Adam group per tensor) per variant."""
    device = torch.device(device)
    rounds, target = _settings(quick, rounds)
    groups, cands = training_candidates(device, width, depth)
    timings = alternate({n: fn for n, (_, fn) in cands.items()}, device, rounds, target)
    floor, env = timings[GRAPH_FLOOR].median, stamp(device)
    return [{
        "suite": "training_step", "candidate": name, "backend": backend, "groups": groups,
        "model": f"mlp width {width} depth {depth}", **timings[name].as_us(),
        "ratio_vs_fusedsched": timings[name].median / timings[GRAPH_FUSED].median,
        "over_floor_us": (timings[name].median - floor) * 1e6, **env,
    } for name, (backend, _) in cands.items()]


def schedule_node_candidates(groups: int, device: torch.device | str) -> dict[str, tuple[str, Callable[[], object]]]:
    """CUDA only: ``name -> (backend, replay)`` of graphs holding only ``scheduler.step()``, one per
    backend, and a graph of one tiny kernel (the floor of a replay)."""
    device = torch.device(device)
    lr_dict = {f"g{i}": c for i, c in enumerate(cycled_schedules(groups))}
    out: dict[str, tuple[str, Callable[[], object]]] = {}
    for backend in device_backends(device):
        params = [torch.nn.Parameter(torch.zeros(1, device=device)) for _ in range(groups)]
        shim = LRShim(_one_group_each(params, [0.0] * groups), lr_dict, device_schedule=True, backend=backend, device=device)
        out[fused_name(backend)] = (backend, _capture(shim.step).replay)
    tiny = torch.zeros(1, device=device)
    out[NODE_FLOOR] = ("none", _capture(lambda: tiny.add_(1)).replay)
    return out


def schedule_node_rows(groups_list: Sequence[int], device: torch.device | str, quick: bool = False,
                       rounds: int | None = None) -> list[dict[str, Any]]:
    """CUDA only: GPU time (CUDA events) of a graph holding only ``scheduler.step()``, per backend."""
    device = torch.device(device)
    rounds, target = _settings(quick, rounds)
    env, rows = stamp(device), []
    for groups in groups_list:
        cands = schedule_node_candidates(groups, device)
        timings = alternate({n: fn for n, (_, fn) in cands.items()}, device, rounds, target, timer=cuda_event_time)
        rows += [{"suite": "schedule_node", "candidate": n, "backend": b, "groups": groups,
                  **timings[n].as_us(), **env} for n, (b, _) in cands.items()]
    return rows


# --- the whole run and its table ---------------------------------------------------------------


def run(groups_list: Sequence[int] = DEFAULT_GROUPS, device: torch.device | str = "cpu", quick: bool = False,
        rounds: int | None = None, log: Callable[[str], None] = lambda msg: None) -> dict[str, Any]:
    """Everything ``fusedsched bench`` measures, as plain data (see :func:`format_report`)."""
    device = torch.device(device)
    rows = scheduler_step_rows(groups_list, device, quick, rounds, log)
    result: dict[str, Any] = {
        "stamp": stamp(device),
        "settings": {"quick": quick, "groups": list(groups_list), "rounds": _settings(quick, rounds)[0],
                     "batch_target_s": _settings(quick, rounds)[1], "auto_backend": resolve_backend(device),
                     "backends": device_backends(device), "start_step": START_STEP, "regimes": dict(REGIMES),
                     "baseline": BASELINE},
        "scheduler_step": rows,
        "targets": targets(rows, device, "active"),
        "targets_by_regime": {regime: targets(rows, device, regime) for regime in REGIMES},
        "training_step": [],
        "schedule_node": [],
        "skipped": {},
    }
    if device.type == "cuda":
        log("training step (CUDA graphs)")
        result["training_step"] = training_step_rows(device, quick, rounds)
        log("schedule node alone (CUDA events)")
        result["schedule_node"] = schedule_node_rows(groups_list, device, quick, rounds)
    else:
        reason = f"needs CUDA; ran on {device.type}"
        result["skipped"] = {"training_step": reason, "schedule_node": reason}
    return result


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def _table(rows: Sequence[dict[str, Any]], ratio: str | None, extra: Sequence[str] = ()) -> list[str]:
    head = ["groups", "candidate", "backend", "median us", "p10-p90 us"] + ([ratio] if ratio else []) + list(extra)
    body = []
    for r in rows:
        cells = [str(r["groups"]), r["candidate"], r["backend"], _num(r["median_us"]),
                 f"{_num(r['p10_us'])}-{_num(r['p90_us'])}"]
        if ratio:
            cells.append(f"{_num(r['ratio_vs_fusedsched'])}x")
        cells += [_num(r[k]) for k in extra]
        body.append(cells)
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    return ["  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip() for cells in [head, *body]]


def _verdicts(t: dict[str, Any], quick: bool) -> list[str]:
    labels = {"fixed_us": ("fixed cost (1 group)", "us", "<"), "per_group_ns": ("per group", "ns", "<"),
              "vs_lambdalr_float_at_1000": ("vs LambdaLR float at 1000 groups", "x cheaper", ">="),
              "vs_lambdalr_tensor_at_1000": ("vs LambdaLR tensor at 1000 groups", "x cheaper", ">=")}
    ref_labels = {"fixed_vs_native": "fixed cost (1 group) / native's", "per_group_vs_native_at_1000":
                  "per group (1 to 1000 groups) / native's", "per_group_vs_native_at_10000":
                  "per group (1 to 10000 groups) / native's", "vs_lambdalr_float_at_1": "time at 1 group / LambdaLR float's"}
    word = (lambda met: "indicative only (--quick)") if quick else (lambda met: "met" if met else "NOT met")
    lines = [f"targets ({t['candidate']}, schedules {t['regime']})"]
    for key, (label, unit, op) in labels.items():
        if key in t:
            lines.append(f"  {label}: {t[key]:.3g} {unit} (target {op} {t[f'{key}_target']:g}): {word(t[f'{key}_met'])}")
    if "reference" in t:
        lines.append(f"reference backend (fusedsched[reference] against fusedsched[native], schedules {t['regime']})")
        ref = t["reference"]
        for key, label in ref_labels.items():
            if key in ref:
                lines.append(f"  {label}: {ref[key]:.3g}x (target <= {ref[f'{key}_target']:g}x): {word(ref[f'{key}_met'])}")
    return lines


def format_report(result: dict[str, Any]) -> str:
    """The human-readable tables of :func:`run`'s result: the active regime first (the headline)."""
    s, settings = result["stamp"], result["settings"]
    quick = settings.get("quick", False)
    lines = [
        f"device {s['device']} ({s['device_name']}), torch {s['torch']}, triton {s['triton']}, "
        f"python {s['python']}, commit {s['commit']}{' (dirty tree)' if s['dirty'] else ''}, "
        f"{s['threads']} threads",
        f"{settings['rounds']} alternated rounds per candidate, batches of about {settings['batch_target_s'] * 1e3:g} ms; "
        f"median and p10-p90 per call; x vs fusedsched = median over rounds of (candidate time / "
        f"{result['targets']['candidate']} time) in the same round"
        + (" (--quick: a smoke run, its numbers are not a measurement)" if quick else ""),
        f"schedules: one param group each, cycled over the groups; every scheduler starts at step "
        f"{settings.get('start_step', START_STEP)}",
        *(f"  {regime}: {text}" for regime, text in settings.get("regimes", REGIMES).items()),
        f"baseline: {settings.get('baseline', BASELINE)}",
        OPS_NOTE,
    ]
    regimes = list(dict.fromkeys(r.get("regime", "active") for r in result["scheduler_step"]))
    by_regime = result.get("targets_by_regime", {"active": result["targets"]})
    for regime in regimes:
        rows = [r for r in result["scheduler_step"] if r.get("regime", "active") == regime]
        lines += ["", f"scheduler.step(), schedules {regime}" + (" (headline)" if regime == regimes[0] else ""),
                  *_table(rows, "x vs fusedsched", ("syncs_per_step", "ops_per_step"))]
        if regime in by_regime:
            lines += ["", *_verdicts(by_regime[regime], quick)]
    if result["training_step"]:
        lines += ["", "whole training step, replayed CUDA graph (eager for LambdaLR)",
                  *_table(result["training_step"], "x vs fusedsched", ("over_floor_us",))]
    if result["schedule_node"]:
        lines += ["", "GPU time of a graph holding only scheduler.step() (CUDA events)", *_table(result["schedule_node"], None)]
    for suite, reason in result["skipped"].items():
        lines.append(f"{suite}: not measured ({reason})")
    return "\n".join(lines)
