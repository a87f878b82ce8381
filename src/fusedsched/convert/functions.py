"""The schedule functions ``from_torch`` recognizes inside a ``LambdaLR``: Hugging Face's (from their
``functools.partial`` keywords) and torchtitan's ``linear_warmup_stable_decay``, each as a config.

:func:`hf_function` / :func:`hf_config`: which of ``transformers.optimization``'s functions a lambda
is, and its schedule; :func:`torchtitan_keywords` / :func:`torchtitan_config` the same for
torchtitan's. ``from_torch`` (``convert.torch``) refuses any other function.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable
from typing import Any

from .builders import Config, constant, join, offset
from .common import ConversionWarning

__all__ = ["HF_FUNCTIONS", "TORCHTITAN_FUNCTION", "hf_config", "hf_function", "torchtitan_config", "torchtitan_keywords"]

HF_FUNCTIONS = {
    "_get_constant_lambda": "get_constant_schedule",
    "_get_constant_schedule_with_warmup_lr_lambda": "get_constant_schedule_with_warmup",
    "_get_linear_schedule_with_warmup_lr_lambda": "get_linear_schedule_with_warmup",
    "_get_cosine_schedule_with_warmup_lr_lambda": "get_cosine_schedule_with_warmup / get_cosine_with_min_lr_schedule_with_warmup",
    "_get_cosine_with_hard_restarts_schedule_with_warmup_lr_lambda": "get_cosine_with_hard_restarts_schedule_with_warmup",
    "_get_polynomial_decay_schedule_with_warmup_lr_lambda": "get_polynomial_decay_schedule_with_warmup",
    "_get_inverse_sqrt_schedule_lr_lambda": "get_inverse_sqrt_schedule",
    "_get_wsd_scheduler_lambda": "get_wsd_schedule",
    "_get_cosine_with_min_lr_schedule_with_warmup_lr_rate_lambda": "get_cosine_with_min_lr_schedule_with_warmup_lr_rate",
}
# --- Hugging Face schedule functions ---------------------------------------------------------------


def hf_function(fn: Callable) -> tuple[str, dict[str, Any]] | None:
    """``(function name, all its keywords)`` when ``fn`` is one of transformers.optimization's
    lambdas, or a partial of one; None otherwise."""
    if isinstance(fn, functools.partial) and not fn.args:
        inner, keywords = fn.func, dict(fn.keywords)
    else:
        inner, keywords = fn, {}
    name = getattr(inner, "__name__", None)
    if getattr(inner, "__module__", None) != "transformers.optimization" or name not in HF_FUNCTIONS:
        return None
    what = f"transformers.optimization.{name}"
    params = {p.name: p for p in inspect.signature(inner).parameters.values() if p.kind == p.KEYWORD_ONLY}
    unknown = sorted(set(keywords) - set(params))
    missing = sorted(k for k, p in params.items() if p.default is p.empty and k not in keywords)
    if unknown or missing:
        raise ValueError(f"from_torch: {what} with keywords {sorted(keywords)}: "
                         f"{'unknown ' + str(unknown) if unknown else 'missing ' + str(missing)}")
    return name, {k: keywords.get(k, p.default) for k, p in params.items()}


def _ramp_then(base: float, warmup: int, then: Config) -> Config:
    """HF's linear warm-up (from 0) for ``warmup`` steps, then ``then``: a join (or ``then`` alone)."""
    if warmup <= 0:
        return then
    ramp = {"linear_ramp_to_constant": {"learning_rate": base, "num_ramp_steps": warmup}}
    return join([ramp, then], [warmup])


def hf_config(name: str, kw: dict[str, Any], base: float) -> Config:
    """The kind for ``base * fn(s)``, ``fn`` the HF lambda ``name`` with its keywords ``kw``."""
    if name == "_get_constant_lambda":
        return constant(base)
    W = kw["num_warmup_steps"]
    if name == "_get_constant_schedule_with_warmup_lr_lambda":
        return _ramp_then(base, W, constant(base))
    if name == "_get_inverse_sqrt_schedule_lr_lambda":
        if kw["timescale"] is None:
            raise ValueError(f"from_torch: transformers.optimization.{name} with timescale=None "
                             "(get_inverse_sqrt_schedule fills it in)")
        return {"inverse_sqrt": {"learning_rate": base, "num_ramp_steps": W, "timescale": kw["timescale"]}}
    if name == "_get_wsd_scheduler_lambda":
        if kw["decay_type"] not in ("linear", "cosine", "1-sqrt"):  # the kind's "exponential" is Megatron's, not HF's
            raise ValueError(f"from_torch: transformers.optimization.{name} with decay_type={kw['decay_type']!r}; "
                             "supported: linear, cosine, 1-sqrt")
        cosine = kw["decay_type"] == "cosine"
        return {"warmup_stable_decay": {
            "learning_rate": base, "final_learning_rate": base * kw["min_lr_ratio"], "num_ramp_steps": W,
            "num_stable_steps": kw["num_stable_steps"], "num_decay_steps": kw["num_decay_steps"],
            "ramp_shape": kw["warmup_type"], "decay_shape": kw["decay_type"],
            "num_cycles": kw["num_cycles"] if cosine else 0.5}}
    T = kw["num_training_steps"]
    if name == "_get_cosine_with_min_lr_schedule_with_warmup_lr_rate_lambda":
        return _hf_cosine_early(name, kw, base)
    if name == "_get_linear_schedule_with_warmup_lr_lambda":
        if T <= W:
            return _ramp_then(base, W, constant(0.0))
        return {"polynomial_decay": {"learning_rate": base, "num_ramp_steps": W, "final_num_steps": T}}
    if name == "_get_polynomial_decay_schedule_with_warmup_lr_lambda":
        end = kw["lr_end"] * (base / kw["lr_init"])
        if T <= W:  # past the warm-up the step is past num_training_steps (HF divides by 0 at T == W)
            return _ramp_then(base, W, constant(end))
        return {"polynomial_decay": {"learning_rate": base, "end_learning_rate": end, "num_ramp_steps": W,
                                     "final_num_steps": T, "power": kw["power"]}}
    hard = name == "_get_cosine_with_hard_restarts_schedule_with_warmup_lr_lambda"
    final = 0.0 if hard else base * kw["min_lr_rate"]
    return {"cosine_annealing": {"learning_rate": base, "final_learning_rate": final, "num_ramp_steps": W,
                                 "num_steps": max(1, T - W), "num_cycles": abs(kw["num_cycles"]), "hard_restarts": hard}}


