"""Pictures of learning-rate schedules, drawn by matplotlib (``pip install 'fusedsched[plot]'``).

matplotlib is imported only when a picture is drawn or saved, so ``import fusedsched`` never pays
for it. The values come from :func:`fusedsched.compute_lr_array` at the steps chosen by
:func:`sample_steps`: every step of a short run, or, for a long one, an even grid plus each step
where a schedule changes shape (:func:`fusedsched.schedule.reference.schedule_marks`) and the step before it,
so no boundary, ramp end or one-step value is lost.

>>> from fusedsched import LearningRate
>>> ramp = LearningRate(linear_ramp_to_constant=dict(learning_rate=0.5, num_ramp_steps=4))
>>> steps, lrs = schedule_table({"head": ramp}, 6)
>>> steps.tolist(), lrs["head"].tolist()
([0, 1, 2, 3, 4, 5], [0.0, 0.125, 0.25, 0.375, 0.5, 0.5])
"""

from __future__ import annotations

import functools
import io
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..ops.host import compute_lr_array
from ..schedule.fields import MAX_STEP
from ..schedule.kinds import LearningRate
from ..schedule.reference import schedule_marks

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "INSTALL_HINT",
    "MAX_PLOT_STEPS",
    "SAMPLE_POINTS",
    "default_steps",
    "new_figure",
    "output_format",
    "plot_schedules",
    "plot_training",
    "sample_steps",
    "save_figure",
    "schedule_table",
]

INSTALL_HINT = "pip install 'fusedsched[plot]' (or: pip install matplotlib)"
MAX_PLOT_STEPS = MAX_STEP + 1  # steps 0 .. MAX_STEP, every one exact in float64
SAMPLE_POINTS = 10_000  # up to this many steps, every step is evaluated and drawn
_MARKED_LINES = 40  # beyond this many marks on one axes, marks are dots on the curves only
Schedules = LearningRate | Sequence[LearningRate] | Mapping[str, LearningRate]


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        reason = "" if isinstance(e, ModuleNotFoundError) else f" ({' '.join(str(e).split())})"
        raise ImportError(f"plotting needs matplotlib, which cannot be imported{reason}: {INSTALL_HINT}") from e
    return matplotlib


def _named(configs: Schedules) -> dict[str, LearningRate]:
    """``configs`` as ``{name: LearningRate}``: a mapping keeps its names, a sequence is numbered."""
    if isinstance(configs, LearningRate):
        named = {configs.kind: configs}
    elif isinstance(configs, Mapping):
        named = {str(name): cfg for name, cfg in configs.items()}
    elif isinstance(configs, Sequence) and not isinstance(configs, (str, bytes)):
        named = {f"[{i}]": cfg for i, cfg in enumerate(configs)}
    else:
        raise TypeError(f"configs must be a LearningRate, a sequence or a mapping of them, got {type(configs).__name__}")
    if not named:
        raise ValueError("configs is empty: nothing to draw")
    for name, cfg in named.items():
        if not isinstance(cfg, LearningRate):
            raise TypeError(f"configs[{name!r}] must be a LearningRate, got {type(cfg).__name__}")
    return named


def _check_steps(steps: object, name: str = "steps") -> int:
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {steps!r} ({type(steps).__name__})")
    if not 1 <= steps <= MAX_PLOT_STEPS:
        raise ValueError(f"{name} must be in [1, {MAX_PLOT_STEPS}] (2**53 - 1), got {steps}")
    return int(steps)


