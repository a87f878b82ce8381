#!/usr/bin/env python3
"""Download the wheels the GPU machine lacks into .whl/, and check that nothing else is missing.

The GPU machines (device tool, KINDS.md) have Python 3.12, torch, Triton, pytest, pytest-benchmark,
numpy, PyYAML, matplotlib, tqdm, hypothesis, transformers and more, but no pydantic and no network.
This fetches the given requirements as cp312 manylinux wheels (the device README's pip download
line), then reads every wheel's Requires-Dist and fusedsched's own runtime and test requirements
(pyproject.toml) and fails if one names a package that is neither a wheel here nor on the machine.
It also writes .whl/SOURCE (the commit measured), since the device's copy of the tree has no git.

    python3 scripts/gpu_wheels.py pydantic==2.14.4 pydantic-core==2.50.5 ...
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import zipfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
# Optional test needs the evidence run does without: torchrec's tests import it only where it exists.
NOT_NEEDED_THERE = {"torchrec", "ruff"}  # ruff lints in CI; the GPU run tests and measures
# The GPU machines' Python packages (image 'cuda'), as KINDS.md of the device tool lists them (2026-11-17).
GPU_MACHINE = set("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core cuda-pathfinder
cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock flatbuffers flax fonttools
formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna
imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver
lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe
matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals
networkx ninja numba numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13
nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft
pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock pytest-timeout pytest-xdist
python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu safetensors scikit-build-core scikit-image
scikit-learn scipy seaborn sentencepiece sentence-transformers setuptools shellingham simplejson six sortedcontainers
statsmodels sympy tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope
triton typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
""".split())
MARKER_ENV = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux", "platform_system": "Linux",
              "platform_machine": "x86_64", "implementation_name": "cpython", "platform_python_implementation": "CPython",
              "os_name": "posix", "extra": ""}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement(text: str):
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip carries a copy
        from pip._vendor.packaging.requirements import Requirement
    return Requirement(text)


def needed(requirements: list[str]) -> set[str]:
    """Canonical names of the requirements that apply on the GPU machine (no extras, markers evaluated)."""
    names = set()
    for text in requirements:
        req = _requirement(text)
        if req.marker is None or req.marker.evaluate(MARKER_ENV):
            names.add(canonical(req.name))
    return names


def wheel_requirements(wheel: Path) -> tuple[str, list[str]]:
    """(canonical name, Requires-Dist lines) of a wheel."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode("utf-8")
    name = re.search(r"^Name: (.+)$", text, re.MULTILINE).group(1).strip()
    return canonical(name), [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def project_requirements() -> list[str]:
    import tomllib  # Python 3.11+

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return list(project.get("dependencies", [])) + list(project.get("optional-dependencies", {}).get("test", []))


def write_source(dest: Path) -> dict:
    def git(*args: str) -> str | None:
        proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return proc.stdout.strip() if proc.returncode == 0 else None

    source = {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain")),
              "written": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    (dest / "SOURCE").write_text(json.dumps(source) + "\n", encoding="utf-8")
    return source


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fetch the GPU machine's missing wheels into a folder and check them.")
    parser.add_argument("requirements", nargs="+", help="NAME==VERSION for each wheel to fetch")
    parser.add_argument("--dest", type=Path, default=ROOT / ".whl")
    parser.add_argument("--python-version", default="3.12")
    parser.add_argument("--pip", default=sys.executable, help="the Python whose pip downloads (default this one)")
    args = parser.parse_args(argv)

    args.dest.mkdir(parents=True, exist_ok=True)
    for old in args.dest.glob("*.whl"):  # one version of each: two would stop the install there
        old.unlink()
    cmd = [args.pip, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version", args.python_version,
           "--implementation", "cp", *(f"--platform={p}" for p in PLATFORMS), "-d", str(args.dest), *args.requirements]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"gpu-wheels: pip download failed:\n{proc.stdout}{proc.stderr}", file=sys.stderr)
        return 1

    wheels = sorted(args.dest.glob("*.whl"))
    carried, required = {}, {}
    for wheel in wheels:
        name, requires = wheel_requirements(wheel)
        carried[name] = wheel.name
        required[wheel.name] = needed(requires)
    required["pyproject.toml (fusedsched and its tests)"] = needed(project_requirements()) - {"fusedsched"}
    have = set(carried) | {canonical(n) for n in GPU_MACHINE} | NOT_NEEDED_THERE
    missing = {who: sorted(names - have) for who, names in required.items() if names - have}
    for wheel in wheels:
        print(f"gpu-wheels: {wheel.name} ({wheel.stat().st_size // 1024} KB) needs "
              f"{', '.join(sorted(required[wheel.name])) or 'nothing'}")
    if missing:
        for who, names in missing.items():
            print(f"gpu-wheels: {who} needs {', '.join(names)}, which neither .whl nor the GPU machine has: "
                  "add it to GPU_WHEELS in the Makefile", file=sys.stderr)
        return 1
    source = write_source(args.dest)
    total = sum(w.stat().st_size for w in wheels)
    print(f"gpu-wheels: {len(wheels)} wheels, {total / 2**20:.1f} MiB in {args.dest}; every requirement is carried or on "
          f"the GPU machine; commit {source['commit']}{' + uncommitted changes' if source['dirty'] else ''} in SOURCE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
