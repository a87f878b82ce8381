"""The command line: ``demo``, ``plot`` and ``bench`` run, write valid PNG / JSON, and fail in one line."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from fusedsched import LearningRate, LRShim, bench, compute_lr
from fusedsched.cli import load_schedules, main, schedule_curve

EXAMPLE = bench.example_config_path()
TOWERS = ["is_clicked", "is_replied", "is_favorited", "backbone"]


def read_png(path: Path) -> dict:
    """Check a PNG chunk by chunk (signature, CRCs, IHDR first, IEND last, IDAT size); return its parts."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "bad signature"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, color, *_ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, color) == (8, 2), "expected 8-bit RGB"
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(raw) == height * (1 + 3 * width)
    texts = dict(body.split(b"\0", 1) for kind, body in chunks if kind == b"tEXt")
    return {"width": width, "height": height, "meta": json.loads(texts[b"fusedsched"])}


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


def test_demo_trains_reports_and_plots(tmp_path, capsys):
    png = tmp_path / "demo.png"
    code, out, err = run_main(["demo", "--steps", "20", "-o", str(png)], capsys)
    assert code == 0, err
    for expected in ("steps/s", "scheduler.step()", "LambdaLR", "host syncs", "backend", str(png)):
        assert expected in out
    assert "0 per scheduler.step()" in out  # device mode never syncs
    assert "training [" in err and "20/20" in err  # the progress bar
    meta = read_png(png)["meta"]
    names = [c["name"] for c in meta["curves"]]
    assert names == TOWERS + ["loss"]  # one curve per param group, and the loss
    lrs = {c["name"]: c for c in meta["curves"]}
    cfgs, _ = load_schedules(EXAMPLE)
    for name in TOWERS:  # the recorded rates follow each tower's own schedule
        got = np.array(lrs[name]["y"])
        want = np.float32([compute_lr(cfgs[name], int(s)) for s in lrs[name]["x"]])
        np.testing.assert_allclose(got, want, rtol=1e-5)
    assert all(np.isfinite(lrs["loss"]["y"]))


def test_demo_with_a_single_schedule(tmp_path, capsys):
    cfg = write(tmp_path, "sgd.yaml", "optimizer:\n  sgd: {lr: 0.1, momentum: 0.9}\n")
    code, out, err = run_main(["demo", "--config", str(cfg), "--steps", "5", "-q", "-o", str(tmp_path / "d.png")], capsys)
    assert code == 0, err
    assert [c["name"] for c in read_png(tmp_path / "d.png")["meta"]["curves"]] == ["ALL_PARAMS", "loss"]


# --- plot --------------------------------------------------------------------------------------


def test_plot_example_draws_every_group(tmp_path, capsys):
    png = tmp_path / "lr.png"
    code, out, err = run_main(["plot", str(EXAMPLE), "--steps", "400", "-o", str(png)], capsys)
    assert code == 0, err
    curves = read_png(png)["meta"]["curves"]
    assert [c["name"] for c in curves] == TOWERS
    marks = {c["name"]: c["marks"] for c in curves}
    assert marks["is_favorited"] == [60, 150, 240] and marks["is_clicked"] == [30, 220]
    assert all(c["x"][0] == 0 and c["x"][-1] == 399 for c in curves)


def test_plot_bare_learning_rate(tmp_path, capsys):
    cfg = write(tmp_path, "lr.yaml", "linear_ramp_to_constant: {learning_rate: 0.5, num_ramp_steps: 10}\n")
    code, out, err = run_main(["plot", str(cfg), "-o", str(tmp_path / "x.png")], capsys)
    assert code == 0, err
    (curve,) = read_png(tmp_path / "x.png")["meta"]["curves"]
    assert curve["marks"] == [10] and max(curve["y"]) == 0.5


@pytest.mark.parametrize(
    "text, groups",
    [
        ("adam: {lr: 0.01}\n", 1),  # the optimizer section itself, no schedule: constant at lr
        ("tower_learning_rates: {a: {constant: 0.1}, b: {constant: 0.2}}\nbackbone_learning_rate: {constant: 0.3}\n", 3),
    ],
)
def test_config_shapes(tmp_path, text, groups):
    schedules, _ = load_schedules(write(tmp_path, "c.yaml", text))
    assert len(schedules) == groups


def test_schedule_curve_keeps_every_jump_at_a_million_steps():
    cfg = LearningRate(piecewise_constant={"learning_rate_boundaries": [10, 500_000, 500_001], "learning_rate_values": [1, 4, 2, 3]})
    x, y = schedule_curve(cfg, 1_000_000)
    assert len(x) <= 4000 and np.all(np.diff(x) >= 0)
    assert set(np.unique(y)) == {1.0, 2.0, 3.0, 4.0}  # the one-step value 2 (step 500,000 only) survives
    x, y = schedule_curve(cfg, 10**12)  # beyond full evaluation: a grid plus the marks
    assert 500_000 in x and y[x == 500_000][0] == 2.0


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


def test_stock_lambda_is_the_reference():
    for cfg in bench.example_schedules():
        f = bench.stock_lambda(cfg)
        assert all(f(s) == compute_lr(cfg, s) for s in range(0, 400))


def test_sync_counter_sees_item_and_inside_custom_ops():
    assert bench.count_host_syncs(lambda: torch.ones(()).item(), calls=3) == (1.0, 2.0)  # ones + item
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    shim = LRShim(opt, {"g": LearningRate(constant=0.1)}, device_schedule=True, backend="reference")
    syncs, ops = bench.count_host_syncs(shim.step, calls=2)
    assert syncs == 0 and ops > 1  # the reference backend's torch ops are counted, not just the op call


# --- bad input ---------------------------------------------------------------------------------

BAD = {
    "missing file": (None, "not found"),
    "invalid YAML": ("optimizer:\n  adam: {lr: 0.1\n  sgd: [\n", "invalid YAML"),
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


@pytest.mark.parametrize(
    "args, message",
    [
        (["plot", str(EXAMPLE), "--steps", "-3"], "--steps"),
        (["bench", "--groups", "1,x"], "--groups"),
        (["demo", "--backend", "fast"], "--backend"),
        (["demo", "--device", "cuda:0" if not torch.cuda.is_available() else "tpu"], "--device"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_options_are_one_line(capsys, args, message):
    code, out, err = run_main(args, capsys)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_python_dash_m_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "fusedsched", "plot", str(tmp_path / "nope.yaml")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("fusedsched: error:")]
    assert errors == [f"fusedsched: error: config file not found: {tmp_path / 'nope.yaml'}"]
    assert "Traceback" not in proc.stderr
