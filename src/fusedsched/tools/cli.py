"""``python -m fusedsched {demo,plot,bench}``: train a demo, draw schedules, measure ``scheduler.step()``.

``plot`` draws a config's schedules, or with ``--state FILE`` a saved scheduler's
(``torch.save(scheduler.state_dict(), FILE)``): the schedules in effect, switches joined in, with
each switch step and the current step marked (docs/switching.md).

Bad input (a missing file, YAML that does not parse, an unknown schedule kind, an invalid value, a
bad option) exits with status 2 and one line on stderr naming the problem (for an invalid config,
every error with its path, separated by ``; ``); any other failure exits with status 1, also in
one line. ``FUSEDSCHED_DEBUG=1`` re-raises instead, with the traceback.

Pictures are drawn by matplotlib (:mod:`fusedsched.tools.plotting`, ``pip install 'fusedsched[plot]'``)
outside pyplot, with the Agg canvas, in the format the output's extension names; ``plot`` without
matplotlib is bad input. This module checks the options, loads the configs and writes the files;
the demo and the benchmark themselves are tools (:mod:`fusedsched.tools.demo`,
:mod:`fusedsched.tools.bench`). ``bench`` writes its JSON only where ``--json`` says.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import torch

from ..ops import BACKENDS, BackendUnavailable
from ..ops.backends import BACKEND_ENV
from ..schedule.errors import NOT_INDENTED, causes_first, one_line, repr_start
from ..schedule.kinds import LearningRate
from ..shim.checkpoint import check_step, parse_switches, saved_schedules, state_mapping
from ..shim.hyperparameters import KEYS, scaled
from ..tml.builders import BACKBONE, schedules_by_group
from ..tml.config import (
    AdamConfig,
    MultiTaskLearningRates,
    OptimizerConfig,
    RecapOptimizerConfig,
    read_config_file,
    validate_optimizer_config,
)
from . import bench, demo, plotting

__all__ = ["CliError", "SavedState", "load_schedules", "load_state", "main"]

PROG = "fusedsched"
DEBUG_ENV = "FUSEDSCHED_DEBUG"
DEMO_PICTURE = "demo.png"
DEMO_MAX_STEPS = 10_000_000  # its per-step record of every group's rate and the loss stays small
#: Fields that make a section an optimizer config (either tml schema), not a bare schedule.
_OPTIMIZER_FIELDS = {*OptimizerConfig.OPTIMIZERS, "learning_rate", "multi_task_learning_rates", "single_task_learning_rate"}
_MULTI_TASK = {"tower_learning_rates", "backbone_learning_rate"}


class CliError(Exception):
    """Bad input: reported as one line on stderr, exit status 2."""



# --- configs -----------------------------------------------------------------------------------


def _at(data: Any, loc: Sequence[Any]) -> Any:
    for key in loc:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _describe(error: pydantic.ValidationError, data: Any, section: str | None) -> str:
    """Every validation error as ``where: what``, the likely cause first (``errors.causes_first``),
    joined by ``; `` into one line, with the unknown-key and unindented-schedule cases spelled out."""
    dotted = lambda parts: ".".join(map(str, ([section] if section else []) + list(parts))) or "top level"  # noqa: E731

    def one(e: dict[str, Any]) -> str:
        loc = list(e["loc"])
        if e["type"] == NOT_INDENTED:
            return e["msg"]
        if e["type"] == "extra_forbidden":
            parent, key = _at(data, loc[:-1]), loc[-1]
            if isinstance(parent, dict) and set(parent) & set(LearningRate.KINDS):
                text = f"unknown schedule kind {key!r} at {dotted(loc[:-1])} (expected one of {', '.join(LearningRate.KINDS)})"
            else:
                text = f"unknown key {key!r} at {dotted(loc[:-1])}"
            return text + (f" (did you mean {e['hint']!r}?)" if "hint" in e else "")
        text = f"{dotted(loc)}: {e['msg'].removeprefix('Value error, ')}"
        if e["type"] != "value_error":  # pydantic's own messages do not show the value
            text += f", got {repr_start(e.get('input'))}"
        return text

    return "; ".join(one(e) for e in causes_first(error, data, [section] if section else []))


def load_schedules(path: str | Path) -> tuple[dict[str, LearningRate], OptimizerConfig | RecapOptimizerConfig]:
    """Every param group's schedule, and an optimizer config, from a YAML/JSON file holding any of:
    a training config with a top-level ``optimizer:`` section in either tml schema (core or recap),
    that section itself, a multi-task section (``tower_learning_rates`` + ``backbone_learning_rate``)
    or a bare ``LearningRate``.

    Bare schedules get an Adam optimizer (its ``lr`` is replaced by the schedule anyway).
    """
    path = Path(path)
    try:
        data = read_config_file(path)
    except ValueError as e:
        raise CliError(one_line(e)) from None
    section = "optimizer" if "optimizer" in data else None
    body = data[section] if section else data
    if not isinstance(body, dict):
        raise CliError(f"{path}: section 'optimizer' must be a mapping, got {type(body).__name__}")
    keys = set(body)
    try:
        if keys & _OPTIMIZER_FIELDS:
            model = validate_optimizer_config(body)
        elif keys & _MULTI_TASK:
            rates = MultiTaskLearningRates.model_validate(body)
            model = OptimizerConfig(adam=AdamConfig(lr=1e-3), multi_task_learning_rates=rates)
        elif keys & set(LearningRate.KINDS):
            model = OptimizerConfig(adam=AdamConfig(lr=1e-3), learning_rate=LearningRate.model_validate(body))
        else:
            raise CliError(
                f"{path}: not a schedule config: expected an 'optimizer' section, an optimizer (adam, sgd, adagrad), "
                f"tower_learning_rates + backbone_learning_rate, or a schedule kind ({', '.join(LearningRate.KINDS)}); "
                f"found keys: {', '.join(map(str, keys)) or 'none'}"
            )
    except pydantic.ValidationError as e:
        raise CliError(f"{path}: invalid config: {_describe(e, body, section)}") from None
    except ValueError as e:  # the schema cannot be told, or mixes tml core and recap fields
        raise CliError(f"{path}: {one_line(e)}") from None
    schedules = schedules_by_group(model)
    if isinstance(model, OptimizerConfig) and model.multi_task_learning_rates is not None:
        if BACKBONE in model.multi_task_learning_rates.tower_learning_rates:
            raise CliError(f"{path}: tower name {BACKBONE!r} is reserved for the shared parameters")
    return schedules, model


@dataclass(frozen=True)
class SavedState:
    """What ``plot --state`` draws from a saved scheduler state."""

    schedules: dict[str, LearningRate]  #: every group's rate (its schedule in effect times its lr multiplier)
    panels: dict[str, dict[str, LearningRate]]  #: ``{hyperparameter: {group: schedule times multiplier}}``
    switches: list[int]  #: the switch steps, in order
    step: int  #: ``last_epoch``


def load_state(path: str | Path) -> SavedState:
    """A ``torch.save``'d ``LRShim.state_dict()``, loaded with ``weights_only=True`` and checked as a
    load checks it; ``CliError`` naming the file and what is wrong."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CliError(f"--state {path}: no such file") from None
    except Exception as e:  # noqa: BLE001 - pickle's, zipfile's and torch's own errors alike
        raise CliError(f"--state {path}: not a saved scheduler state (torch.load(weights_only=True): {one_line(e)})") from None
    try:
        state = state_mapping(state)
        if state.get("lr_dict") is None:
            raise ValueError(f"it has no 'lr_dict' (keys: {sorted(state)})")
        names = [str(name) for name in state["lr_dict"]]
        lr, hyper, mults = saved_schedules(state, names)
        switches = parse_switches(state.get("switches"), names)
        step = check_step(state["last_epoch"], "state_dict['last_epoch']", minimum=-1)
    except (TypeError, ValueError, OverflowError) as e:
        raise CliError(f"--state {path}: not a scheduler's state_dict(): {one_line(e)}") from None
    mults = mults or {}
    panels: dict[str, dict[str, LearningRate]] = {key: {} for key in KEYS}
    for group, scheduled in (hyper or {}).items():
        for key, schedule in scheduled.items():
            panels[key][group] = scaled(schedule, mults.get(group, {}).get(key, 1.0))
    return SavedState({g: scaled(cfg, mults.get(g, {}).get("lr", 1.0)) for g, cfg in lr.items()},
                      {key: groups for key, groups in panels.items() if groups}, [sw.at for sw in switches], step)


