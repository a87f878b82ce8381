#!/usr/bin/env python3
"""Compile both GPU kernels for CUDA targets on a machine without a GPU; one line per check.

native (csrc/): built out of tree (``build/gpu-check/``, never over the CPU build in src/) by the
CUDA build of torch in ``--cuda-python``, with nvcc from ``--cuda-home`` and
``TORCH_CUDA_ARCH_LIST=--archs``. The extension must load there with a CUDA kernel registered for
``fusedsched::advance_native_`` and the fused graph-safe steps ``fusedsched::graphsafe_adam_`` and
``fusedsched::graphsafe_sgd_`` (no GPU is needed for that) and hold machine code for every arch,
each of those kernels in it.

triton (``fusedsched.ops._triton``): every launch of a ``@triton.jit`` kernel of that module is
recorded, not run, on the production path: an ``LRShim`` in device mode with the ``triton``
backend (its construction launches with increment 0, ``step()`` with 1, then with an amount
tensor and with float32 and bool skip flags), and the op's launches with a plateau state, alone and
with a float64 or a float32 metric (fusedsched.schedule.plateau_state). Each recorded launch is
compiled ahead of time for every arch with the signature, constexprs, attributes and options that
Triton's own launcher derives from those arguments, so the check follows the kernel and its
launcher as they change. The kernel's own arithmetic must contain no fused multiply-add: the same
compile with libdevice left unlinked (its functions stay external calls, so only the kernel's own
code is left) must have no ``fma`` in its PTX and no ``DFMA`` in its SASS, and the same again with
FP fusion forced on shows how many the check would have caught.

This runs under the Python that has fusedsched's dependencies and Triton (.venv); the native part
runs in subprocesses of ``--cuda-python``. Exit status 0 when every check passes, else 1.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OP_NAME = "fusedsched::advance_native_"
OP_NAMES = (OP_NAME, "fusedsched::advance_native_.clock",  # the plain step and its amount / skip overload
            "fusedsched::graphsafe_adam_", "fusedsched::graphsafe_sgd_")  # the fused graph-safe steps
#: The kernels whose machine code the CUDA build must hold, by the name cuobjdump shows (a substring).
SASS_KERNELS = ("advance", "adam_kernel", "sgd_kernel")
TABLE_GROUPS = 1025
PTX_FMA = re.compile(r"^\s*(?:@!?%\w+\s+)?(fma\.[\w.]+)", re.MULTILINE)
SASS_DFMA = re.compile(r"\bDFMA\b")


class CheckFailed(Exception):
    """A check's failure, reported as its one line."""


class Report:
    def __init__(self) -> None:
        self.passed = self.failed = 0

    def run(self, name: str, check, *args):
        """Run ``check(*args) -> (detail, value)``; print its line; return ``value`` (None on failure)."""
        start = time.perf_counter()
        try:
            detail, value = check(*args)
        except Exception as exc:  # noqa: BLE001 - any failure is this check's, reported in its line
            self.failed += 1
            why = str(exc) if isinstance(exc, CheckFailed) else f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, CheckFailed):
                traceback.print_exc()
            print(f"FAIL  {name:<15} {why} ({time.perf_counter() - start:.0f} s)", flush=True)
            return None
        self.passed += 1
        print(f"ok    {name:<15} {detail} ({time.perf_counter() - start:.0f} s)", flush=True)
        return value


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    except OSError as exc:
        raise CheckFailed(f"cannot run {cmd[0]}: {exc}") from None


def parse_archs(text: str) -> list[int]:
    """``"8.0;9.0"`` (TORCH_CUDA_ARCH_LIST) -> ``[80, 90]``."""
    archs = []
    for part in re.split(r"[;\s,]+", text.strip()):
        m = re.fullmatch(r"(\d+)\.(\d)", part)
        if not m:
            raise argparse.ArgumentTypeError(f"--archs: expected compute capabilities like '8.0;9.0', got {part!r}")
        archs.append(int(m.group(1)) * 10 + int(m.group(2)))
    return archs


# --- native ------------------------------------------------------------------------------------


