"""The GPU tooling's CPU-side behaviour: scripts/gpu-evidence.sh, the precision sweep, the evidence
report, the wheel kit and check_gpu_build's FMA check (Triton compiles for sm_90 without a GPU)."""

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
EVIDENCE = SCRIPTS / "gpu-evidence.sh"
sys.path.insert(0, str(SCRIPTS))

import gpu_evidence_report  # noqa: E402
import gpu_precision_sweep  # noqa: E402
import gpu_wheels  # noqa: E402


def _evidence(*args, **env):
    return subprocess.run(["bash", str(EVIDENCE), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHON": sys.executable, **env})


# --- scripts/gpu-evidence.sh -------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the evidence script would run for real")
def test_evidence_without_cuda_exits_2_with_one_line(tmp_path):
    proc = _evidence("--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "no CUDA device here" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_evidence_without_torch_exits_2(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexec python3 -S -c 'import sys; sys.exit(\"no torch\")' \"$@\"\n")
    fake.chmod(0o755)
    proc = _evidence(PYTHON=str(fake))
    assert proc.returncode == 2 and "no CUDA device here" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown argument '--bogus'"),
    (["--out"], "--out needs a folder"),
    (["--budget", "10"], "--budget must be a whole number of seconds >= 60, got '10'"),
    (["--budget", "abc"], "got 'abc'"),
])
def test_evidence_bad_arguments(args, message):
    proc = _evidence(*args)
    assert proc.returncode == 2
    assert message in proc.stderr and "usage:" in proc.stderr


def test_evidence_help():
    proc = _evidence("--help")
    assert proc.returncode == 0 and "--check-wheels" in proc.stdout


