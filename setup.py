"""Builds the optional native extension ``fusedsched._C`` from csrc/; all metadata is in pyproject.toml.

``FUSEDSCHED_BUILD_NATIVE`` chooses what happens to the extension:

- ``0``: skip it (a pure-Python install; the ``native`` backend reports itself unavailable);
- ``1``: require it: the install fails loudly if it cannot be built (CI sets this);
- unset: try, and if torch, the compiler or the build is missing or fails, warn and install
  without it (``import fusedsched`` still works; ``fusedsched.ops.explain`` says why).

The CUDA kernel (csrc/cuda/*.cu) is added when the installed torch is a CUDA build and nvcc is
found through ``CUDA_HOME``; otherwise the extension is CPU-only. It compiles against the torch
already installed, so build with ``pip install --no-build-isolation``. Both compilers run without
floating-point contraction (``-ffp-contract=off``, ``-fmad=false``) so the native results round
like the Python reference.
"""

import glob
import os
import sys

from setuptools import setup

BUILD_ENV = "FUSEDSCHED_BUILD_NATIVE"
MODE = os.environ.get(BUILD_ENV, "").strip()
if MODE not in ("", "0", "1"):
    raise SystemExit(f"{BUILD_ENV} must be 0 (skip), 1 (require) or unset (try), got {MODE!r}")
REQUIRED = MODE == "1"
HERE = os.path.dirname(os.path.abspath(__file__))


def _warn(message: str) -> None:
    print(f"WARNING (fusedsched): {message}", file=sys.stderr, flush=True)


def _skip(reason: str) -> dict:
    if REQUIRED:
        raise SystemExit(f"fusedsched: {BUILD_ENV}=1 but the native extension cannot be built: {reason}")
    _warn(f"building without the native extension fusedsched._C: {reason}")
    return {}


def _native_build() -> dict:
    """``setup()`` keyword arguments that add the extension, or ``{}`` to go without it."""
    if MODE == "0":
        print(f"fusedsched: {BUILD_ENV}=0, skipping the native extension", file=sys.stderr)
        stale = glob.glob(os.path.join(HERE, "src", "fusedsched", "_C*.so"))
        if stale:
            _warn(f"{stale[0]} from an earlier build is still there and editable installs import it; "
                  "delete it (make clean) for a build without the native extension")
        return {}
    try:
        import torch
        from torch.utils import cpp_extension
    except ImportError as exc:
        return _skip(f"torch is not importable ({exc}); install torch first and build with --no-build-isolation")

    sources = sorted(glob.glob(os.path.join("csrc", "*.cpp")))
    cuda_sources = sorted(glob.glob(os.path.join("csrc", "cuda", "*.cu")))
    with_cuda = bool(torch.version.cuda) and cpp_extension.CUDA_HOME is not None
    if torch.version.cuda and not with_cuda:
        _warn("torch is a CUDA build but nvcc was not found (set CUDA_HOME): building the CPU kernel only")
    torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib")
    kwargs = dict(
        name="fusedsched._C",
        sources=sources + (cuda_sources if with_cuda else []),
        include_dirs=[os.path.join(HERE, "csrc")],
        # -fno-math-errno: sqrt sets no errno (no result changes), so loops with sqrt vectorize.
        extra_compile_args={"cxx": ["-O3", "-ffp-contract=off", "-fno-math-errno"], "nvcc": ["-O3", "-fmad=false"]},
        # Find libtorch even when fusedsched._C is imported before torch: next to an installed
        # torch, or (editable installs) the torch this was built against.
        extra_link_args=["-Wl,-rpath,$ORIGIN/../torch/lib", f"-Wl,-rpath,{torch_lib}"],
        optional=not REQUIRED,  # setuptools: a failed optional extension is not copied in place
    )
    make = cpp_extension.CUDAExtension if with_cuda else cpp_extension.CppExtension
    extension = make(**kwargs)

    class BuildExtension(cpp_extension.BuildExtension):
        """torch's builder; when the extension is optional, a failure warns instead of aborting."""

        def build_extensions(self) -> None:
            try:
                super().build_extensions()
            except Exception as exc:  # missing compiler, ABI check, compile or link error
                if REQUIRED:
                    raise
                _warn(f"building fusedsched._C failed, installing without it: {type(exc).__name__}: {exc}")

    return {"ext_modules": [extension], "cmdclass": {"build_ext": BuildExtension}}


setup(**_native_build())