def default_steps(configs: Schedules) -> int:
    """A step count that shows every schedule's last change: ``1.25 *`` the last mark, at least 100."""
    last = max((m for cfg in _named(configs).values() for m in schedule_marks(cfg)), default=0)
    return min(MAX_PLOT_STEPS, max(100, last + last // 4 + 1))


def sample_steps(configs: Schedules, start: int, stop: int, points: int = SAMPLE_POINTS) -> np.ndarray:
    """The steps in ``[start, stop)`` worth evaluating to draw ``configs``, sorted, as int64.

    Every step when there are at most ``points``; otherwise ``points`` evenly spaced steps (both
    ends included) plus every schedule mark ``m`` in range and ``m - 1``, so each jump is drawn
    between two adjacent steps.
    """
    named = _named(configs)
    if not 0 <= start < stop <= MAX_PLOT_STEPS:
        raise ValueError(f"need 0 <= start < stop <= {MAX_PLOT_STEPS}, got start={start}, stop={stop}")
    if points < 2:
        raise ValueError(f"points must be >= 2, got {points}")
    if stop - start <= points:
        return np.arange(start, stop, dtype=np.int64)
    grid = np.rint(np.linspace(start, stop - 1, points)).astype(np.int64)  # exact: stop <= 2**53
    marks = [s for cfg in named.values() for m in schedule_marks(cfg) for s in (m - 1, m) if start <= s < stop]
    return np.unique(np.concatenate([grid, np.asarray(marks, dtype=np.int64)]))


def schedule_table(configs: Schedules, steps: int, points: int = SAMPLE_POINTS) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(s, {name: compute_lr_array(cfg, s)})`` with ``s = sample_steps(configs, 0, steps, points)``."""
    named, steps = _named(configs), _check_steps(steps)
    s = sample_steps(named, 0, steps, points)
    return s, {name: compute_lr_array(cfg, s) for name, cfg in named.items()}


# --- drawing -----------------------------------------------------------------------------------


def new_figure(rows: int = 1, width: float = 10.0, height: float = 4.5) -> tuple[Figure, list[Axes]]:
    """A figure outside pyplot (no window, no global state) with ``rows`` axes sharing x."""
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    return fig, list(axes)


def _pyplot_figure(rows: int, width: float, height: float) -> tuple[Figure, list[Axes]]:
    _matplotlib()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, 1, sharex=True, squeeze=False, figsize=(width, height), layout="constrained")
    return fig, list(axes[:, 0])


def _label(name: str, cfg: LearningRate) -> str:
    """``name (kind)``, shown as written: ``$`` escaped (no mathtext), a leading ``_`` kept in the legend."""
    text = f"{name} ({cfg.kind})".replace("$", r"\$")
    return " " + text if text.startswith("_") else text


def _style(i: int, n: int) -> dict[str, Any]:
    """Line ``i`` of ``n``: the axes' own colour cycle up to 10 lines; beyond, 20 colours x 4 dash styles."""
    if n <= 10:
        return {}
    from matplotlib import colormaps

    colors = colormaps["tab20"].colors
    return {"color": colors[i % len(colors)], "ls": ("-", "--", "-.", ":")[(i // len(colors)) % 4]}


def _draw_steps(ax: Axes, first: int, last: int, switches: Sequence[int], current: int | None) -> None:
    """Each switch step as a dashed black line, the current step as a solid grey one (those in ``[first, last]``)."""
    shown = sorted({int(s) for s in switches if first <= s <= last})
    for i, at in enumerate(shown):
        ax.axvline(at, color="0.1", ls="--", lw=1.2, zorder=1, label="switch" if i == 0 else None)
    if current is not None and first <= current <= last:
        ax.axvline(current, color="0.55", ls="-", lw=1.6, zorder=1, label=f"current step ({current:,})")


def _draw_rates(ax: Axes, x: np.ndarray, rates: Mapping[str, np.ndarray], configs: Mapping[str, LearningRate], ylabel: str,
                legend: str, from_zero: bool = True, switches: Sequence[int] = (), current: int | None = None) -> None:
    """One line per group, labelled ``name (kind)``; each schedule mark as a dot and a dotted line;
    the ``switches`` steps and the ``current`` step (a saved scheduler's) as vertical lines.

    ``legend``: ``"outside"`` (right of the axes, never over a curve) or a matplotlib ``loc``;
    ``from_zero``: the y axis starts at 0 (else it fits the curves: a momentum cycling near 0.9).
    """
    marks_drawn = 0
    marked = {name: [m for m in schedule_marks(cfg) if x[0] <= m <= x[-1]] for name, cfg in configs.items()}
    lines_too = sum(map(len, marked.values())) <= _MARKED_LINES
    for i, (name, y) in enumerate(rates.items()):
        (line,) = ax.plot(x, y, lw=1.8, label=_label(name, configs[name]), marker="o" if len(x) == 1 else None,
                          **_style(i, len(rates)))
        at = np.searchsorted(x, marked[name])
        ok = at < len(x)
        at, ms = at[ok], np.asarray(marked[name])[ok]
        ok = x[at] == ms  # marks fall on drawn steps (sample_steps keeps them)
        if ok.any():
            ax.plot(ms[ok], np.asarray(y)[at[ok]], "o", ms=4.5, color=line.get_color(), zorder=3)
            if lines_too:
                for m in ms[ok]:
                    ax.axvline(m, color=line.get_color(), ls=":", lw=0.9, alpha=0.6, zorder=0)
            marks_drawn += int(ok.sum())
    if marks_drawn:
        ax.plot([], [], "o", color="0.35", ms=4.5, label="schedule change")
    _draw_steps(ax, int(x[0]), int(x[-1]), switches, current)
    ax.set_ylabel(ylabel)
    if from_zero:
        ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
    ax.grid(True, color="0.9", lw=0.8)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 4), useMathText=True)
    if legend == "outside":
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    else:
        ax.legend(fontsize="small", loc=legend, framealpha=0.9)


def _step_axis(ax: Axes, first: int, last: int) -> None:
    ax.set_xlabel("step")
    ax.set_xlim(first, max(last, first + 1))
    if last - first < 10:  # no ticks between steps on a short run
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 6), useMathText=True)


def _root(ax: Axes) -> Figure:
    fig = ax.figure
    while getattr(fig, "figure", fig) is not fig:  # a SubFigure's parent
        fig = fig.figure
    return fig


def plot_schedules(configs: Schedules, steps: int, ax: Axes | None = None, *, title: str | None = None,
                   legend: str | None = None, points: int = SAMPLE_POINTS, ylabel: str = "learning rate",
                   switches: Sequence[int] = (), current: int | None = None) -> Figure:
    """Draw each schedule's value (a learning rate, or ``ylabel``) over steps ``0 .. steps - 1``; return the figure.

    Args:
        configs: a ``LearningRate``, a sequence of them, or ``{group name: LearningRate}``.
        steps: how many steps to draw, ``1 <= steps <= 2**53 - 1``.
        ax: the matplotlib ``Axes`` to draw into; ``None`` makes a new pyplot figure
            (in a notebook, ``plt.show()`` or the cell's output shows it).
        title: the axes title (default: the number of schedules and the step range).
        legend: ``"outside"`` (right of the axes) or a matplotlib legend ``loc`` such as ``"best"``;
            default ``"outside"`` on a new figure, ``"best"`` on a given ``ax``.
        points: the most steps evaluated before sampling (see :func:`sample_steps`).
        ylabel: the y axis's label (a scheduled hyperparameter's name, e.g. ``weight_decay``).
        switches: steps where a saved scheduler switched its schedules, drawn as dashed lines.
        current: a saved scheduler's step (``last_epoch``), drawn as a solid line.

    Raises:
        ImportError: matplotlib is not installed (the message says what to install).
        TypeError, ValueError: a bad ``configs`` or ``steps``, naming the value.
    """
    named, steps = _named(configs), _check_steps(steps)
    x, rates = schedule_table(named, steps, points)
    if legend is None:
        legend = "outside" if ax is None else "best"
    if ax is None:
        _, (ax,) = _pyplot_figure(1, 10.0, 4.5)
    _draw_rates(ax, x, rates, named, ylabel, legend, switches=switches, current=current)
    _step_axis(ax, 0, steps - 1)
    ax.set_title(title if title is not None else f"learning-rate schedules: {len(named)} group(s), steps 0-{steps - 1:,}")
    return _root(ax)


def plot_training(first_step: int, lrs: Mapping[str, np.ndarray], loss: np.ndarray, configs: Mapping[str, LearningRate],
                  *, title: str | None = None, points: int = SAMPLE_POINTS, pyplot: bool = True,
                  hyperparameters: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                  hyperparameter_configs: Mapping[str, Mapping[str, LearningRate]] | None = None) -> Figure:
    """Panels over the steps of a run: every group's recorded learning rate, each recorded
    hyperparameter (one panel per key), and the loss.

    ``lrs[name][i]``, ``hyperparameters[key][name][i]`` and ``loss[i]`` belong to schedule step
    ``first_step + i``; ``configs`` (``hyperparameter_configs[key]``) gives each group's kind and
    marks. Long runs are drawn at :func:`sample_steps` of the run, every schedule's marks kept.
    ``pyplot=False`` makes the figure outside pyplot (see :func:`new_figure`).
    """
    loss = np.asarray(loss)
    n = len(loss)
    if n < 1 or any(len(y) != n for y in lrs.values()) or set(lrs) != set(configs):
        raise ValueError(f"need one value per step for every group and the loss, got {n} losses, "
                         f"{ {k: len(v) for k, v in lrs.items()} } rates for groups {list(configs)}")
    hyperparameters = hyperparameters or {}
    hyper_configs = hyperparameter_configs or {}
    for key, values in hyperparameters.items():
        if any(len(y) != n for y in values.values()) or set(values) != set(hyper_configs.get(key, {})):
            raise ValueError(f"need one {key} value per step for every group it schedules, got "
                             f"{ {k: len(v) for k, v in values.items()} } values for groups {list(hyper_configs.get(key, {}))}")
    every = {**configs, **{f"{key}/{g}": cfg for key in hyperparameters for g, cfg in hyper_configs[key].items()}}
    x = sample_steps(every, first_step, first_step + n, points)
    at = x - first_step
    rows = 2 + len(hyperparameters)
    fig, axes = (_pyplot_figure if pyplot else new_figure)(rows, 10.0, 7.0 + 2.5 * len(hyperparameters))
    ax_lr, ax_loss = axes[0], axes[-1]
    _draw_rates(ax_lr, x, {name: np.asarray(y)[at] for name, y in lrs.items()}, configs, "learning rate per group", "outside")
    for ax, (key, values) in zip(axes[1:-1], hyperparameters.items()):
        _draw_rates(ax, x, {g: np.asarray(y)[at] for g, y in values.items()}, hyper_configs[key], key, "outside",
                    from_zero=False)
    ax_loss.plot(x, loss[at], lw=1.0, color="0.25", label="loss")
    ax_loss.set_ylabel("training loss")
    ax_loss.grid(True, color="0.9", lw=0.8)
    _step_axis(ax_loss, int(x[0]), int(x[-1]))
    if title is not None:
        fig.suptitle(title)
    return fig


# --- files -------------------------------------------------------------------------------------


@functools.cache
def _can_write(fmt: str) -> str | None:
    """None when matplotlib can write ``fmt`` here (tried on a tiny figure), else why not."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.text(0.5, 0.5, "x")
    try:
        fig.savefig(io.BytesIO(), format=fmt)
    except Exception as e:  # noqa: BLE001 - e.g. pgf without LaTeX, an image format without Pillow
        return f"{type(e).__name__}: {' '.join(str(e).split())}"
    return None


def output_format(path: str | os.PathLike[str]) -> str:
    """The file format for ``path``, from its extension, once checked that matplotlib can write it.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: no extension, an extension matplotlib does not know, or a format it cannot
            write on this machine; the message lists the formats it supports.
    """
    _matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase

    supported = FigureCanvasBase.get_supported_filetypes()
    listed = ", ".join(f".{ext}" for ext in sorted(supported))
    ext = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if not ext:
        raise ValueError(f"{os.fspath(path)!r} has no file extension to choose the format (matplotlib writes {listed})")
    if ext not in supported:
        raise ValueError(f"{os.fspath(path)!r}: matplotlib cannot write .{ext} files (it writes {listed})")
    reason = _can_write(ext)
    if reason is not None:
        raise ValueError(f"{os.fspath(path)!r}: .{ext} ({supported[ext]}) cannot be written on this machine: {reason}")
    return ext


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Write ``fig`` to ``path`` in the format its extension names (see :func:`output_format`)."""
    fig.savefig(path, format=output_format(path), dpi=150)
