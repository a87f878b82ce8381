"""``fusedsched.tools.plotting``: the steps drawn, the values (``compute_lr``'s), the figures and the files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fusedsched import LearningRate, compute_lr, plot_schedules
from fusedsched.schedule.reference import schedule_marks
from fusedsched.tools.plotting import (
    MAX_PLOT_STEPS,
    SAMPLE_POINTS,
    default_steps,
    new_figure,
    output_format,
    plot_training,
    sample_steps,
    save_figure,
    schedule_table,
)

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")  # before pyplot: no window from the tests that use it
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

SCHEDULES = {
    "head": LearningRate(linear_ramp_to_cosine=dict(learning_rate=0.002, final_learning_rate=0.0002, num_ramp_steps=30, final_num_steps=220)),
    "tower": LearningRate(linear_ramp_to_constant=dict(learning_rate=0.0015, num_ramp_steps=50)),
    "steps": LearningRate(piecewise_constant=dict(learning_rate_boundaries=[60, 150, 240], learning_rate_values=[1e-3, 5e-4, 2.5e-4, 1e-4])),
    "flat": LearningRate(constant=3e-4),
}
ONE_STEP = LearningRate(piecewise_constant=dict(learning_rate_boundaries=[10, 500_000, 500_001], learning_rate_values=[1, 4, 2, 3]))

SIGNATURES = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "jpg": b"\xff\xd8\xff", "svg": b"<?xml"}


def group_lines(ax) -> dict[str, object]:
    """The labelled lines with data: the groups' curves (the marks' legend entry has no data)."""
    return {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_") and line.get_xdata().size}


# --- the steps and the values ------------------------------------------------------------------


def test_short_runs_draw_every_step():
    assert sample_steps(SCHEDULES, 0, 313).tolist() == list(range(313))
    assert sample_steps(SCHEDULES, 7, 7 + SAMPLE_POINTS).tolist() == list(range(7, 7 + SAMPLE_POINTS))


@pytest.mark.parametrize("stop", [SAMPLE_POINTS + 1, 1_000_000, 10**12, MAX_PLOT_STEPS])
def test_long_runs_keep_every_mark_and_the_step_before(stop):
    s = sample_steps({"a": ONE_STEP, **SCHEDULES}, 0, stop)
    assert s.dtype == np.int64 and s[0] == 0 and s[-1] == stop - 1
    assert np.all(np.diff(s) > 0)
    assert len(s) <= SAMPLE_POINTS + 2 * 9
    for m in [10, 500_000, 500_001, 30, 220, 50, 60, 150, 240]:
        if m < stop:
            assert m in s and m - 1 in s


def test_a_one_step_value_survives_a_million_steps():
    for steps in (1_000_000, 10**12):
        x, lrs = schedule_table({"a": ONE_STEP}, steps)
        assert set(np.unique(lrs["a"])) == {1.0, 2.0, 3.0, 4.0}
        assert lrs["a"][x == 500_000][0] == 2.0


@pytest.mark.parametrize("steps", [313, 50_000, MAX_PLOT_STEPS])
def test_values_are_compute_lr(steps):
    x, lrs = schedule_table(SCHEDULES, steps)
    check = x if len(x) < 2000 else np.concatenate([x[:500], x[-500:], x[np.isin(x, [29, 30, 219, 220, 221, 239, 240])]])
    for name, cfg in SCHEDULES.items():
        got = dict(zip(x.tolist(), lrs[name].tolist()))
        assert all(got[s] == compute_lr(cfg, s) for s in check.tolist()), name


def test_default_steps_pass_the_last_change():
    assert default_steps(SCHEDULES) > max(m for c in SCHEDULES.values() for m in schedule_marks(c))
    assert default_steps(LearningRate(constant=0.1)) == 100
    far = LearningRate(piecewise_constant=dict(learning_rate_boundaries=[2**53 - 2], learning_rate_values=[1, 2]))
    assert default_steps(far) == MAX_PLOT_STEPS


@pytest.mark.parametrize(
    "configs, steps, error, message",
    [
        (SCHEDULES, 0, ValueError, "steps must be in [1, 9007199254740991] (2**53 - 1), got 0"),
        (SCHEDULES, -5, ValueError, "got -5"),
        (SCHEDULES, 2**63 - 1, ValueError, "got 9223372036854775807"),
        (SCHEDULES, MAX_PLOT_STEPS + 1, ValueError, "got 9007199254740992"),
        (SCHEDULES, 10.0, TypeError, "steps must be an integer, got 10.0"),
        (SCHEDULES, True, TypeError, "steps must be an integer, got True"),
        ({}, 10, ValueError, "configs is empty"),
        ({"a": 0.1}, 10, TypeError, "configs['a'] must be a LearningRate, got float"),
        ("constant: 0.1", 10, TypeError, "configs must be a LearningRate, a sequence or a mapping of them, got str"),
    ],
)
def test_bad_arguments_name_the_value(configs, steps, error, message):
    with pytest.raises(error) as info:
        plot_schedules(configs, steps)
    assert message in str(info.value)
    assert plt.get_fignums() == []  # refused before a figure was made


# --- figures -----------------------------------------------------------------------------------


def test_plot_schedules_one_line_per_group_on_a_new_pyplot_figure():
    fig = plot_schedules(SCHEDULES, 300)
    try:
        assert isinstance(fig, Figure) and fig.number in plt.get_fignums()  # pyplot's: plt.show() shows it
        (ax,) = fig.axes
        lines = group_lines(ax)
        assert list(lines) == [f"{n} ({c.kind})" for n, c in SCHEDULES.items()]  # one line per group
        for name, cfg in SCHEDULES.items():
            line = lines[f"{name} ({cfg.kind})"]
            assert list(line.get_xdata()) == list(range(300))
            assert list(line.get_ydata()) == [compute_lr(cfg, s) for s in range(300)]
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == list(lines) + ["schedule change"]
        assert ax.get_xlabel() == "step" and ax.get_ylabel() == "learning rate" and "4 group(s)" in ax.get_title()
    finally:
        plt.close(fig)


def test_plot_schedules_draws_into_a_given_axes():
    fig, (ax,) = new_figure()
    assert plot_schedules([LearningRate(constant=0.5), SCHEDULES["tower"]], 80, ax=ax, title="mine") is fig
    assert list(group_lines(ax)) == ["[0] (constant)", "[1] (linear_ramp_to_constant)"]
    assert ax.get_title() == "mine" and plt.get_fignums() == []  # outside pyplot
    marks = [line for line in ax.get_lines() if line.get_label().startswith("_") and line.get_marker() == "o"]
    assert [(list(m.get_xdata()), list(m.get_ydata())) for m in marks] == [([50], [0.0015])]


def test_plot_schedules_single_config_is_labelled_by_its_kind():
    fig = plot_schedules(SCHEDULES["head"], 250)
    try:
        assert list(group_lines(fig.axes[0]))[0] == "linear_ramp_to_cosine (linear_ramp_to_cosine)"
    finally:
        plt.close(fig)


def test_plot_training_draws_the_recorded_rates_and_the_loss():
    first, n = 3, 300
    steps = np.arange(first, first + n)
    lrs = {name: np.float32([compute_lr(c, int(s)) for s in steps]) for name, c in SCHEDULES.items()}
    loss = np.linspace(1.0, 0.1, n)
    fig = plot_training(first, lrs, loss, SCHEDULES, title="run", pyplot=False)
    ax_lr, ax_loss = fig.axes
    lines = group_lines(ax_lr)
    for name, cfg in SCHEDULES.items():
        line = lines[f"{name} ({cfg.kind})"]
        assert list(line.get_xdata()) == steps.tolist() and np.array_equal(line.get_ydata(), lrs[name])
    (loss_line,) = ax_loss.get_lines()
    assert np.array_equal(loss_line.get_ydata(), loss) and ax_loss.get_ylabel() == "training loss"
    with pytest.raises(ValueError, match="one value per step"):
        plot_training(first, {**lrs, "head": lrs["head"][:-1]}, loss, SCHEDULES, pyplot=False)


def test_plot_training_draws_one_panel_per_recorded_hyperparameter():
    first, n = 0, 300
    steps = np.arange(first, first + n)
    lrs = {name: np.float32([compute_lr(c, int(s)) for s in steps]) for name, c in SCHEDULES.items()}
    beta1 = LearningRate(one_cycle=dict(max_learning_rate=0.85, total_steps=300, div_factor=0.85 / 0.95, final_div_factor=1.0))
    configs = {"beta1": {"head": beta1, "tower": beta1}, "weight_decay": {"steps": SCHEDULES["tower"]}}
    hyper = {key: {g: np.float32([compute_lr(c, int(s)) for s in steps]) for g, c in groups.items()}
             for key, groups in configs.items()}
    fig = plot_training(first, lrs, np.linspace(1.0, 0.1, n), SCHEDULES, pyplot=False, hyperparameters=hyper,
                        hyperparameter_configs=configs)
    assert [ax.get_ylabel() for ax in fig.axes] == ["learning rate per group", "beta1", "weight_decay", "training loss"]
    for ax, (key, groups) in zip(fig.axes[1:3], configs.items()):
        lines = group_lines(ax)
        assert set(lines) == {f"{g} ({c.kind})" for g, c in groups.items()}
        for g, c in groups.items():
            assert np.array_equal(lines[f"{g} ({c.kind})"].get_ydata(), hyper[key][g])
    assert fig.axes[1].get_ylim()[0] > 0.8  # a momentum near 0.9 is drawn at its own scale, not from 0
    with pytest.raises(ValueError, match="one beta1 value per step"):
        plot_training(first, lrs, np.zeros(n), SCHEDULES, pyplot=False, hyperparameters={"beta1": {"head": hyper["beta1"]["head"][:-1]}},
                      hyperparameter_configs={"beta1": {"head": beta1}})


def test_plot_training_samples_long_runs():
    n = 50_000
    lrs = {"a": np.float32([compute_lr(ONE_STEP, s) for s in range(n)])}
    fig = plot_training(499_990 - n // 2, lrs, np.zeros(n), {"a": ONE_STEP}, pyplot=False)
    (line,) = group_lines(fig.axes[0]).values()
    assert len(line.get_xdata()) <= SAMPLE_POINTS + 4
    assert {500_000, 500_001, 499_999} <= set(line.get_xdata().tolist())


# --- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["png", "svg", "pdf", "jpg"])
def test_save_figure_writes_the_format_of_the_extension(tmp_path, ext):
    fig, (ax,) = new_figure()
    plot_schedules(SCHEDULES, 300, ax=ax)
    path = tmp_path / f"lr.{ext.upper() if ext == 'pdf' else ext}"
    save_figure(fig, path)
    data = path.read_bytes()
    assert data.startswith(SIGNATURES[ext])
    if ext == "svg":
        assert b"<svg" in data and b"head (linear_ramp_to_cosine)" in data  # text kept as a comment


@pytest.mark.parametrize(
    "path, message",
    [
        ("lr", "has no file extension"),
        ("lr.jpg2", "matplotlib cannot write .jpg2 files (it writes ."),
        ("out/lr.", "has no file extension"),
    ],
)
def test_unknown_formats_are_refused(path, message):
    with pytest.raises(ValueError) as info:
        output_format(path)
    assert message in str(info.value) and ".png" in str(info.value) and ".svg" in str(info.value)


def test_a_format_that_cannot_be_written_here_is_refused(monkeypatch):
    from fusedsched.tools import plotting

    monkeypatch.setattr(plotting, "_can_write", lambda fmt: "RuntimeError: 'xelatex' not found")
    with pytest.raises(ValueError, match=r"'lr.pgf': .pgf \(PGF code for LaTeX\) cannot be written on this machine: RuntimeError"):
        output_format("lr.pgf")


def test_import_fusedsched_does_not_import_matplotlib():
    code = "import sys, fusedsched; assert 'matplotlib' not in sys.modules; print(fusedsched.plot_schedules.__name__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "plot_schedules", proc.stderr


def test_without_matplotlib_the_error_says_what_to_install():
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from fusedsched import LearningRate, plot_schedules\n"
        "try:\n    plot_schedules(LearningRate(constant=0.1), 10)\n"
        "except ImportError as e:\n    print(e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "plotting needs matplotlib, which cannot be imported: pip install 'fusedsched[plot]' (or: pip install matplotlib)"


def test_names_are_shown_as_written_even_with_dollars_and_underscores(tmp_path):
    fig, (ax,) = new_figure()
    plot_schedules({"_hidden": LearningRate(constant=0.1), "a$b$c": LearningRate(constant=0.2)}, 1, ax=ax)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [" _hidden (constant)", r"a\$b\$c (constant)"]
    save_figure(fig, tmp_path / "odd.png")  # drawn: no mathtext error, a one-step run drawn as dots
    assert all(line.get_marker() == "o" for line in group_lines(ax).values())