def check_cuda_toolchain(cuda_python: Path, cuda_home: Path):
    nvcc = cuda_home / "bin" / "nvcc"
    if not nvcc.exists():
        raise CheckFailed(f"no nvcc at {nvcc} (set CUDA_HOME to a CUDA toolkit)")
    release = re.search(r"release ([\d.]+)", _run([str(nvcc), "--version"]).stdout)
    if not cuda_python.exists():
        raise CheckFailed(f"no Python at {cuda_python} (make creates it with the CUDA build of torch)")
    probe = _run([str(cuda_python), "-c", "import torch; print(torch.__version__, torch.version.cuda)"])
    if probe.returncode != 0:
        raise CheckFailed(f"{cuda_python} cannot import torch: {_tail(probe.stderr, 3)}")
    torch_version, torch_cuda = probe.stdout.split()
    if torch_cuda == "None":
        raise CheckFailed(f"{cuda_python} has torch {torch_version}, a CPU build; the CUDA kernel needs a CUDA build")
    nvcc_release = release.group(1) if release else "unknown"
    if nvcc_release.split(".")[0] != torch_cuda.split(".")[0]:
        raise CheckFailed(f"nvcc {nvcc_release} at {nvcc} and torch {torch_version} (CUDA {torch_cuda}) differ in major version")
    return f"torch {torch_version} (CUDA {torch_cuda}) in {cuda_python.parent.parent}, nvcc {nvcc_release} at {cuda_home}", None


def check_native_build(cuda_python: Path, cuda_home: Path, archs: list[int], out: Path):
    lib, temp = out / "lib", out / "temp"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = dict(
        os.environ,
        FUSEDSCHED_BUILD_NATIVE="1",
        CUDA_HOME=str(cuda_home),
        TORCH_CUDA_ARCH_LIST=";".join(f"{a // 10}.{a % 10}" for a in archs),
        PATH=f"{cuda_home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    cmd = [str(cuda_python), "setup.py", "build_ext", "--force", "--build-lib", str(lib), "--build-temp", str(temp)]
    proc = _run(cmd, cwd=ROOT, env=env)
    (out / "build.log").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        raise CheckFailed(f"the build failed (log: {out / 'build.log'}):\n{_tail(proc.stdout + proc.stderr)}")
    built = sorted(lib.glob("fusedsched/_C*.so"))
    if not built:
        raise CheckFailed(f"the build made no fusedsched/_C*.so under {lib} (log: {out / 'build.log'})")
    cu = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "csrc").rglob("*.cu"))
    return f"{', '.join(cu)} + C++ for {', '.join(f'sm_{a}' for a in archs)} -> {built[0].relative_to(ROOT)}", built[0]


# Loads the library as torch does, then imports it as the module fusedsched._C and calls its eager
# entry point launch (the CPU kernel, which the CUDA build has too) with an amount of 3 over a
# one-group constant table: the counter must go from 9 to 12 (argv: library, NUM_COLUMNS, ops).
LOAD_PROBE = """
import importlib.util, sys, torch
torch.ops.load_library(sys.argv[1])
keys = [[k for k in ("CPU", "CUDA") if torch._C._dispatch_has_kernel_for_dispatch_key(op, k)] for op in sys.argv[3:]]
spec = importlib.util.spec_from_file_location("fusedsched._C", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
step, lrs = torch.tensor(9), torch.zeros(1)
module.launch(step, torch.zeros(1, int(sys.argv[2]), 1, dtype=torch.float64), lrs, 1, torch.tensor(3))
assert int(step) == 12, f"fusedsched._C.launch moved the counter from 9 to {int(step)}, not 12"
print(";".join(",".join(k) or "-" for k in keys))
print(torch.ops.fusedsched.advance_native_.default._schema)
"""