def _hf_cosine_early(name: str, kw: dict[str, Any], base: float) -> Config:
    """HF's ``cosine_warmup_with_min_lr``: a linear rise from ``base * r`` at step 0 to ``base`` at
    step ``W - 1`` (``r`` = ``warmup_lr_rate``, or ``1 / W``), then the cosine one step early
    (progress ``(s - W + 1) / max(1, T - W)``): a join at ``W - 1``, where both give ``base``."""
    W, T, r = kw["num_warmup_steps"], kw["num_training_steps"], kw["warmup_lr_rate"]
    cosine = {"cosine_annealing": {"learning_rate": base, "final_learning_rate": base * kw["min_lr_rate"],
                                   "num_steps": max(1, T - W), "num_cycles": abs(kw["num_cycles"])}}
    first = 1.0 / W if r is None and W >= 1 else r
    if W >= 2:
        rise = {"polynomial_decay": {"learning_rate": base * first, "end_learning_rate": base, "final_num_steps": W - 1}}
        return join([rise, cosine], [W - 1])
    if W == 1 and first == 1.0:
        return cosine
    raise ValueError(f"from_torch: transformers.optimization.{name} with num_warmup_steps={W} and "
                     f"warmup_lr_rate={r}: its cosine starts one step before step 0"
                     f"{'' if W == 0 else ' (after a first step at warmup_lr_rate)'}, which no schedule kind "
                     "represents; use num_warmup_steps >= 2")
# --- torchtitan's warm-up / stable / decay function ------------------------------------------------

TORCHTITAN_FUNCTION = ("torchtitan.components.optimizer.lr_scheduler", "linear_warmup_stable_decay")
TORCHTITAN_KEYWORDS = {"warmup_steps", "stable_steps", "decay_steps", "lr_decay_type", "min_lr_factor"}


def torchtitan_keywords(fn: Callable) -> dict[str, Any] | None:
    """The keywords of torchtitan's ``LRSchedulersContainer.Config.build`` partial; None otherwise."""
    inner = fn.func if isinstance(fn, functools.partial) and not fn.args else None
    if (getattr(inner, "__module__", None), getattr(inner, "__name__", None)) != TORCHTITAN_FUNCTION:
        return None
    if set(fn.keywords) != TORCHTITAN_KEYWORDS:
        raise ValueError(f"from_torch: torchtitan's linear_warmup_stable_decay with keywords {sorted(fn.keywords)}, "
                         f"expected {sorted(TORCHTITAN_KEYWORDS)}")
    return dict(fn.keywords)


def torchtitan_config(kw: dict[str, Any], base: float, g: int) -> Config:
    """``base * f(n)``: ``(n + 1) / W`` for ``n < W``, 1 until ``W + S``, then ``m + (1 - m) * adj(p)``
    with ``p = (n + 1 - (W + S)) / D`` (linear ``1 - p``, sqrt ``1 - sqrt(p)``, cosine
    ``0.5 * (1 + cos(pi * p))``). Past ``p = 1`` (after torchtitan's last step) the linear and sqrt
    decays go on below ``m``; the shim holds ``m * base`` there, with a ``ConversionWarning``."""
    W, S, D, kind, m = (kw[k] for k in ("warmup_steps", "stable_steps", "decay_steps", "lr_decay_type", "min_lr_factor"))
    if kind not in ("linear", "sqrt", "cosine"):
        raise ValueError(f"from_torch: torchtitan's lr_decay_type={kind!r}; supported: linear, sqrt, cosine")
    if D == 0:  # torchtitan asserts past W + S
        decay: Config = constant(base)
    elif kind == "cosine":  # periodic past the end, as torchtitan's
        decay = {"cosine_annealing": {"learning_rate": base, "final_learning_rate": base * m, "num_steps": D}}
    else:
        decay = ({"polynomial_decay": {"learning_rate": base, "end_learning_rate": base * m, "final_num_steps": D}}
                 if kind == "linear" else
                 {"warmup_stable_decay": {"learning_rate": base, "final_learning_rate": base * m, "num_ramp_steps": 0,
                                          "num_stable_steps": 0, "num_decay_steps": D, "decay_shape": "1-sqrt"}})
        warnings.warn(ConversionWarning(
            f"from_torch: torchtitan's {kind} decay (param group {g}) goes on below min_lr_factor * lr past its last "
            f"step {W + S + D - 1} (negative where min_lr_factor is 0); the shim holds {base * m!r} there"),
            stacklevel=4)
    pieces = [offset({"linear_ramp_to_constant": {"learning_rate": base, "num_ramp_steps": W}}, 1)] if W else []
    pieces += [constant(base)] if S else []
    pieces.append(offset(decay, 1) if D else decay)
    bounds = [b for b, n in ((W, W), (W + S, S)) if n][: len(pieces) - 1]
    return join(pieces, bounds)
