"""``python -m fusedsched plot --state FILE``: a saved scheduler state (``torch.save(scheduler.state_dict())``)
drawn as the schedules in effect, switches joined in, with the switch steps and the current step marked;
its curves (``--csv``) are ``compute_lr`` of those schedules times the multipliers; bad input is one line."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from fusedsched import GraphSafeAdamW, LearningRate, LRShim, compute_lr
from fusedsched.tools import plotting
from fusedsched.tools.cli import load_state, main

COSINE = LearningRate(linear_ramp_to_cosine={"learning_rate": 3e-3, "final_learning_rate": 3e-5, "num_ramp_steps": 10,
                                             "final_num_steps": 400})
DECAY = LearningRate(linear_ramp_to_constant={"learning_rate": 0.1, "num_ramp_steps": 40})


def saved_run(path: Path) -> LRShim:
    """Two groups, a weight decay on one (times 0.5), 120 steps, a cooldown at 100 and one planned at 150."""
    model = torch.nn.Linear(2, 1)
    optimizer = GraphSafeAdamW([{"params": [model.weight], "name": "w"}, {"params": [model.bias], "name": "b"}], lr=1e-3)
    shim = LRShim(optimizer, {"w": COSINE, "b": COSINE}, hyperparameters={"w": {"weight_decay": DECAY}},
                  multipliers={"w": {"weight_decay": 0.5, "lr": 2.0}})
    for _ in range(100):
        optimizer.step()
        shim.step()
    cooldown = {"warmup_stable_decay": {"learning_rate": "current", "final_learning_rate": 0.0, "num_ramp_steps": 0,
                                        "num_stable_steps": 0, "num_decay_steps": 80, "decay_shape": "linear"}}
    shim.switch({"w": cooldown}, hyperparameters={"w": {"weight_decay": {"constant": "current"}}})
    shim.switch({"b": {"constant": "current"}}, at=150)
    for _ in range(20):
        optimizer.step()
        shim.step()
    torch.save(shim.state_dict(), path)
    return shim


def run_main(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_plot_state_draws_the_schedules_in_effect(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="plot needs matplotlib (pip install 'fusedsched[plot]')")
    shim = saved_run(tmp_path / "state.pt")
    png, data = tmp_path / "s.png", tmp_path / "s.csv"
    code, out, err = run_main(["plot", "--state", str(tmp_path / "state.pt"), "-o", str(png), "--csv", str(data)], capsys)
    assert code == 0, err
    assert "state.pt: 2 schedule(s), steps 0-" in out and "at step 120, 2 switch(es)" in out and "weight_decay: 1 group(s)" in out
    assert png.read_bytes().startswith(b"\x89PNG")
    with data.open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    assert header == ["step", "w", "b"]
    steps = [int(r[0]) for r in rows]
    assert steps == list(range(len(steps))) and len(steps) >= 151  # past the planned switch
    for s, w, b in rows[::7]:
        assert float(w) == compute_lr(shim.lr_dict["w"], int(s)) * 2.0 and float(b) == compute_lr(shim.lr_dict["b"], int(s))


def test_load_state_reads_what_a_load_reads(tmp_path):
    shim = saved_run(tmp_path / "state.pt")
    saved = load_state(tmp_path / "state.pt")
    assert saved.switches == [100, 150] and saved.step == 120
    assert saved.schedules["b"] == shim.lr_dict["b"]
    assert saved.schedules["w"] == LearningRate(product={"schedules": [shim.lr_dict["w"], LearningRate(constant=2.0)]})
    assert list(saved.panels) == ["weight_decay"]
    assert saved.panels["weight_decay"]["w"] == LearningRate(product={"schedules": [
        shim.hyperparameters["w"]["weight_decay"], LearningRate(constant=0.5)]})


def test_the_marks_are_drawn_on_the_axes(tmp_path):
    pytest.importorskip("matplotlib", reason="plot needs matplotlib (pip install 'fusedsched[plot]')")
    shim = saved_run(tmp_path / "state.pt")
    fig, (ax,) = plotting.new_figure(1)
    plotting.plot_schedules(shim.lr_dict, 200, ax=ax, legend="outside", switches=[100, 150, 500], current=120)
    vertical = {(round(line.get_xdata()[0]), line.get_linestyle()) for line in ax.get_lines()
                if len(set(np.asarray(line.get_xdata(), dtype=float))) == 1 and len(line.get_xdata()) == 2}
    assert {(100, "--"), (150, "--"), (120, "-")} <= vertical and not any(x == 500 for x, _ in vertical)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "switch" in labels and "current step (120)" in labels


@pytest.mark.parametrize("case, message", [
    ("both", "plot draws a config file or a saved scheduler state (--state FILE), not both"),
    ("neither", "the following arguments are required: config (or --state FILE, a saved scheduler state)"),
    ("missing", "--state {dir}/nothing.pt: no such file"),
    ("not torch", "--state {dir}/notes.txt: not a saved scheduler state (torch.load(weights_only=True):"),
    ("not a state", "--state {dir}/tensor.pt: not a scheduler's state_dict(): state_dict must be a mapping"),
    ("no schedules", "--state {dir}/bare.pt: not a scheduler's state_dict(): it has no 'lr_dict'"),
    ("bad switch", "--state {dir}/switch.pt: not a scheduler's state_dict(): state_dict['switches'][0]['at'] must be >= 0"),
])
def test_bad_state_is_one_line(tmp_path, capsys, case, message):
    pytest.importorskip("matplotlib", reason="plot needs matplotlib (pip install 'fusedsched[plot]')")
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    torch.save(torch.zeros(2), tmp_path / "tensor.pt")
    torch.save({"last_epoch": 3}, tmp_path / "bare.pt")
    good = saved_run(tmp_path / "state.pt").state_dict()
    torch.save({**good, "switches": [{"at": -1}]}, tmp_path / "switch.pt")
    state = {"both": str(tmp_path / "state.pt"), "neither": None, "missing": str(tmp_path / "nothing.pt"),
             "not torch": str(tmp_path / "notes.txt"), "not a state": str(tmp_path / "tensor.pt"),
             "no schedules": str(tmp_path / "bare.pt"), "bad switch": str(tmp_path / "switch.pt")}[case]
    args = ["plot", *([str(tmp_path / "lr.yaml")] if case == "both" else []), *(["--state", state] if state else []),
            "-o", str(tmp_path / "x.png")]
    (tmp_path / "lr.yaml").write_text("constant: 0.1\n", encoding="utf-8")
    code, out, err = run_main(args, capsys)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert message.format(dir=tmp_path) in err, err
    assert not (tmp_path / "x.png").exists()