# --- output files ------------------------------------------------------------------------------


def _check_writable(path: str, option: str) -> None:
    """Fail before any work when ``path`` cannot be a new file: a directory, or no such folder."""
    p = Path(path)
    if p.is_dir():
        raise CliError(f"{option} {path}: is a directory")
    folder = p.parent
    if not folder.is_dir():
        raise CliError(f"{option} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CliError(f"{option} {path}: folder {folder} is not writable")


def _figure_path(path: str, option: str = "-o") -> str:
    """``path`` checked as a picture matplotlib can write here, by its extension; returns the format."""
    try:
        fmt = plotting.output_format(path)
    except ImportError as e:
        raise CliError(str(e)) from None
    except ValueError as e:
        raise CliError(f"{option} {one_line(e)}") from None
    _check_writable(path, option)
    return fmt


def _save(fig: Any, out: str) -> None:
    try:
        plotting.save_figure(fig, out)
    except OSError as e:
        raise CliError(f"cannot write {out}: {e.strerror or one_line(e)}") from None


def _write_csv(path: str, steps: np.ndarray, columns: dict[str, np.ndarray]) -> None:
    """``step`` and one column per name; floats in their shortest exact form (``repr``)."""
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["step", *columns])
            writer.writerows(zip(steps.tolist(), *(np.asarray(c, dtype=np.float64).tolist() for c in columns.values())))
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or one_line(e)}") from None


