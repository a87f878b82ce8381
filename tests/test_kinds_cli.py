"""``plot`` and ``demo`` take every schedule kind: a multi-task config with one tower per kind."""

from __future__ import annotations

import numpy as np
import yaml
from test_cli import SIGNATURES, read_csv, run_main

from fusedsched import LearningRate, compute_lr
from fusedsched.cli import load_schedules

TOWERS = {
    "exponential": {"exponential_decay": {"learning_rate": 0.01, "decay_rate": 0.5, "decay_steps": 40, "num_ramp_steps": 10}},
    "polynomial": {"polynomial_decay": {"learning_rate": 0.01, "end_learning_rate": 1e-4, "num_ramp_steps": 10, "final_num_steps": 150, "power": 2.0}},
    "wsd": {"warmup_stable_decay": {"learning_rate": 0.01, "final_learning_rate": 1e-4, "num_ramp_steps": 10, "num_stable_steps": 60, "num_decay_steps": 80}},
    "annealing": {"cosine_annealing": {"learning_rate": 0.01, "final_learning_rate": 1e-3, "num_steps": 60}},
    "restarts": {"cosine_with_restarts": {"learning_rate": 0.01, "cycle_steps": 20, "cycle_mult": 2, "cycle_decay": 0.7}},
    "one_cycle": {"one_cycle": {"max_learning_rate": 0.01, "total_steps": 120}},
    "inverse_sqrt": {"inverse_sqrt": {"learning_rate": 0.01, "num_ramp_steps": 10}},
    "joined": {"join": {"schedules": [{"constant": 0.001}, {"cosine_annealing": {"learning_rate": 0.01, "num_steps": 50}}], "boundaries": [30]}},
    "product": {"product": {"schedules": [{"linear_ramp_to_constant": {"learning_rate": 1.0, "num_ramp_steps": 20}},
                                         {"exponential_decay": {"learning_rate": 0.01, "decay_rate": 0.9, "decay_steps": 10}}]}},
}


def _config(tmp_path):
    data = {"optimizer": {"adam": {"lr": 0.001}, "multi_task_learning_rates": {
        "tower_learning_rates": TOWERS, "backbone_learning_rate": {"constant": 0.001}}}}
    path = tmp_path / "kinds.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_every_kind_is_in_the_example_config():
    kinds = {LearningRate(**cfg).kind for cfg in TOWERS.values()}
    assert kinds | {"constant", "piecewise_constant", "linear_ramp_to_constant", "linear_ramp_to_cosine"} == set(LearningRate.KINDS)


def test_plot_draws_every_kind(tmp_path, capsys):
    path, png, data = _config(tmp_path), tmp_path / "kinds.png", tmp_path / "kinds.csv"
    code, out, err = run_main(["plot", str(path), "--steps", "300", "-o", str(png), "--csv", str(data)], capsys)
    assert code == 0, err
    assert png.read_bytes().startswith(SIGNATURES["png"])
    header, steps, columns = read_csv(data)
    assert steps.tolist() == list(range(300))
    schedules, _ = load_schedules(path)
    for name, cfg in TOWERS.items():
        lr = LearningRate(**cfg)
        assert schedules[name] == lr
        want = np.array([compute_lr(lr, int(s)) for s in steps])
        np.testing.assert_allclose(columns[name], want, rtol=1e-12, atol=0)  # np.cos may differ in the last bit


def test_demo_trains_with_every_kind(tmp_path, capsys):
    png, data = tmp_path / "demo.png", tmp_path / "demo.csv"
    code, out, err = run_main(
        ["demo", "--config", str(_config(tmp_path)), "--steps", "40", "-q", "-o", str(png), "--csv", str(data)], capsys)
    assert code == 0, err
    header, steps, columns = read_csv(data)
    for name, cfg in TOWERS.items():  # the rates the optimizer read, within one float32 ulp
        lr = LearningRate(**cfg)
        got = np.float32(columns[name])
        want = np.float32([compute_lr(lr, int(s)) for s in steps])
        assert np.abs(got.view(np.int32) - want.view(np.int32)).max() <= 1, name