def check_native_load(cuda_python: Path, library: Path):
    from fusedsched.schedule.program import NUM_COLUMNS

    proc = _run([str(cuda_python), "-c", LOAD_PROBE, str(library), str(NUM_COLUMNS), *OP_NAMES],
                env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
    if proc.returncode != 0:
        raise CheckFailed(f"{library.name} does not load in {cuda_python}:\n{_tail(proc.stderr)}")
    keys, schema = proc.stdout.strip().splitlines()[-2:]
    for op, op_keys in zip(OP_NAMES, keys.split(";")):
        if "CUDA" not in op_keys.split(","):
            raise CheckFailed(f"{library.name} loads but registers no CUDA kernel for {op} (kernels: {op_keys})")
    kernels = keys.split(";")[0].replace(",", " and ")
    return (f"{' and '.join(OP_NAMES)} have {kernels} kernels in the CUDA build of torch, and "
            f"fusedsched._C.launch runs its CPU kernel there, no GPU used: {schema}"), None


def check_native_sass(cuda_home: Path, library: Path, archs: list[int]):
    cuobjdump = cuda_home / "bin" / "cuobjdump"
    if not cuobjdump.exists():  # a toolkit without it: the copy Triton ships
        from triton import knobs

        cuobjdump = Path(knobs.nvidia.cuobjdump.path)
    listing = _run([str(cuobjdump), "--list-elf", str(library)])
    found = sorted({int(a) for a in re.findall(r"\bsm_(\d+)", listing.stdout)})
    missing = [a for a in archs if a not in found]
    if listing.returncode != 0 or missing:
        raise CheckFailed(f"no machine code for {', '.join(f'sm_{a}' for a in missing) or '?'} in {library.name} "
                          f"(cuobjdump --list-elf: {_tail(listing.stdout + listing.stderr, 5) or 'nothing'})")
    sass = _run([str(cuobjdump), "--dump-sass", str(library)]).stdout
    kernels = sorted(set(re.findall(r"Function : (\S+)", sass)))
    absent = [name for name in SASS_KERNELS if not any(name in k for k in kernels)]
    if absent:
        raise CheckFailed(f"no {', '.join(absent)} kernel in the SASS of {library.name} (it holds {', '.join(kernels) or 'none'})")
    kernels = [k for k in kernels if any(name in k for name in SASS_KERNELS)]
    return f"SASS for {', '.join(f'sm_{a}' for a in found)} holds {', '.join(kernels)} ({cuobjdump})", None


# --- triton ------------------------------------------------------------------------------------


def record_triton_launches():
    """``[(kernel, grid, args, kwargs)]`` of the launches an LRShim with the triton backend makes
    on CPU tensors (construction, ``step()``, ``load_state_dict``), one per distinct specialization:
    ``fusedsched.ops._triton``'s jitted kernels are replaced by recorders, so nothing runs, and the
    dispatcher is told the backend may take CPU tensors (``INTERPRETED``)."""
    import torch
    from triton.runtime.jit import JITFunction

    from fusedsched import LRShim
    from fusedsched.ops import _triton
    from fusedsched.tools.bench import cycled_schedules

    kernels = {name: obj for name, obj in vars(_triton).items() if isinstance(obj, JITFunction)}
    if not kernels:
        raise CheckFailed("fusedsched.ops._triton defines no @triton.jit kernel")
    launches = []

    class Recorder:
        def __init__(self, kernel):
            self.kernel = kernel

        def __getitem__(self, grid):
            return lambda *args, **kwargs: launches.append((self.kernel, grid, args, kwargs))

    interpreted = _triton.INTERPRETED
    try:
        for name, kernel in kernels.items():
            setattr(_triton, name, Recorder(kernel))
        _triton.INTERPRETED = True
        params = [torch.nn.Parameter(torch.zeros(1)) for _ in range(TABLE_GROUPS)]
        optimizer = torch.optim.SGD([{"params": [p], "lr": 0.0} for p in params], lr=0.0)
        schedules = {f"g{i}": cfg for i, cfg in enumerate(cycled_schedules(TABLE_GROUPS))}
        shim = LRShim(optimizer, schedules, device_schedule=True, backend="triton", device="cpu")
        shim.step()
        shim.load_state_dict(shim.state_dict())  # resuming re-evaluates in place: increment 0
        shim.step(amount=torch.tensor(3))  # an amount tensor (HAS_AMOUNT)
        shim.skip_steps_on(torch.zeros(1))  # a float32 skip flag (HAS_SKIP)
        shim.step()
        shim.skip_steps_on(torch.zeros((), dtype=torch.bool))  # a bool one, with an amount
        shim.step(amount=torch.tensor(2))
        scaler = torch.amp.GradScaler("cpu")
        scaler.scale(torch.ones(()))  # its scale tensor exists
        shim.skip_steps_on(scaler)  # a GradScaler: its scale and the previous one (HAS_PREVIOUS_SCALE)
        shim.step()
        record_plateau_launches(_triton.launch)
    finally:
        for name, kernel in kernels.items():
            setattr(_triton, name, kernel)
        _triton.INTERPRETED = interpreted
    if not launches:
        raise CheckFailed("an LRShim with backend='triton' launched no kernel of fusedsched.ops._triton")
    distinct = {}
    for kernel, grid, args, kwargs in launches:
        _, specialization, options = _binder(kernel, 90)(*args, **kwargs)
        distinct.setdefault((kernel.__name__, str(specialization), str(sorted(options.items()))), (kernel, grid, args, kwargs))
    return list(distinct.values())


def record_plateau_launches(launch) -> None:
    """The op's launches with a plateau state (HAS_PLATEAU), alone and with a float64 and a float32
    metric (HAS_METRIC), over a table with plain and product PLATEAU groups and a group without."""
    import torch

    from fusedsched.schedule.plateau_state import Plateau, plateau_tensor
    from fusedsched.schedule.program import ScheduleTable, Segment, Shape, chain

    programs = [
        [Segment(0, Shape.PLATEAU, 0.1)],
        chain([Segment(0, Shape.LINEAR, 0.0, v1=0.1, end=10), Segment(10, Shape.PLATEAU, 0.1)]),
        [Segment(0, Shape.CONSTANT, 1.0, stop=5), Segment(5, Shape.PLATEAU, 0.1), Segment(0, Shape.COSINE, 1.0)],
        [Segment(0, Shape.CONSTANT, 0.5)],
    ]
    table = ScheduleTable.from_programs(programs).table
    plateau = plateau_tensor([Plateau(initial=0.1)] * 3 + [None])
    step, lrs = torch.zeros((), dtype=torch.int64), torch.zeros(len(programs))
    launch(step, table, lrs, 0, None, None, plateau, None)
    launch(step, table, lrs, 1, None, torch.zeros(()), plateau, torch.tensor(1.0, dtype=torch.float64))
    launch(step, table, lrs, 1, None, None, plateau, torch.tensor([1.0], dtype=torch.float32))


def _binder(kernel, capability: int):
    """Triton's own argument binder for ``kernel`` on ``sm_<capability>``: ``binder(*args, **kwargs)``
    returns the bound arguments, their specialization (type, attribute) and the launch options."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    return create_function_from_signature(kernel.signature, kernel.params, make_backend(GPUTarget("cuda", capability, 32)))


def triton_compile(kernel, args, kwargs, capability: int, **overrides):
    """Compile one launch for ``sm_<capability>`` the way ``JITFunction.run`` would on that GPU:
    Triton's binder specializes the arguments, ``_pack_args`` turns them into the signature,
    constexprs, attributes and options, and ``triton.compile`` builds the ASTSource."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend

    target = GPUTarget("cuda", capability, 32)
    backend = make_backend(target)
    kwargs = {**kwargs, **overrides}
    kwargs["debug"] = kwargs.get("debug", kernel.debug) or knobs.runtime.debug
    kwargs["instrumentation_mode"] = knobs.compilation.instrumentation_mode
    bound, specialization, options = _binder(kernel, capability)(*args, **kwargs)
    options, signature, constexprs, attrs = kernel._pack_args(backend, kwargs, bound, specialization, options)
    compiled = triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=target, options=options.__dict__)
    return compiled, signature, constexprs, options