# --- plot --------------------------------------------------------------------------------------


def _plot(args: argparse.Namespace) -> int:
    if args.config is None and args.state is None:
        raise CliError(f"the following arguments are required: config (or --state FILE, a saved scheduler state) "
                       f"(see {PROG} plot --help)")
    if args.config is not None and args.state is not None:
        raise CliError(f"plot draws a config file or a saved scheduler state (--state FILE), not both "
                       f"(see {PROG} plot --help)")
    _figure_path(args.out)
    if args.csv:
        _check_writable(args.csv, "--csv")
    saved = None
    if args.state is not None:
        saved = load_state(args.state)
        schedules, panels, source = saved.schedules, saved.panels, Path(args.state).name
    else:
        schedules, model = load_schedules(args.config)
        if isinstance(model, OptimizerConfig):  # the rates the groups get: times their lr multipliers
            multipliers = model.multipliers_by_group(list(schedules))
            schedules = {g: scaled(cfg, multipliers.get(g, {}).get("lr", 1.0)) for g, cfg in schedules.items()}
        panels, source = _hyperparameter_panels(model, list(schedules)), Path(args.config).name
    kinds = ", ".join(f"{name}: {cfg.kind}" for name, cfg in schedules.items())
    steps = args.steps or plotting.default_steps(schedules)
    marks: dict[str, Any] = {}
    if saved is not None:  # past the current step too
        steps = args.steps or min(plotting.MAX_PLOT_STEPS, max(steps, saved.step + saved.step // 4 + 1))
        marks = {"switches": saved.switches, "current": saved.step}
    start = time.perf_counter()
    fig, axes = plotting.new_figure(1 + len(panels), height=4.5 + 3.0 * len(panels))
    title = f"{source}: {len(schedules)} schedule(s), steps 0-{steps - 1:,}"
    if saved is not None:
        title += f"; at step {saved.step:,}, {len(saved.switches)} switch(es)"
    plotting.plot_schedules(schedules, steps, ax=axes[0], title=title, legend="outside", **marks)
    for ax, (key, scheduled) in zip(axes[1:], panels.items()):
        plotting.plot_schedules(scheduled, steps, ax=ax, title=f"{key}: {len(scheduled)} group(s)", legend="outside",
                                ylabel=key, **marks)
    _save(fig, args.out)
    drawn = "".join(f"; {key}: {len(groups)} group(s)" for key, groups in panels.items())
    print(f"wrote {args.out}: {title} ({kinds}{drawn}) in {time.perf_counter() - start:.2f} s")
    if args.csv:
        x, rates = plotting.schedule_table(schedules, steps)
        _write_csv(args.csv, x, rates)
        print(f"wrote {args.csv}: {len(x)} steps x {len(rates)} group(s)"
              + ("" if len(x) == steps else f" (sampled: every schedule change and {plotting.SAMPLE_POINTS:,} even steps)"))
    return 0


def _hyperparameter_panels(model: Any, group_names: list[str]) -> dict[str, dict[str, LearningRate]]:
    """``{hyperparameter: {group: schedule times its multiplier}}`` for the config's scheduled
    hyperparameters (none for a recap config), in ``KEYS`` order: one panel each."""
    if not isinstance(model, OptimizerConfig):
        return {}
    multipliers = model.multipliers_by_group(group_names)
    panels: dict[str, dict[str, LearningRate]] = {key: {} for key in KEYS}
    for group, scheduled in model.hyperparameters_by_group(group_names).items():
        for key, schedule in scheduled.items():
            panels[key][group] = scaled(schedule, multipliers.get(group, {}).get(key, 1.0))
    return {key: groups for key, groups in panels.items() if groups}


# --- demo --------------------------------------------------------------------------------------


def _device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise CliError(f"--device {name!r}: expected cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CliError(f"--device {name!r}: CUDA is not available on this machine (torch {torch.__version__})")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise CliError(f"--device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def _backend(option: str | None) -> str | None:
    """``--backend`` (argparse checked it), else ``$FUSEDSCHED_BACKEND`` checked here; None: the default."""
    if option is not None:
        return option
    value = os.environ.get(BACKEND_ENV)
    if value is not None and value not in ("auto", *BACKENDS):
        raise CliError(f"{BACKEND_ENV}={value!r} is not a backend: expected one of auto, {', '.join(BACKENDS)}")
    return value


def _progress_wanted(option: bool | None) -> bool:
    """``--progress`` / ``--no-progress``; by default on only when stdout and stderr are terminals."""
    if option is not None:
        return option
    return sys.stdout.isatty() and sys.stderr.isatty()


def _demo(args: argparse.Namespace) -> int:
    backend = _backend(args.backend)
    device = _device(args.device)
    out, skipped = args.out, None
    if out is None:  # without matplotlib the report still runs; an explicit -o fails below
        try:
            plotting.output_format(DEMO_PICTURE)
            out = DEMO_PICTURE
        except ImportError as e:
            skipped = str(e)
    if out is not None:
        _figure_path(out)
    if args.csv:
        _check_writable(args.csv, "--csv")
    config = args.config or demo.config_path()
    _, opt_cfg = load_schedules(config)
    try:
        model, optimizer, shim = demo.build(opt_cfg, device, backend)
    except ValueError as e:  # e.g. a recap config whose backbone schedule is null: the demo has a backbone
        raise CliError(f"{config}: cannot build the demo's optimizer: {one_line(e)}") from None
    run = demo.train(model, optimizer, shim, device, args.steps, progress=_progress_wanted(args.progress))
    if out is not None:
        _save(demo.figure(run), out)
    if args.csv:
        _write_csv(args.csv, run.step_numbers, {**run.rates, "loss": run.losses})
    print(demo.report(run, out, skipped, args.csv))
    return 0


# --- bench -------------------------------------------------------------------------------------


def _bench(args: argparse.Namespace) -> int:
    _backend(None)  # the run reports the default backend: a bad $FUSEDSCHED_BACKEND fails now, not after it
    device = _device(args.device)
    if args.json is not None:
        _check_writable(args.json, "--json")
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
    if args.json is not None:
        try:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        except OSError as e:
            raise CliError(f"cannot write {args.json}: {e.strerror or one_line(e)}") from None
        print(f"wrote {args.json}")
    return 0


# --- arguments and errors ----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints usage + message over several lines; we want one
        raise CliError(f"{message} (see {self.prog} --help)")


def _int_in(low: int, high: int) -> Any:
    """An argparse ``type``: an integer in ``[low, high]``; the error names the value."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {text!r:.60}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected an integer from {low} to {high}, got {value}")
        return value

    return parse


def _groups(text: str) -> list[int]:
    parse = _int_in(1, MAX_BENCH_GROUPS)
    return [parse(part) for part in text.split(",") if part.strip()] or [parse(text)]


MAX_BENCH_GROUPS = 1_000_000


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="fusedsched: learning-rate schedules evaluated on the device. Commands: demo, plot, bench.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    backends = ["auto", *BACKENDS]
    formats = "the format follows the extension: .png, .svg, .pdf, ... (needs matplotlib: pip install 'fusedsched[plot]')"

    demo = sub.add_parser("demo", help="train a small multi-task model, one schedule per tower; report and plot")
    demo.add_argument("--config", help="tml optimizer YAML (default: the bundled demo.yaml)")
    demo.add_argument("--steps", type=_int_in(1, DEMO_MAX_STEPS), default=300, help=f"training steps, 1 to {DEMO_MAX_STEPS:,} (default 300)")
    demo.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    demo.add_argument("--backend", choices=backends, help=f"advance_ backend (default: ${BACKEND_ENV} or auto)")
    demo.add_argument("-o", "--out", help=f"picture of every group's learning rate, scheduled hyperparameters and the loss (default {DEMO_PICTURE}, "
                                          f"skipped when matplotlib is missing); {formats}")
    demo.add_argument("--csv", help="also write the recorded data: step, every group's learning rate, loss")
    demo.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="a progress bar on stderr (default: only when stdout and stderr are terminals)")
    demo.add_argument("-q", "--quiet", dest="progress", action="store_false", help="no progress bar (--no-progress)")
    demo.set_defaults(func=_demo)

    plot = sub.add_parser("plot", help="draw every group's schedule from a config or a saved scheduler state (compute_lr_array: "
                                       "the compiled program, as the kernels compute it)")
    plot.add_argument("config", nargs="?", help="tml optimizer YAML, its optimizer section, a multi-task section or a LearningRate")
    plot.add_argument("--state", help="instead of a config: a saved scheduler state, torch.save(scheduler.state_dict(), FILE); "
                                      "draws the schedules in effect with the switch steps and the current step marked")
    plot.add_argument("--steps", type=_int_in(1, plotting.MAX_PLOT_STEPS),
                      help=f"draw steps 0 .. STEPS - 1, STEPS from 1 to {plotting.MAX_PLOT_STEPS} (default: past the last schedule change)")
    plot.add_argument("-o", "--out", default="lr.png", help=f"picture to write (default lr.png); {formats}")
    plot.add_argument("--csv", help=f"also write the curves: step, every group's learning rate (every step up to "
                                    f"{plotting.SAMPLE_POINTS:,} steps; beyond, the steps drawn)")
    plot.set_defaults(func=_plot)

    b = sub.add_parser("bench", help="time scheduler.step() against torch's LambdaLR (and whole steps on CUDA)")
    b.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    b.add_argument("--json", help="also write the results as JSON to this file (default: none written)")
    b.add_argument("--groups", type=_groups, default=list(bench.DEFAULT_GROUPS),
                   help=f"comma-separated group counts, each 1 to {MAX_BENCH_GROUPS:,}")
    b.add_argument("--rounds", type=_int_in(1, 10_000), help="alternated rounds per candidate (default 15, quick 3)")
    b.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    b.add_argument("--threads", type=_int_in(1, 1024), help="torch intra-op CPU threads (default: torch's)")
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
        print(f"fusedsched: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nfusedsched: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - one line instead of a traceback; FUSEDSCHED_DEBUG=1 shows it
        if os.environ.get(DEBUG_ENV):
            raise
        print(f"fusedsched: error: {type(e).__name__}: {one_line(e)} (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 1