def _wheel(folder: Path, name: str, version: str, requires=()) -> Path:
    """A minimal pure-Python wheel holding module ``name``."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}.py", "VALUE = 42\n")
        zf.writestr(f"{info}/METADATA", meta)
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


def test_evidence_check_wheels_installs_into_a_temporary_site(tmp_path):
    wheels = tmp_path / "whl"
    wheels.mkdir()
    _wheel(wheels, "fusedsched_probe", "1.0")
    proc = _evidence("--check-wheels", "--wheels", str(wheels), TMPDIR=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 wheels into" in proc.stdout and f"fusedsched from {ROOT / 'src'}" in proc.stdout
    assert not list(tmp_path.glob("fusedsched-site.*")), "the temporary site dir is left behind"


def test_evidence_check_wheels_fails_on_a_bad_wheel(tmp_path):
    wheels = tmp_path / "whl"
    wheels.mkdir()
    (wheels / "broken-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    proc = _evidence("--check-wheels", "--wheels", str(wheels), TMPDIR=str(tmp_path))
    assert proc.returncode != 0 and "failed" in proc.stderr


# --- the precision sweep -----------------------------------------------------------------------


def test_compare_counts_identical_one_ulp_and_worse():
    want = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    got = want.copy()
    got[0, 1] = np.nextafter(got[0, 1], np.float32(10))
    r = gpu_precision_sweep.compare(got, want)
    assert (r["pairs"], r["identical"], r["one_ulp"], r["worst_ulp"], r["nan_mismatch"]) == (4, 3, 1, 1, 0)
    assert not r["goal_met"]  # 75% identical
    got[0, 2] = np.nextafter(np.nextafter(got[0, 2], np.float32(10)), np.float32(10))
    got[0, 3] = np.nan
    r = gpu_precision_sweep.compare(got, want)
    assert (r["worst_ulp"], r["nan_mismatch"]) == (2, 1) and r["examples"]
    assert gpu_precision_sweep.compare(want, want)["goal_met"]


def test_sweep_on_cpu_meets_the_goal(tmp_path):
    out = tmp_path / "precision.json"
    code = gpu_precision_sweep.main(["--device", "cpu", "--groups", "19", "--steps", "40", "--json", str(out)])
    result = json.loads(out.read_text())
    assert code == 0
    ran = {b: e for b, e in result["backends"].items() if "skipped" not in e}
    assert "reference" in ran
    for entry in ran.values():
        assert set(entry) == {"from 0", "around 2**40"}
        assert all(r["pairs"] == 19 * 40 and r["goal_met"] for r in entry.values())
    assert result["settings"]["windows"]["around 2**40"] == [2**40 - 20, 2**40 + 19]


# --- the evidence report -----------------------------------------------------------------------


def _row(suite, candidate, groups, us, backend="triton"):
    return {"suite": suite, "candidate": candidate, "groups": groups, "median_us": us, "backend": backend}


def test_gpu_targets_from_bench_rows():
    bench = {
        "training_step": [_row("training_step", "graph + fusedsched", 16, 101.0),
                          _row("training_step", "graph, constant LR (floor)", 16, 100.0)],
        "schedule_node": [_row("schedule_node", "fusedsched[triton]", 1, 2.0), _row("schedule_node", "fusedsched[triton]", 10000, 4.5),
                          _row("schedule_node", "fusedsched[reference]", 1, 30.0), _row("schedule_node", "fusedsched[reference]", 10000, 31.0),
                          _row("schedule_node", "one tiny kernel (floor)", 1, 1.5)],
    }
    t = gpu_evidence_report.gpu_targets(bench)
    assert t["training"]["overhead"] == pytest.approx(0.01) and t["training"]["met"]
    assert t["schedule_node"]["fusedsched[triton]"]["spread"] == pytest.approx(2.25)
    assert not t["schedule_node"]["fusedsched[triton]"]["met"]  # 2.25x from 1 to 10,000 groups
    assert not t["schedule_node"]["fusedsched[reference]"]["met"]  # over 5 us
    assert "met" not in t["schedule_node"]["one tiny kernel (floor)"]


def test_summary_from_partial_results(tmp_path):
    (tmp_path / "cuda-tests.xml").write_text(textwrap.dedent("""\
        <testsuites><testsuite name="pytest" tests="3">
          <testcase classname="tests.test_graphs" name="test_a"/>
          <testcase classname="tests.test_graphs" name="test_b"><failure message="AssertionError: 2 ulp">trace</failure></testcase>
          <testcase classname="tests.test_graphs" name="test_c"><skipped message="native unavailable"/></testcase>
        </testsuite></testsuites>"""))
    stages = tmp_path / "stages.tsv"
    stages.write_text("wheels\tok\t1\t0\t5 wheels\ncuda-tests\tfailed\t60\t1\texit status 1\nbench\tskipped\t0\t-\tout of time\n")
    assert gpu_evidence_report.main(["summary", "--out", str(tmp_path), "--stages", str(stages), "--seconds", "99"]) == 0
    text = (tmp_path / "summary.md").read_text()
    assert "1 passed, 1 failed, 0 errors, 1 skipped" in text
    assert "FAILED tests.test_graphs::test_b: AssertionError: 2 ulp" in text
    assert "| bench | skipped | 0 | out of time |" in text
    assert "precision.json missing" in text and "bench.json missing" in text


# --- the wheel kit -----------------------------------------------------------------------------


def test_wheel_requirements_and_markers(tmp_path):
    wheel = _wheel(tmp_path, "Some_Pkg", "1.0", ["typing-extensions>=4", "tomli; python_version < '3.11'",
                                                 "rich; extra == 'cli'", "Annotated.Types"])
    name, requires = gpu_wheels.wheel_requirements(wheel)
    assert name == "some-pkg"
    assert gpu_wheels.needed(requires) == {"typing-extensions", "annotated-types"}


def test_project_requirements_are_carried_or_on_the_gpu_machine():
    carried = {"pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions"}
    have = carried | gpu_wheels.GPU_MACHINE | gpu_wheels.NOT_NEEDED_THERE
    assert gpu_wheels.needed(gpu_wheels.project_requirements()) - have == set()
    makefile = (ROOT / "Makefile").read_text()
    assert all(f"{name}==" in makefile for name in carried), "GPU_WHEELS in the Makefile lost a wheel"


# --- check_gpu_build's Triton half -------------------------------------------------------------

FMA_CHECK = """
import os, sys, tempfile
os.environ.pop("TRITON_INTERPRET", None)
os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp()
os.environ["FUSEDSCHED_DISABLE_NATIVE"] = "1"
sys.path[:0] = [sys.argv[1] + "/scripts", sys.argv[1] + "/src"]
import check_gpu_build as c
launches = c.record_triton_launches()
print("ok:", c.check_triton_arch(launches[:1], 90)[0])
fused = [(k, g, a, {**kw, "enable_fp_fusion": True}) for k, g, a, kw in launches[:1]]
try:
    c.check_triton_arch(fused, 90)
except c.CheckFailed as exc:
    print("caught:", exc)
"""


def test_triton_fma_check_passes_as_launched_and_fails_with_fusion_on():
    pytest.importorskip("triton.backends.nvidia.compiler")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    proc = subprocess.run([sys.executable, "-c", FMA_CHECK, str(ROOT)], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ok = next(line for line in proc.stdout.splitlines() if line.startswith("ok:"))
    assert "the kernel's own code: 0 fma" in ok
    caught = next(line for line in proc.stdout.splitlines() if line.startswith("caught:"))
    assert "the kernel's own arithmetic compiles to" in caught and "enable_fp_fusion=True" in caught


def test_parse_archs():
    import check_gpu_build

    assert check_gpu_build.parse_archs("8.0;9.0") == [80, 90]
    assert check_gpu_build.parse_archs("9.0") == [90]
    with pytest.raises(Exception, match="compute capabilities"):
        check_gpu_build.parse_archs("sm_90")