@contextmanager
def libdevice_unlinked():
    """Leave libdevice's functions as external calls in the kernels compiled inside."""
    import triton.backends.nvidia.compiler as nvidia_compiler

    real = nvidia_compiler.nvidia
    if not hasattr(real, "has_extern_deps"):
        raise CheckFailed("this Triton links libdevice in a way this check does not know (no nvidia.has_extern_deps)")

    class NoExternDeps:
        def __getattr__(self, name):
            return getattr(real, name)

        @staticmethod
        def has_extern_deps(module):
            return False

    nvidia_compiler.nvidia = NoExternDeps()
    try:
        yield
    finally:
        nvidia_compiler.nvidia = real


def sass_dfma(cubin: bytes) -> int:
    """How many ``DFMA`` instructions the SASS of ``cubin`` holds (Triton's nvdisasm)."""
    from triton import knobs

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.cubin"
        path.write_bytes(cubin)
        proc = _run([knobs.nvidia.nvdisasm.path, "-c", str(path)])
    if proc.returncode != 0:
        raise CheckFailed(f"nvdisasm failed: {_tail(proc.stderr, 3)}")
    return len(SASS_DFMA.findall(proc.stdout))


def ptxas_dfma(ptx: str, capability: int, fmad: bool) -> int:
    """``DFMA`` count of ``ptx`` assembled by Triton's ptxas as a relocatable object, ``--fmad`` as given."""
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    with tempfile.TemporaryDirectory() as tmp:
        src, obj = Path(tmp) / "kernel.ptx", Path(tmp) / "kernel.cubin"
        src.write_text(ptx, encoding="utf-8")
        cmd = [get_ptxas(capability).path, "-lineinfo", f"--fmad={str(fmad).lower()}", "--regAllocOptLevel=2", "-c",
               f"--gpu-name={sm_arch_from_capability(capability)}", str(src), "-o", str(obj)]
        proc = _run(cmd)
        if proc.returncode != 0:
            raise CheckFailed(f"ptxas failed: {_tail(proc.stderr, 3)}")
        return sass_dfma(obj.read_bytes())


