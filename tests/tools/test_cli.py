"""The command line: ``demo``, ``plot`` and ``bench`` run, write pictures (by extension), CSV and JSON, and fail in one line;
``plot`` and ``demo`` take every schedule kind."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import fusedsched
from fusedsched import GraphSafeAdamW, LearningRate, LRShim, compute_lr, load_config
from fusedsched.tools import bench, demo
from fusedsched.tools.cli import load_schedules, main

EXAMPLE = bench.example_config_path()
DEMO = demo.config_path()
SRC = Path(fusedsched.__file__).parent.parent
TOWERS = ["is_clicked", "is_replied", "is_favorited", "backbone"]


SIGNATURES = {"png": b"\x89PNG\r\n\x1a\n", "svg": b"<?xml", "pdf": b"%PDF-", "jpg": b"\xff\xd8\xff"}
NO_MATPLOTLIB = "import sys; sys.modules['matplotlib'] = None\nfrom fusedsched.tools.cli import main\nraise SystemExit(main(sys.argv[1:]))\n"


def read_csv(path: Path) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    with path.open(newline="", encoding="utf-8") as f:
        header, *rows = list(csv.reader(f))
    steps = np.array([int(r[0]) for r in rows])
    return header, steps, {name: np.array([float(r[k]) for r in rows]) for k, name in enumerate(header[1:], 1)}


def one_error_line(code: int, err: str, message: str) -> None:
    assert code == 2, err
    assert err.startswith("fusedsched: error:") and message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err and "Warning" not in err


def run_main(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(args)
    except SystemExit as e:  # argparse's --help; main() itself returns a status
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- demo --------------------------------------------------------------------------------------


def test_demo_trains_reports_plots_and_records(tmp_path, capsys):
    png, data = tmp_path / "demo.png", tmp_path / "demo.csv"
    code, out, err = run_main(["demo", "--steps", "20", "-o", str(png), "--csv", str(data)], capsys)
    assert code == 0, err
    for expected in ("steps/s", "scheduler.step()", "LambdaLR", "host syncs", "backend", str(png), str(data)):
        assert expected in out
    assert "0 per scheduler.step()" in out  # device mode never syncs
    # the bundled config's momentum cycle and weight-decay increment: 2 + 1 rows (the backbone's own
    # weight-decay multiplier), read by GraphSafeAdamW without a sync
    assert ("hyperparameters   weight_decay, beta1 of 4 group(s) in the same launch (3 row(s)" in out
            and "GraphSafeAdamW: 0 host syncs per optimizer.step() + scheduler.step()" in out), out
    assert "4 LR curve(s) + weight_decay + beta1 + loss" in out
    assert err == ""  # stderr is not a terminal here: no progress bar unless asked
    assert png.read_bytes().startswith(SIGNATURES["png"])
    header, steps, columns = read_csv(data)
    assert header == ["step", *TOWERS, "loss"]  # one column per param group, and the loss
    assert steps.tolist() == list(range(20))
    cfgs, _ = load_schedules(DEMO)
    for name in TOWERS:  # the recorded rates follow each tower's own schedule, within one float32 ulp
        got = np.float32(columns[name])
        want = np.float32([compute_lr(cfgs[name], int(s)) for s in steps])
        assert np.abs(got.view(np.int32) - want.view(np.int32)).max() <= 1, name
    assert np.isfinite(columns["loss"]).all() and columns["loss"][-1] < columns["loss"][0]


def test_demo_config_schedules_momentum_and_weight_decay():
    """The bundled demo config: AdamW whose beta1 follows OneCycleLR's momentum cycle and whose weight
    decay rises (Megatron's increment) in every group, the backbone's at half; the lrs are the example's."""
    cfg = load_config(DEMO, section="optimizer")
    assert cfg.optimizer_name == "adam" and cfg.optimizer.decoupled_weight_decay is True
    assert cfg.multi_task_learning_rates == load_config(EXAMPLE, section="optimizer").multi_task_learning_rates
    hyper = cfg.hyperparameters_by_group(cfg.group_names)
    assert list(cfg.group_names) == TOWERS and set(hyper) == set(TOWERS)
    for group in TOWERS:
        assert set(hyper[group]) == {"beta1", "weight_decay"}
        beta1, wd = hyper[group]["beta1"], hyper[group]["weight_decay"]
        assert [round(compute_lr(beta1, s), 12) for s in (0, 89, 299)] == [0.95, 0.85, 0.95]  # cycles down and back
        assert [round(compute_lr(wd, s), 12) for s in (0, 125, 250, 299)] == [0.01, 0.055, 0.1, 0.1]  # rises, then holds
    assert cfg.multipliers_by_group(cfg.group_names) == {"backbone": {"weight_decay": 0.5}}
    model, optimizer, shim = demo.build(cfg, torch.device("cpu"))
    assert type(optimizer) is GraphSafeAdamW
    assert shim.hyperparameters == hyper
    assert len(shim.values_tensor) == len(TOWERS) + 3  # beta1: one row; weight_decay: towers' and backbone's


def test_demo_records_the_hyperparameters_the_optimizer_read():
    cfg = load_config(DEMO, section="optimizer")
    model, optimizer, shim = demo.build(cfg, torch.device("cpu"))
    run = demo.train(model, optimizer, shim, torch.device("cpu"), 12)
    assert run.optimizer == "GraphSafeAdamW" and run.update_syncs == 0 and run.rows == len(TOWERS) + 3
    assert list(run.hyperparameters) == ["weight_decay", "beta1"]
    mults = cfg.multipliers_by_group(cfg.group_names)
    for key, groups in run.hyperparameters.items():
        assert list(groups) == TOWERS
        for group, got in groups.items():
            schedule = cfg.hyperparameters_by_group(cfg.group_names)[group][key]
            m = mults.get(group, {}).get(key, 1.0)
            want = np.float32([compute_lr(schedule, s) * m for s in run.step_numbers])
            assert np.abs(np.float32(got).view(np.int32) - want.view(np.int32)).max() <= 1, (key, group)
            assert run.hyperparameter_schedules[key][group].kind == ("product" if m != 1.0 else schedule.kind)
    assert not np.array_equal(run.hyperparameters["weight_decay"]["backbone"], run.hyperparameters["weight_decay"]["is_clicked"])
    fig = demo.figure(run)
    assert [ax.get_ylabel() for ax in fig.axes] == ["learning rate per group", "weight_decay", "beta1", "training loss"]


def test_demo_progress_bar_when_asked(tmp_path, capsys):
    cfg = write(tmp_path, "sgd.yaml", "optimizer:\n  sgd: {lr: 0.1, momentum: 0.9}\n")
    code, out, err = run_main(["demo", "--config", str(cfg), "--steps", "5", "--progress", "-o", str(tmp_path / "d.svg")], capsys)
    assert code == 0, err
    assert "training" in err and "5/5" in err  # tqdm's bar
    assert (tmp_path / "d.svg").read_bytes().startswith(SIGNATURES["svg"])
    assert "1 param group(s): ALL_PARAMS" in out
    code, out, err = run_main(["demo", "--config", str(cfg), "--steps", "5", "--progress", "-q", "-o", str(tmp_path / "d.svg")], capsys)
    assert code == 0 and err == ""  # the last of --progress / -q wins


def test_demo_without_matplotlib_reports_and_skips_the_picture(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", NO_MATPLOTLIB, "demo", "--steps", "3"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "plot              skipped: plotting needs matplotlib" in proc.stdout and "pip install 'fusedsched[plot]'" in proc.stdout
    assert "steps/s" in proc.stdout and not (tmp_path / "demo.png").exists()
    proc = subprocess.run([sys.executable, "-c", NO_MATPLOTLIB, "demo", "--steps", "3", "-o", "mine.png"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    one_error_line(proc.returncode, proc.stderr, "plotting needs matplotlib")  # asked for a picture: refused before training
    assert proc.stdout == ""


# --- plot --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["png", "svg", "pdf", "jpg"])
def test_plot_writes_the_format_of_the_extension(tmp_path, capsys, ext):
    out = tmp_path / f"lr.{ext}"
    code, stdout, err = run_main(["plot", str(EXAMPLE), "-o", str(out)], capsys)
    assert code == 0, err
    assert out.read_bytes().startswith(SIGNATURES[ext])
    assert f"wrote {out}" in stdout and "is_favorited: piecewise_constant" in stdout


def test_plot_csv_is_compute_lr(tmp_path, capsys):
    data = tmp_path / "lr.csv"
    code, out, err = run_main(["plot", str(EXAMPLE), "--steps", "400", "-o", str(tmp_path / "lr.png"), "--csv", str(data)], capsys)
    assert code == 0, err
    header, steps, columns = read_csv(data)
    assert header == ["step", *TOWERS] and steps.tolist() == list(range(400))
    cfgs, _ = load_schedules(EXAMPLE)
    for name in TOWERS:
        assert columns[name].tolist() == [compute_lr(cfgs[name], s) for s in range(400)], name


def test_plot_csv_of_a_long_run_keeps_every_change(tmp_path, capsys):
    cfg = write(tmp_path, "lr.yaml", "piecewise_constant: {learning_rate_boundaries: [10, 500000, 500001], learning_rate_values: [1, 4, 2, 3]}\n")
    data = tmp_path / "lr.csv"
    code, out, err = run_main(["plot", str(cfg), "--steps", "1_000_000", "-o", str(tmp_path / "x.png"), "--csv", str(data)], capsys)
    assert code == 0, err
    header, steps, columns = read_csv(data)
    assert header == ["step", "ALL_PARAMS"] and "sampled" in out
    assert steps[0] == 0 and steps[-1] == 999_999 and len(steps) < 10_100
    assert {9, 10, 499_999, 500_000, 500_001} <= set(steps.tolist())
    assert columns["ALL_PARAMS"][steps == 500_000].tolist() == [2.0]


def test_config_shapes_plot_by_name(tmp_path, capsys):
    cfg = write(tmp_path, "lr.yaml", "linear_ramp_to_constant: {learning_rate: 0.5, num_ramp_steps: 10}\n")
    code, out, err = run_main(["plot", str(cfg), "-o", str(tmp_path / "x.png"), "--csv", str(tmp_path / "x.csv")], capsys)
    assert code == 0, err
    header, steps, columns = read_csv(tmp_path / "x.csv")
    assert header == ["step", "ALL_PARAMS"] and len(steps) == 100 and columns["ALL_PARAMS"].max() == 0.5


@pytest.mark.parametrize(
    "text, groups",
    [
        ("adam: {lr: 0.01}\n", 1),  # the optimizer section itself, no schedule: constant at lr
        ("tower_learning_rates: {a: {constant: 0.1}, b: {constant: 0.2}}\nbackbone_learning_rate: {constant: 0.3}\n", 3),
        # recap's schema: task names with dots, a null backbone
        ("optimizer:\n  adam: {beta_1: 0.9}\n  multi_task_learning_rates:\n    tower_learning_rates:\n"
         "      recap.engagement.is_replied: {constant: 0.1}\n    backbone_learning_rate: null\n", 1),
        ("adam: {}\nsingle_task_learning_rate: {constant: 0.1}\n", 1),
    ],
)
def test_config_shapes(tmp_path, text, groups):
    schedules, _ = load_schedules(write(tmp_path, "c.yaml", text))
    assert len(schedules) == groups


def test_recap_example_plots_and_trains(tmp_path, capsys):
    recap = EXAMPLE.with_name("recap_optimizer.yaml")
    code, out, err = run_main(["plot", str(recap), "-o", str(tmp_path / "r.png"), "--csv", str(tmp_path / "r.csv")], capsys)
    assert code == 0, err
    header, _, _ = read_csv(tmp_path / "r.csv")
    assert "recap.engagement.is_favorited" in header and "backbone" in header
    code, out, err = run_main(["demo", "--config", str(recap), "--steps", "5", "-o", str(tmp_path / "d.png")], capsys)
    assert code == 0, err
    assert "recap.engagement.is_favorited" in out


def test_plot_without_matplotlib_says_what_to_install(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", NO_MATPLOTLIB, "plot", str(EXAMPLE), "-o", str(tmp_path / "lr.png")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.stderr == ("fusedsched: error: plotting needs matplotlib, which cannot be imported: "
                           "pip install 'fusedsched[plot]' (or: pip install matplotlib)\n")
    assert proc.returncode == 2 and not (tmp_path / "lr.png").exists()


# --- bench -------------------------------------------------------------------------------------


def test_bench_quick_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code, out, err = run_main(["bench", "--quick", "--groups", "1,10", "--rounds", "2", "--json", str(path)], capsys)
    assert code == 0, err
    assert "scheduler.step()" in out and "LambdaLR tensor" in out
    result = json.loads(path.read_text())
    assert {"stamp", "settings", "scheduler_step", "targets", "training_step", "schedule_node", "skipped"} <= set(result)
    for key in ("device", "device_name", "torch", "triton", "python", "commit"):
        assert key in result["stamp"]
    auto = bench.fused_name(result["settings"]["auto_backend"])
    expected = {bench.fused_name(b) for b in bench.device_backends("cpu")} | {"LRShim host", "LambdaLR float", "LambdaLR tensor"}
    assert "fusedsched[triton]" not in expected  # the Triton interpreter is not a CPU backend
    rows = result["scheduler_step"]
    for groups in (1, 10):
        mine = {r["candidate"]: r for r in rows if r["groups"] == groups}
        assert set(mine) == expected
        assert mine[auto]["ratio_vs_fusedsched"] == 1.0
        for r in mine.values():
            assert 0 < r["p10_us"] <= r["median_us"] <= r["p90_us"]
            assert r["torch"] == torch.__version__ and r["backend"]
        assert mine[auto]["syncs_per_step"] == 0
    assert result["training_step"] == [] and "training_step" in result["skipped"]  # CPU: CUDA-only suites


def test_bench_writes_json_only_when_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    quickest = ["bench", "--quick", "--groups", "1", "--rounds", "1", "-q"]
    code, out, err = run_main(quickest, capsys)
    assert code == 0, err
    assert "scheduler.step()" in out and "wrote" not in out
    assert list(tmp_path.iterdir()) == []  # no bench.json, nor anything else, in the current folder
    code, out, err = run_main([*quickest, "--json", "out.json"], capsys)
    assert code == 0, err
    assert "wrote out.json" in out and list(tmp_path.iterdir()) == [tmp_path / "out.json"]
    assert json.loads((tmp_path / "out.json").read_text())["settings"]["command"].endswith("--json out.json")


def test_stock_lambda_is_the_reference():
    for cfg in bench.example_schedules():
        f = bench.stock_lambda(cfg)
        assert all(f(s) == compute_lr(cfg, s) for s in range(0, 400))


@torch.library.custom_op("fusedsched_test::double_", mutates_args=("x",))
def _double_(x: torch.Tensor) -> None:
    x.copy_(x * 2)


def test_sync_counter_sees_item_and_inside_custom_ops():
    assert bench.count_host_syncs(lambda: torch.ones(()).item(), calls=3) == (1.0, 2.0)  # ones + item
    x = torch.ones(3)
    assert bench.count_host_syncs(lambda: _double_(x), calls=2) == (0.0, 3.0)  # the op, its mul and copy_
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    shim = LRShim(opt, {"g": LearningRate(constant=0.1)}, device_schedule=True, backend="reference")
    syncs, ops = bench.count_host_syncs(shim.step, calls=2)
    assert syncs == 0 and ops == 1  # under a dispatch mode the reference backend runs as the op (numpy inside on CPU)


# --- every schedule kind: plot and demo take a multi-task config with one tower per kind -------

#: One tower per kind beyond tml's four, in one multi-task config.
KIND_TOWERS = {
    "exponential": {"exponential_decay": {"learning_rate": 0.01, "decay_rate": 0.5, "decay_steps": 40, "num_ramp_steps": 10}},
    "polynomial": {"polynomial_decay": {"learning_rate": 0.01, "end_learning_rate": 1e-4, "num_ramp_steps": 10, "final_num_steps": 150, "power": 2.0}},
    "wsd": {"warmup_stable_decay": {"learning_rate": 0.01, "final_learning_rate": 1e-4, "num_ramp_steps": 10, "num_stable_steps": 60, "num_decay_steps": 80}},
    "annealing": {"cosine_annealing": {"learning_rate": 0.01, "final_learning_rate": 1e-3, "num_steps": 60}},
    "restarts": {"cosine_with_restarts": {"learning_rate": 0.01, "cycle_steps": 20, "cycle_mult": 2, "cycle_decay": 0.7}},
    "one_cycle": {"one_cycle": {"max_learning_rate": 0.01, "total_steps": 120}},
    "inverse_sqrt": {"inverse_sqrt": {"learning_rate": 0.01, "num_ramp_steps": 10}},
    "log_warmup": {"log_warmup": {"learning_rate": 0.01, "initial_learning_rate": 1e-4, "num_steps": 40}},
    "cyclic": {"cyclic": {"base_learning_rate": 0.001, "max_learning_rate": 0.01, "step_size_up": 15, "mode": "triangular2"}},
    "tanh": {"tanh_decay": {"learning_rate": 0.01, "final_learning_rate": 1e-4, "num_steps": 120}},
    "plateau": {"plateau": {"learning_rate": 0.005, "patience": 5}},  # no metric in a plot or the demo: flat
    "joined": {"join": {"schedules": [{"constant": 0.001}, {"cosine_annealing": {"learning_rate": 0.01, "num_steps": 50}}], "boundaries": [30]}},
    "product": {"product": {"schedules": [{"linear_ramp_to_constant": {"learning_rate": 1.0, "num_ramp_steps": 20}},
                                         {"exponential_decay": {"learning_rate": 0.01, "decay_rate": 0.9, "decay_steps": 10}}]}},
    "offset": {"offset": {"schedule": {"cosine_annealing": {"learning_rate": 0.01, "num_steps": 50}}, "steps": 30}},
}


def every_kind_config(tmp_path: Path) -> Path:
    data = {"optimizer": {"adam": {"lr": 0.001}, "multi_task_learning_rates": {
        "tower_learning_rates": KIND_TOWERS, "backbone_learning_rate": {"constant": 0.001}}}}
    path = tmp_path / "kinds.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_every_kind_is_in_the_example_config():
    kinds = {LearningRate(**cfg).kind for cfg in KIND_TOWERS.values()}
    assert kinds | {"constant", "piecewise_constant", "linear_ramp_to_constant", "linear_ramp_to_cosine"} == set(LearningRate.KINDS)


def test_plot_draws_every_kind(tmp_path, capsys):
    path, png, data = every_kind_config(tmp_path), tmp_path / "kinds.png", tmp_path / "kinds.csv"
    code, out, err = run_main(["plot", str(path), "--steps", "300", "-o", str(png), "--csv", str(data)], capsys)
    assert code == 0, err
    assert png.read_bytes().startswith(SIGNATURES["png"])
    header, steps, columns = read_csv(data)
    assert steps.tolist() == list(range(300))
    schedules, _ = load_schedules(path)
    for name, cfg in KIND_TOWERS.items():
        lr = LearningRate(**cfg)
        assert schedules[name] == lr
        want = np.array([compute_lr(lr, int(s)) for s in steps])
        np.testing.assert_allclose(columns[name], want, rtol=1e-12, atol=0)  # np.cos may differ in the last bit


def test_demo_trains_with_every_kind(tmp_path, capsys):
    png, data = tmp_path / "demo.png", tmp_path / "demo.csv"
    code, out, err = run_main(
        ["demo", "--config", str(every_kind_config(tmp_path)), "--steps", "40", "-q", "-o", str(png), "--csv", str(data)], capsys)
    assert code == 0, err
    header, steps, columns = read_csv(data)
    for name, cfg in KIND_TOWERS.items():  # the rates the optimizer read, within one float32 ulp
        lr = LearningRate(**cfg)
        got = np.float32(columns[name])
        want = np.float32([compute_lr(lr, int(s)) for s in steps])
        assert np.abs(got.view(np.int32) - want.view(np.int32)).max() <= 1, name


# --- bad input ---------------------------------------------------------------------------------

BAD = {
    "missing file": (None, "not found"),
    "invalid YAML": ("optimizer:\n  adam: {lr: 0.1\n  sgd: [\n", "cannot parse config file"),
    "unknown schedule kind": (
        EXAMPLE.read_text().replace("linear_ramp_to_constant:\n", "linear_ramp_to_exp:\n", 1),
        "unknown schedule kind 'linear_ramp_to_exp'",
    ),
    "negative lr": ("constant: -0.5\n", "constant (-0.5) must be finite and >= 0"),
    "cosine end at ramp end": (
        "linear_ramp_to_cosine: {learning_rate: 1, final_learning_rate: 0, num_ramp_steps: 5, final_num_steps: 5}\n",
        "final_num_steps (5)",
    ),
    "not a config": ("hello: 1\n", "not a schedule config"),
    "duplicate key": ("constant: 0.1\nconstant: 0.2\n", "constant"),
    "mixed tml schemas": ("adam: {lr: 0.1, beta_1: 0.9}\n", "mixes tml core fields"),
}


@pytest.mark.parametrize("command", ["plot", "demo"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_is_one_line(tmp_path, capsys, case, command):
    text, message = BAD[case]
    path = tmp_path / "missing.yaml" if text is None else write(tmp_path, "bad.yaml", text)
    args = ["plot", str(path)] if command == "plot" else ["demo", "--config", str(path), "--steps", "2"]
    code, out, err = run_main(args + ["-o", str(tmp_path / "x.png")], capsys)
    assert code == 2
    assert message in err and err.startswith("fusedsched: error:")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


NO_CUDA_DEVICE = "cuda:0" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"
BAD_OPTIONS = {
    # plot
    "plot steps 2**63 - 1": (["plot", "{ex}", "--steps", "9223372036854775807"],
                             "argument --steps: expected an integer from 1 to 9007199254740991, got 9223372036854775807"),
    "plot steps 2**53": (["plot", "{ex}", "--steps", str(2**53)], "--steps: expected an integer from 1 to 9007199254740991, got 9007199254740992"),
    "plot steps negative": (["plot", "{ex}", "--steps", "-3"], "--steps: expected an integer from 1 to 9007199254740991, got -3"),
    "plot steps zero": (["plot", "{ex}", "--steps", "0"], "--steps: expected an integer from 1 to 9007199254740991, got 0"),
    "plot steps float": (["plot", "{ex}", "--steps", "1.5"], "--steps: expected an integer from 1 to 9007199254740991, got '1.5'"),
    "plot steps words": (["plot", "{ex}", "--steps", "many"], "--steps: expected an integer from 1 to 9007199254740991, got 'many'"),
    "plot steps 1e3": (["plot", "{ex}", "--steps", "-1e3"], "argument --steps: expected one argument"),
    "plot unknown format": (["plot", "{ex}", "-o", "{tmp}/lr.jpg2"], "matplotlib cannot write .jpg2 files (it writes"),
    "plot no extension": (["plot", "{ex}", "-o", "{tmp}/lr"], "has no file extension"),
    "plot out is a folder": (["plot", "{ex}", "-o", "{tmp}/folder.png"], "-o {tmp}/folder.png: is a directory"),
    "plot out in no folder": (["plot", "{ex}", "-o", "{tmp}/nowhere/lr.png"], "-o {tmp}/nowhere/lr.png: folder {tmp}/nowhere does not exist"),
    "plot csv in no folder": (["plot", "{ex}", "-o", "{tmp}/lr.png", "--csv", "{tmp}/nowhere/lr.csv"], "--csv {tmp}/nowhere/lr.csv: folder"),
    "plot config is a folder": (["plot", "{tmp}", "-o", "{tmp}/lr.png"], "config path {tmp} is a directory"),
    "plot config is empty": (["plot", "{tmp}/empty.yaml", "-o", "{tmp}/lr.png"], "{tmp}/empty.yaml is empty"),
    "plot config not UTF-8": (["plot", "{tmp}/latin1.yaml", "-o", "{tmp}/lr.png"], "config file {tmp}/latin1.yaml is not UTF-8 text"),
    "plot no config": (["plot"], "the following arguments are required: config"),
    # demo
    "demo steps zero": (["demo", "--steps", "0"], "argument --steps: expected an integer from 1 to 10000000, got 0"),
    "demo steps huge": (["demo", "--steps", str(2**63 - 1)], "argument --steps: expected an integer from 1 to 10000000, got 9223372036854775807"),
    "demo backend": (["demo", "--backend", "bogus"], "argument --backend: invalid choice: 'bogus' (choose from 'auto', 'native', 'triton', 'reference')"),
    "demo device tpu": (["demo", "--device", "tpu"], "--device 'tpu': expected cpu, cuda or cuda:N"),
    "demo device meta": (["demo", "--device", "meta"], "--device 'meta': expected cpu, cuda or cuda:N"),
    "demo device nonsense": (["demo", "--device", "gpu please"], "--device 'gpu please': expected cpu, cuda or cuda:N"),
    "demo device cuda": (["demo", "--device", NO_CUDA_DEVICE], f"--device {NO_CUDA_DEVICE!r}: "),
    "demo unknown format": (["demo", "-o", "{tmp}/demo.jpg2"], "matplotlib cannot write .jpg2 files"),
    "demo csv in no folder": (["demo", "--csv", "{tmp}/nowhere/d.csv", "-o", "{tmp}/d.png"], "--csv {tmp}/nowhere/d.csv: folder"),
    "demo reserved tower": (["demo", "--config", "{tmp}/backbone.yaml", "-o", "{tmp}/d.png"], "tower name 'backbone' is reserved"),
    "demo unknown option": (["demo", "--stpes", "3"], "unrecognized arguments: --stpes 3"),
    # bench
    "bench groups word": (["bench", "--groups", "1,x"], "argument --groups: expected an integer from 1 to 1000000, got 'x'"),
    "bench groups zero": (["bench", "--groups", "0"], "argument --groups: expected an integer from 1 to 1000000, got 0"),
    "bench groups empty": (["bench", "--groups", ""], "argument --groups: expected an integer from 1 to 1000000, got ''"),
    "bench groups huge": (["bench", "--groups", "10,10000001"], "argument --groups: expected an integer from 1 to 1000000, got 10000001"),
    "bench rounds zero": (["bench", "--rounds", "0"], "argument --rounds: expected an integer from 1 to 10000, got 0"),
    "bench threads": (["bench", "--threads", "5000"], "argument --threads: expected an integer from 1 to 1024, got 5000"),
    "bench json in no folder": (["bench", "--json", "{tmp}/nowhere/b.json"], "--json {tmp}/nowhere/b.json: folder"),
    "bench device": (["bench", "--device", "tpu"], "--device 'tpu': expected cpu, cuda or cuda:N"),
    # the command
    "no command": ([], "the following arguments are required: command"),
    "unknown command": (["frobnicate"], "argument command: invalid choice: 'frobnicate'"),
    "unknown option": (["bench", "--frobnicate"], "unrecognized arguments: --frobnicate"),
}


@pytest.mark.parametrize("case", list(BAD_OPTIONS))
def test_bad_options_are_one_line(tmp_path, capsys, case):
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "latin1.yaml").write_bytes("constant: 0.1 # caf\xe9\n".encode("latin-1"))
    write(tmp_path, "backbone.yaml", "tower_learning_rates: {backbone: {constant: 0.1}}\nbackbone_learning_rate: {constant: 0.2}\n")
    before = set(tmp_path.iterdir())
    args, message = BAD_OPTIONS[case]
    fill = lambda text: text.replace("{ex}", str(EXAMPLE)).replace("{tmp}", str(tmp_path))  # noqa: E731
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_main([fill(a) for a in args], capsys)
    one_error_line(code, err, fill(message))
    assert caught == [] and out == ""
    assert set(tmp_path.iterdir()) == before  # refused before anything was written


@pytest.mark.parametrize("value", ["bogus", "", "Native"])
@pytest.mark.parametrize("command", [["demo", "--steps", "2"], ["bench", "--quick", "--groups", "1"]])
def test_bad_backend_environment_is_one_line(tmp_path, capsys, monkeypatch, command, value):
    monkeypatch.setenv("FUSEDSCHED_BACKEND", value)
    code, out, err = run_main(command + (["-o", str(tmp_path / "d.png")] if command[0] == "demo" else ["--json", str(tmp_path / "b.json")]), capsys)
    one_error_line(code, err, f"FUSEDSCHED_BACKEND={value!r} is not a backend: expected one of auto, native, triton, reference")
    assert out == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["plot", str(EXAMPLE), "--steps", "9223372036854775807"], {},
         "argument --steps: expected an integer from 1 to 9007199254740991, got 9223372036854775807"),
        (["demo"], {"FUSEDSCHED_BACKEND": "bogus"},
         "FUSEDSCHED_BACKEND='bogus' is not a backend: expected one of auto, native, triton, reference"),
    ],
)
def test_python_dash_m_bad_input_exits_2_in_one_line(tmp_path, args, env, message):
    proc = subprocess.run([sys.executable, "-W", "error", "-m", "fusedsched", *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**os.environ, **env})
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [f"fusedsched: error: {message} (see fusedsched {args[0]} --help)"
                                        if "argument" in message else f"fusedsched: error: {message}"]
    assert list(tmp_path.iterdir()) == []


def test_python_dash_m_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fusedsched", "plot", str(tmp_path / "nope.yaml")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("fusedsched: error:")]
    assert errors == [f"fusedsched: error: config file not found: {tmp_path / 'nope.yaml'}"]
    assert "Traceback" not in proc.stderr


# --- the cause of an invalid config comes first --------------------------------------------------

MISSPELT = {
    "schedule": ("cosine_annealing: {learning_rate: 0.1, num_step: 100}\n", "cosine_annealing"),
    "optimizer section": ("optimizer:\n  adam: {lr: 0.1}\n  learning_rate:\n    cosine_annealing:\n"
                          "      learning_rate: 0.1\n      num_step: 100\n", "optimizer.learning_rate.cosine_annealing"),
    "learning_rate": ("learning_rate: {cosine_annealing: {learning_rate: 0.1, num_step: 100}}\n",
                      "learning_rate.cosine_annealing"),
}


@pytest.mark.parametrize("case", MISSPELT)
def test_a_misspelt_required_field_is_reported_as_the_unknown_key_with_a_hint(tmp_path, capsys, case):
    text, where = MISSPELT[case]
    code, _, err = run_main(["plot", str(write(tmp_path, "lr.yaml", text)), "-o", str(tmp_path / "x.png")], capsys)
    one_error_line(code, err, f"invalid config: unknown key 'num_step' at {where} (did you mean 'num_steps'?)")


def test_a_misspelt_optional_field_gets_no_hint(tmp_path, capsys):
    text = "one_cycle: {max_learning_rate: 0.1, total_steps: 100, pct_strat: 0.2}\n"
    code, _, err = run_main(["plot", str(write(tmp_path, "lr.yaml", text)), "-o", str(tmp_path / "x.png")], capsys)
    one_error_line(code, err, "invalid config: unknown key 'pct_strat' at one_cycle\n")


UNINDENTED = {
    "learning_rate": ("learning_rate:\n  cosine_annealing:\n  learning_rate: 0.1\n  num_steps: 100\n",
                      "learning_rate.cosine_annealing is empty and learning_rate has stray keys 'learning_rate', "
                      "'num_steps': are the schedule's fields indented under cosine_annealing?"),
    "optimizer section": ("optimizer:\n  adam: {lr: 0.1}\n  learning_rate:\n    cosine_annealing:\n"
                          "    learning_rate: 0.1\n    num_steps: 100\n",
                          "optimizer.learning_rate.cosine_annealing is empty and optimizer.learning_rate has stray keys "
                          "'learning_rate', 'num_steps': are the schedule's fields indented under cosine_annealing?"),
    "a bare schedule": ("cosine_annealing:\nlearning_rate: 0.1\nnum_steps: 100\n",
                        "cosine_annealing is empty and the top level has stray keys 'learning_rate', 'num_steps': "
                        "are the schedule's fields indented under cosine_annealing?"),
    "a tower's schedule": ("tower_learning_rates:\n  ctr:\n    one_cycle:\n    max_learning_rate: 0.1\n"
                           "    total_steps: 50\nbackbone_learning_rate: {constant: 0.1}\n",
                           "tower_learning_rates.ctr.one_cycle is empty and tower_learning_rates.ctr has stray keys "
                           "'max_learning_rate', 'total_steps': are the schedule's fields indented under one_cycle?"),
}


@pytest.mark.parametrize("case", UNINDENTED)
def test_an_unindented_schedule_is_reported_as_such(tmp_path, capsys, case):
    text, message = UNINDENTED[case]
    code, _, err = run_main(["plot", str(write(tmp_path, "lr.yaml", text)), "-o", str(tmp_path / "x.png")], capsys)
    one_error_line(code, err, f"invalid config: {message}\n")


def test_bench_times_both_regimes_and_names_its_schedules_and_baseline(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code, out, err = run_main(["bench", "--quick", "--groups", "1,3", "--rounds", "1", "--json", str(path)], capsys)
    assert code == 0, err
    active, finished = out.index("scheduler.step(), schedules active (headline)"), out.index("scheduler.step(), schedules finished")
    assert active < out.index("targets (") < finished  # the headline table and its verdicts come first
    for text in (*bench.REGIMES.values(), bench.BASELINE, bench.OPS_NOTE, "prepare_lr", "indicative only (--quick)"):
        assert text in out
    result = json.loads(path.read_text())
    rows = result["scheduler_step"]
    assert {r["regime"] for r in rows} == set(bench.REGIMES) == set(result["targets_by_regime"])
    assert result["targets"] == result["targets_by_regime"]["active"] and result["targets"]["regime"] == "active"
    names = {r["candidate"] for r in rows}
    assert "fusedsched[reference]" in names and "LambdaLR float" in names
    if "fusedsched[native]" in names:
        assert "reference" in result["targets"] and "reference backend" in out


def test_bench_regimes_are_what_they_say():
    # active: some group changes between two steps after START_STEP; finished: none does
    for regime, changes in (("active", True), ("finished", False)):
        schedules = bench.regime_schedules(regime, 4)
        s = bench.START_STEP
        assert any(compute_lr(c, s + 1) != compute_lr(c, s + 2) for c in schedules) == changes
        if changes:  # the cosines and the ramp change at every step timed, the constant never
            assert sum(compute_lr(c, s + 1) != compute_lr(c, s + 10**6) for c in schedules) == 3
    with pytest.raises(ValueError, match="regime must be one of active, finished; got 'idle'"):
        bench.regime_schedules("idle", 1)


def test_every_error_of_an_invalid_config_is_shown_with_its_path(tmp_path, capsys):
    text = ("optimizer:\n  adam: {lr: -0.1, betas: [0.9, 1.5]}\n"
            "  learning_rate: {cosine_annealing: {learning_rate: 0.1, num_step: 100}}\n")
    code, _, err = run_main(["plot", str(write(tmp_path, "lr.yaml", text)), "-o", str(tmp_path / "x.png")], capsys)
    one_error_line(code, err, (
        "invalid config: unknown key 'num_step' at optimizer.learning_rate.cosine_annealing (did you mean 'num_steps'?); "
        "optimizer.learning_rate.cosine_annealing.num_steps: Field required, got {'learning_rate': 0.1, 'num_step': 100}; "
        "optimizer.adam.lr: lr (-0.1) must be finite and >= 0; "
        "optimizer.adam.betas.1: betas (1.5) must be in [0, 1)\n"))
    assert "more error" not in err

