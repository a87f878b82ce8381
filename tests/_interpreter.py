"""The Triton interpreter without re-patching ``triton.language`` at every call of a helper.

The interpreter (``TRITON_INTERPRET=1``) patches the language modules a kernel's globals hold for
its launch, and restores them afterwards. Each call of a ``@triton.jit`` helper inside the launch
patches the language modules of the helper's globals once more, walking all their members (about
0.2 ms a call, some 40 calls in a launch of ``fusedsched.ops._triton``'s kernel: about half the
time of a launch over every kind), though the launch has patched them already, or an earlier
helper has (``triton.language.core``, which Triton's own helpers use, stays patched once patched).
conftest.py calls :func:`keep_the_launch_patches`: a helper's call then patches only a language
module that is not patched yet. ``tests/ops/test_backends.py`` holds the two calls to the same
rates, bit for bit, in a fresh interpreter.
"""

from __future__ import annotations

import inspect

#: The interpreter's helper call this replaces (Triton 3.8): another one is left alone.
KNOWN_CALL = """\
    def __call__(self, *args, **kwargs):
        # This is a device function call
        _patch_lang(self.fn)
        fn = self.rewrite()
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise InterpreterError(repr(e)) from e
"""

#: The interpreter's own helper call, once replaced (None: not replaced).
stock_call = None


def keep_the_launch_patches() -> str | None:
    """Make the interpreter's helper calls patch only what is not patched yet; returns why not, or None."""
    global stock_call
    try:
        import triton.language as tl
        from triton.runtime import interpreter
    except ImportError as exc:
        return f"no Triton interpreter: {exc}"
    if stock_call is not None:
        return None
    call = interpreter.InterpretedFunction.__call__
    if inspect.getsource(call) != KNOWN_CALL:
        return "this Triton's interpreter calls its helpers otherwise than the call known here"

    def unpatched(module) -> bool:
        # the interpreter patches every builtin of a language module at once
        return tl.core.is_builtin(module.full)

    def __call__(self, *args, **kwargs):
        languages = [v for v in self.fn.__globals__.values() if inspect.ismodule(v) and v in (tl, tl.core)]
        if not languages or any(unpatched(module) for module in languages):
            interpreter._patch_lang(self.fn)
        fn = self.rewrite()
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise interpreter.InterpreterError(repr(e)) from e

    interpreter.InterpretedFunction.__call__ = __call__
    stock_call = call
    return None