def launch_label(kernel, args, kwargs) -> str:
    """``name(int_arg=value, ...)``: the kernel and the integer arguments of one launch."""
    bound = kernel.signature.bind(*args, **{k: v for k, v in kwargs.items() if k in kernel.signature.parameters})
    ints = [f"{name}={value}" for name, value in bound.arguments.items()
            if isinstance(value, int) and not kernel.params[list(kernel.signature.parameters).index(name)].is_constexpr]
    return f"{kernel.__name__}({', '.join(ints)})"


def describe_launches():
    """Record the launches; each one's runtime signature as Triton types it for sm_90, and its options."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import make_backend

    launches = record_triton_launches()
    backend = make_backend(GPUTarget("cuda", 90, 32))
    lines = []
    for kernel, grid, args, kwargs in launches:
        _, specialization, _ = _binder(kernel, 90)(*args, **kwargs)
        typed = [f"{p.name}:{spec[0]}" for p, spec in zip(kernel.params, specialization) if not p.is_constexpr]
        constexprs = sum(1 for p in kernel.params if p.is_constexpr)
        fusion = backend.parse_options(kwargs).enable_fp_fusion
        if fusion:
            raise CheckFailed(f"{launch_label(kernel, args, kwargs)} is launched with FP fusion on "
                              "(enable_fp_fusion=True): the kernel would not round like the reference")
        lines.append(f"{launch_label(kernel, args, kwargs)} grid {grid}: {' '.join(typed)} + {constexprs} constexprs")
    return f"{len(launches)} distinct launches recorded, all with enable_fp_fusion=False: " + "; ".join(lines), launches


def check_triton_arch(launches, capability: int):
    """Compile every launch for ``sm_<capability>`` as launched; then check that the kernel's own code
    (libdevice unlinked) has no FMA: none in the PTX (LLVM contracted nothing) and, in the SASS, no
    more DFMA than ptxas makes with ``--fmad=false`` (its correctly rounded f64 division uses DFMA)."""
    parts = []
    for kernel, _grid, args, kwargs in launches:
        label = launch_label(kernel, args, kwargs)
        compiled, _, _, options = triton_compile(kernel, args, kwargs, capability)
        ptx, cubin = compiled.asm["ptx"], compiled.asm["cubin"]
        total_ptx, total_sass = len(PTX_FMA.findall(ptx)), sass_dfma(cubin)
        relocatable = " ".join(filter(None, [options.ptx_options, "-c"]))
        with libdevice_unlinked():
            own, *_ = triton_compile(kernel, args, kwargs, capability, ptx_options=relocatable)
            fused, *_ = triton_compile(kernel, args, kwargs, capability, ptx_options=relocatable, enable_fp_fusion=True)
        if total_ptx and "__nv_" not in own.asm["ptx"]:
            raise CheckFailed(f"{label}: libdevice was still linked into the check compile (no __nv_ call left)")
        own_ptx = PTX_FMA.findall(own.asm["ptx"])
        if own_ptx:
            raise CheckFailed(f"{label}: the kernel's own arithmetic compiles to {len(own_ptx)} FMA in PTX "
                              f"({', '.join(sorted(set(own_ptx)))}), launched with enable_fp_fusion={options.enable_fp_fusion}")
        own_sass = sass_dfma(own.asm["cubin"])
        unfused_sass = ptxas_dfma(own.asm["ptx"], capability, fmad=False)
        fused_sass = ptxas_dfma(own.asm["ptx"], capability, fmad=True)
        if own_sass != unfused_sass:
            raise CheckFailed(f"{label}: ptxas fused the kernel's own arithmetic: {own_sass} DFMA in its SASS, "
                              f"{unfused_sass} with --fmad=false ({fused_sass} with --fmad=true)")
        with_fusion = len(PTX_FMA.findall(fused.asm["ptx"]))
        divisions = len(re.findall(r"\bdiv\.rn\.f64\b", own.asm["ptx"]))
        parts.append((label, f"{len(cubin) // 1024} KB cubin, {total_ptx} fma in PTX / {total_sass} DFMA in SASS; the kernel's "
                     f"own code: 0 fma (FP fusion on: {with_fusion}), {own_sass} DFMA as ptxas --fmad=false makes them "
                     f"({divisions} div.rn.f64; --fmad=true: {fused_sass})"))
    if len({detail for _, detail in parts}) == 1:
        return f"{', '.join(label for label, _ in parts)}: {parts[0][1]}", None
    return "; ".join(f"{label}: {detail}" for label, detail in parts), None


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuda-python", type=Path, default=ROOT / ".venv-cuda" / "bin" / "python",
                        help="Python whose torch is a CUDA build (default .venv-cuda/bin/python)")
    parser.add_argument("--cuda-home", type=Path, default=Path(os.environ.get("CUDA_HOME") or "/usr/local/cuda"),
                        help="CUDA toolkit with nvcc (default $CUDA_HOME or /usr/local/cuda)")
    parser.add_argument("--archs", type=parse_archs, default=parse_archs("8.0;9.0"),
                        help="compute capabilities, TORCH_CUDA_ARCH_LIST style (default '8.0;9.0')")
    parser.add_argument("--only", choices=("native", "triton"), help="run one half")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "gpu-check", help="build folder of the native check")
    args = parser.parse_args(argv)

    # Compile for real every time (no kernel cache), with Triton's compiler, not its interpreter.
    os.environ["TRITON_CACHE_DIR"] = tempfile.mkdtemp(prefix="fusedsched-triton-cache-")
    os.environ.pop("TRITON_INTERPRET", None)
    os.environ["FUSEDSCHED_DISABLE_NATIVE"] = "1"  # the triton half never needs the CPU extension
    sys.path.insert(0, str(ROOT / "src"))  # this checkout's kernel, whatever is installed

    report = Report()
    try:
        if args.only != "triton":
            cuda_python, cuda_home = args.cuda_python.absolute(), args.cuda_home.absolute()
            report.run("cuda-toolchain", check_cuda_toolchain, cuda_python, cuda_home)
            library = report.run("native-build", check_native_build, cuda_python, cuda_home, args.archs, args.out.absolute())
            if library is not None:
                report.run("native-load", check_native_load, cuda_python, library)
                report.run("native-sass", check_native_sass, cuda_home, library, args.archs)
        if args.only != "native":
            launches = report.run("triton-launch", describe_launches)
            if launches is not None:
                for capability in args.archs:
                    report.run(f"triton-sm_{capability}", check_triton_arch, launches, capability)
    finally:
        shutil.rmtree(os.environ["TRITON_CACHE_DIR"], ignore_errors=True)
    print(f"check-gpu-build: {report.passed} passed, {report.failed} failed", flush=True)
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
