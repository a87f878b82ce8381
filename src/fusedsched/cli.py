"""``python -m fusedsched {demo,plot,bench}``: train a demo, draw schedules, measure ``scheduler.step()``.

Bad input (a missing file, YAML that does not parse, an unknown schedule kind, an invalid value, a
bad option) exits with status 2 and one line on stderr naming the problem; any other failure exits
with status 1, also in one line. ``FUSEDSCHED_DEBUG=1`` re-raises instead, with the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import torch
import yaml

from . import _png, bench
from .config import AdamConfig, LearningRate, MultiTaskLearningRates, OptimizerConfig
from .models import MultiTaskModel, multi_task_batches
from .ops import BACKENDS, BackendUnavailable
from .optim import ALL_PARAMS, BACKBONE, build_optimizer
from .schedules import compute_lr_array, schedule_marks

__all__ = ["CliError", "load_schedules", "main", "schedule_curve"]

DEBUG_ENV = "FUSEDSCHED_DEBUG"
_OPTIMIZERS, _MULTI_TASK = set(OptimizerConfig.OPTIMIZERS), {"tower_learning_rates", "backbone_learning_rate"}


class CliError(Exception):
    """Bad input: reported as one line on stderr, exit status 2."""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


# --- configs -----------------------------------------------------------------------------------


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise CliError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"cannot read config file {path}: {_one_line(e)}") from None
    try:
        data = json.loads(text)  # JSON first: YAML 1.1 reads 1e-07 as a string
    except json.JSONDecodeError:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise CliError(f"{path}: invalid YAML: {_one_line(e)}") from None
    if not isinstance(data, dict):
        raise CliError(f"{path}: expected a mapping at the top level, got {'nothing' if data is None else type(data).__name__}")
    return data


def _at(data: Any, loc: Sequence[Any]) -> Any:
    for key in loc:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _describe(error: pydantic.ValidationError, data: Any, section: str | None) -> str:
    """The first validation error as ``where: what``, with the unknown-key case spelled out."""
    errors = error.errors()
    first, loc = errors[0], list(errors[0]["loc"])
    dotted = lambda parts: ".".join(map(str, ([section] if section else []) + list(parts))) or "top level"  # noqa: E731
    if first["type"] == "extra_forbidden":
        parent, key = _at(data, loc[:-1]), loc[-1]
        if isinstance(parent, dict) and set(parent) & set(LearningRate.KINDS):
            text = f"unknown schedule kind {key!r} at {dotted(loc[:-1])} (expected one of {', '.join(LearningRate.KINDS)})"
        else:
            text = f"unknown key {key!r} at {dotted(loc[:-1])}"
    else:
        text = f"{dotted(loc)}: {first['msg'].removeprefix('Value error, ')}"
        if first["type"] != "value_error":  # pydantic's own messages do not show the value
            text += f", got {first.get('input')!r:.60}"
    return text + (f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else "")


def load_schedules(path: str | Path) -> tuple[dict[str, LearningRate], OptimizerConfig]:
    """Every param group's schedule, and an optimizer config, from a YAML/JSON file holding any of:
    a tml config with a top-level ``optimizer:`` section, that section itself, a multi-task section
    (``tower_learning_rates`` + ``backbone_learning_rate``) or a bare ``LearningRate``.

    Bare schedules get an Adam optimizer (its ``lr`` is replaced by the schedule anyway).
    """
    path = Path(path)
    data = _read_mapping(path)
    section = "optimizer" if "optimizer" in data else None
    body = data[section] if section else data
    keys = set(body) if isinstance(body, dict) else set()
    if section and not isinstance(body, dict):
        raise CliError(f"{path}: section 'optimizer' must be a mapping, got {type(body).__name__}")
    if keys & _OPTIMIZERS:
        cls: type[pydantic.BaseModel] = OptimizerConfig
    elif keys & _MULTI_TASK:
        cls = MultiTaskLearningRates
    elif keys & set(LearningRate.KINDS):
        cls = LearningRate
    else:
        raise CliError(
            f"{path}: not a schedule config: expected an 'optimizer' section, an optimizer (adam, sgd, adagrad), "
            f"tower_learning_rates + backbone_learning_rate, or a schedule kind ({', '.join(LearningRate.KINDS)}); "
            f"found keys: {', '.join(map(str, keys)) or 'none'}"
        )
    try:
        model = cls.model_validate(body)
    except pydantic.ValidationError as e:
        raise CliError(f"{path}: invalid config: {_describe(e, body, section)}") from None
    if isinstance(model, LearningRate):
        model = OptimizerConfig(adam=AdamConfig(lr=1e-3), learning_rate=model)
    elif isinstance(model, MultiTaskLearningRates):
        model = OptimizerConfig(adam=AdamConfig(lr=1e-3), multi_task_learning_rates=model)
    rates = model.multi_task_learning_rates
    if rates is not None:
        if BACKBONE in rates.tower_learning_rates:
            raise CliError(f"{path}: tower name {BACKBONE!r} is reserved for the shared parameters")
        return {**rates.tower_learning_rates, BACKBONE: rates.backbone_learning_rate}, model
    return {ALL_PARAMS: model.learning_rate or LearningRate(constant=model.optimizer.lr)}, model


# --- plot --------------------------------------------------------------------------------------

FULL_EVALUATION_LIMIT = 5_000_000


def schedule_curve(cfg: LearningRate, steps: int, bins: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """``compute_lr_array`` over steps ``0 .. steps - 1``, reduced for drawing.

    Up to ``FULL_EVALUATION_LIMIT`` steps every step is evaluated and each of ``bins`` bins keeps
    its first, min, max and last value (so no jump or peak is lost). Beyond, the schedule is
    evaluated on a grid of ``8 * bins`` steps plus each mark and the step before it.
    """
    if steps > FULL_EVALUATION_LIMIT:
        marks = np.array([m for mark in schedule_marks(cfg) for m in (mark - 1, mark) if 0 <= m < steps], np.int64)
        grid = np.unique(np.concatenate([np.linspace(0, steps - 1, 8 * bins).astype(np.int64), marks]))
        return grid, compute_lr_array(cfg, grid)
    s = np.arange(steps, dtype=np.int64)
    y = compute_lr_array(cfg, s)
    if steps <= 4 * bins:
        return s, y
    starts = np.unique(np.linspace(0, steps, bins, endpoint=False).astype(np.int64))
    ends = np.append(starts[1:], steps) - 1
    lo, hi = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
    rising = y[ends] >= y[starts]
    mid = (starts + ends) / 2
    xs = np.stack([starts, mid, mid, ends], axis=1).reshape(-1)
    ys = np.stack([y[starts], np.where(rising, lo, hi), np.where(rising, hi, lo), y[ends]], axis=1).reshape(-1)
    return xs, ys


def _plot(args: argparse.Namespace) -> int:
    schedules, _ = load_schedules(args.config)
    steps = args.steps or max(100, int(1.25 * max((m for c in schedules.values() for m in schedule_marks(c)), default=80)))
    start = time.perf_counter()
    curves = [_png.Curve(name, *schedule_curve(cfg, steps), marks=[m for m in schedule_marks(cfg) if m < steps])
              for name, cfg in schedules.items()]
    title = f"{Path(args.config).name}: {len(curves)} schedule(s), {steps} steps"
    _save(args.out, [_png.Panel("learning rate", curves)], title)
    kinds = ", ".join(f"{name}: {cfg.kind}" for name, cfg in schedules.items())
    print(f"wrote {args.out}: {title} ({kinds}) in {time.perf_counter() - start:.2f} s")
    return 0


def _save(out: str, panels: list[_png.Panel], title: str) -> None:
    try:
        _png.save_plot(out, panels, title)
    except OSError as e:
        raise CliError(f"cannot write {out}: {e.strerror or _one_line(e)}") from None


# --- demo --------------------------------------------------------------------------------------


class _Progress:
    """A plain text progress bar on stderr, redrawn at most every ``interval`` seconds."""

    def __init__(self, total: int, label: str, width: int = 30, interval: float = 0.1, stream=None) -> None:
        self.total, self.label, self.width, self.interval = total, label, width, interval
        self.stream = stream or sys.stderr
        self.start = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if done < self.total and now - self.last < self.interval:
            return
        self.last = now
        filled = self.width * done // self.total
        rate = done / max(now - self.start, 1e-9)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{self.total} {rate:.0f} steps/s")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise CliError(f"invalid --device {name!r}: {_one_line(e)}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CliError(f"--device {name}: CUDA is not available on this machine (torch {torch.__version__})")
    if device.type not in ("cpu", "cuda"):
        raise CliError(f"--device {name}: only cpu and cuda are supported")
    return device


def _demo(args: argparse.Namespace) -> int:
    config = args.config or bench.example_config_path()
    schedules, opt_cfg = load_schedules(config)
    device = _device(args.device)
    rates = opt_cfg.multi_task_learning_rates
    towers = list(rates.tower_learning_rates) if rates is not None else ["task_a", "task_b"]
    torch.manual_seed(0)
    model = MultiTaskModel(towers).to(device)
    optimizer, shim = build_optimizer(model, opt_cfg, device_schedule=True, backend=args.backend)
    names = shim.group_names
    xs, ys = multi_task_batches(len(towers), device=device)
    lr_hist = torch.zeros(args.steps, len(names), device=device)
    loss_hist = torch.zeros(args.steps, device=device)
    if device.type == "cuda":
        from .graphs import CapturedTrainingStep

        mode, warmup = "whole step captured in a CUDA graph, replayed", 3
        captured = CapturedTrainingStep(model.loss, optimizer, shim, (xs[0], ys[0]), warmup_steps=warmup)

        def train_step(i: int) -> None:
            lr_hist[i].copy_(shim.lr_tensor)  # the rates this replay's optimizer.step() reads
            loss_hist[i].copy_(captured.replay(xs[i % len(xs)], ys[i % len(ys)]))
    else:
        mode, warmup = "eager", 0

        def train_step(i: int) -> None:
            lr_hist[i].copy_(shim.lr_tensor)
            optimizer.zero_grad(set_to_none=True)
            loss = model.loss(xs[i % len(xs)], ys[i % len(ys)])
            loss.backward()
            optimizer.step()
            shim.step()
            loss_hist[i].copy_(loss.detach())

    first_step = int(shim.step_tensor.item())  # after the graph's warm-up steps, if any
    bar = _Progress(args.steps, "training") if not args.quiet else None
    threads = torch.get_num_threads()
    if device.type == "cpu":  # a model this small gains nothing from intra-op threads, and they
        torch.set_num_threads(1)  # stall for whole time slices when other processes share the cores
        mode += ", 1 CPU thread"
    try:
        bench.synchronize(device)
        start = time.perf_counter()
        for i in range(args.steps):
            train_step(i)
            if bar:
                bar.update(i + 1)
        bench.synchronize(device)
        elapsed = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    if bar:
        bar.close()

    # The scheduler's own cost, against LambdaLR doing the same schedules, on fresh instances.
    ordered = [shim.lr_dict[n] for n in names]
    ours = bench.fused_name(shim.backend)
    cands = bench.scheduler_candidates(ordered, device, names=[ours, bench.LAMBDA_FLOAT])
    timing = bench.alternate({n: fn for n, (_, fn) in cands.items()}, device, rounds=7, target_s=0.003)
    syncs, ops = bench.count_host_syncs(cands[ours][1], calls=5)

    lrs, losses = lr_hist.cpu().numpy(), loss_hist.cpu().numpy()
    x = np.arange(first_step, first_step + args.steps)
    lr_curves = [_png.Curve(n, x, lrs[:, k], marks=schedule_marks(shim.lr_dict[n])) for k, n in enumerate(names)]
    title = f"fusedsched demo: {device.type}, {mode.split(',')[0]}, backend {shim.backend}"
    _save(args.out, [_png.Panel("learning rate per param group", lr_curves),
                     _png.Panel("training loss", [_png.Curve("loss", x, losses)])], title)

    t_ours, t_stock = timing[ours], timing[bench.LAMBDA_FLOAT]
    ratio = t_stock.median / t_ours.median
    versus = f"{ratio:.1f}x cheaper" if ratio >= 1 else f"{1 / ratio:.1f}x more expensive"
    tail = losses[-min(10, len(losses)):].mean()
    print(f"fusedsched demo: {args.steps} steps on {device} ({mode}), backend {shim.backend}, "
          f"{len(names)} param group(s): {', '.join(names)}")
    print(f"  training          {args.steps / elapsed:.1f} steps/s ({elapsed:.2f} s"
          f"{f', after {warmup} warm-up steps' if warmup else ''}); loss {losses[0]:.4f} -> {tail:.4f}")
    if not np.isfinite(losses).all():
        print(f"  warning           the loss is not finite from step {int(np.argmin(np.isfinite(losses)))} on: check the config")
    print(f"  scheduler.step()  {t_ours.median * 1e6:.2f} us ({ours}) vs {t_stock.median * 1e6:.2f} us "
          f"(LambdaLR, float LRs, same schedules): {versus} "
          f"[median of {t_ours.rounds} alternated rounds, p10-p90 {t_ours.p10 * 1e6:.2f}-{t_ours.p90 * 1e6:.2f} us]")
    print(f"  host syncs        {syncs:g} per scheduler.step() (aten::_local_scalar_dense / aten::item over 5 steps; "
          f"{ops:g} op(s) dispatched per step)")
    print(f"  plot              {args.out}: {len(names)} LR curve(s) + loss, schedule steps {first_step}-{first_step + args.steps - 1}")
    return 0


# --- bench -------------------------------------------------------------------------------------


def _bench(args: argparse.Namespace) -> int:
    device = _device(args.device)
    log = (lambda msg: None) if args.quiet else (lambda msg: print(f"bench: {msg}", file=sys.stderr, flush=True))
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = bench.run(args.groups, device, quick=args.quick, rounds=args.rounds, log=log)
    finally:
        torch.set_num_threads(threads)
    result["settings"]["command"] = "python -m fusedsched " + " ".join(args.argv)
    print(bench.format_report(result))
    try:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    except OSError as e:
        raise CliError(f"cannot write {args.json}: {e.strerror or _one_line(e)}") from None
    print(f"wrote {args.json}")
    return 0


# --- arguments and errors ----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + message over several lines; we want one
        raise CliError(f"{message} (see {self.prog} --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _groups(text: str) -> list[int]:
    return [_positive_int(part) for part in text.split(",") if part.strip()] or [_positive_int(text)]


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fusedsched", description="fusedsched: learning-rate schedules evaluated on the device. Commands: demo, plot, bench.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    backends = ["auto", *BACKENDS]

    demo = sub.add_parser("demo", help="train a small multi-task model, one schedule per tower; report and plot")
    demo.add_argument("--config", help="tml optimizer YAML (default: the bundled recap_multitask.yaml)")
    demo.add_argument("--steps", type=_positive_int, default=300, help="training steps (default 300)")
    demo.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    demo.add_argument("--backend", choices=backends, help="advance_ backend (default: $FUSEDSCHED_BACKEND or auto)")
    demo.add_argument("-o", "--out", default="demo.png", help="PNG to write (default demo.png)")
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_demo)

    plot = sub.add_parser("plot", help="draw every group's schedule from a config (compute_lr_array)")
    plot.add_argument("config", help="tml optimizer YAML, its optimizer section, a multi-task section or a LearningRate")
    plot.add_argument("--steps", type=_positive_int, help="steps to draw (default: past the last mark)")
    plot.add_argument("-o", "--out", default="lr.png", help="PNG to write (default lr.png)")
    plot.set_defaults(func=_plot)

    b = sub.add_parser("bench", help="time scheduler.step() against torch's LambdaLR (and whole steps on CUDA)")
    b.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    b.add_argument("--json", default="bench.json", help="where to write the results (default bench.json)")
    b.add_argument("--groups", type=_groups, default=list(bench.DEFAULT_GROUPS), help="comma-separated group counts")
    b.add_argument("--rounds", type=_positive_int, help="alternated rounds per candidate (default 11, quick 3)")
    b.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    b.add_argument("--threads", type=_positive_int, help="torch intra-op CPU threads (default: torch's)")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    b.set_defaults(func=_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, 1 on failure, 2 on bad input)."""
    try:
        argv = list(sys.argv[1:] if argv is None else argv)
        args = _parser().parse_args(argv)
        args.argv = argv
        return args.func(args)
    except (CliError, BackendUnavailable) as e:
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"fusedsched: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nfusedsched: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line instead of a traceback; FUSEDSCHED_DEBUG=1 shows it
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"fusedsched: error: {type(e).__name__}: {_one_line(e)} (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 1
