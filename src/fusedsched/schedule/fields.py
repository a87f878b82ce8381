"""The field vocabulary of every config model: validated number types and the model base.

The bottom of the package (docs/architecture.md): it imports nothing from fusedsched, and the
schedule kinds (:mod:`fusedsched.schedule.kinds`) and the optimizer sections (:mod:`fusedsched.tml.config`)
build on it. Every check raises a ``ValueError`` naming the field and the value, which pydantic
reports in its ``ValidationError``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import pydantic
from pydantic import AfterValidator, BeforeValidator, ValidationInfo

__all__ = [
    "MAX_STEP",
    "Beta",
    "ConfigModel",
    "Count",
    "Positive",
    "PositiveStep",
    "Rate",
    "StepInt",
    "at_least_one",
    "exactly_one",
    "no_bool",
]


def no_bool(value: Any, info: ValidationInfo) -> Any:
    """A ``BeforeValidator``: pydantic's lax mode turns True into 1 / 1.0; a bool in a numeric
    field is always a mistake."""
    if isinstance(value, bool):
        raise ValueError(f"{info.field_name} must be a number, not a bool, got {value!r}")
    return value


def _rate(value: float, info: ValidationInfo) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{info.field_name} ({value!r}) must be finite and >= 0")
    return value


def _beta(value: float, info: ValidationInfo) -> float:
    if not 0 <= value < 1:  # also rejects NaN
        raise ValueError(f"{info.field_name} ({value!r}) must be in [0, 1)")
    return value


def at_least_one(value: int, info: ValidationInfo) -> int:
    """An ``AfterValidator``: ``value >= 1``."""
    if value < 1:
        raise ValueError(f"{info.field_name} ({value}) must be >= 1")
    return value


def _non_negative(value: int, info: ValidationInfo) -> int:
    if value < 0:
        raise ValueError(f"{info.field_name} ({value}) must be >= 0")
    return value


def _positive(value: float, info: ValidationInfo) -> float:
    if not (math.isfinite(value) and value > 0):  # also rejects NaN
        raise ValueError(f"{info.field_name} ({value!r}) must be finite and > 0")
    return value


#: Step counts and boundaries live in a float64 device table: keep them (and T + 1) exact there.
MAX_STEP = 2**53 - 2


def _exact_step(value: int, info: ValidationInfo) -> int:
    if value > MAX_STEP:
        raise ValueError(f"{info.field_name} ({value}) must be <= 2**53 - 2 (exact in float64)")
    return value


#: A learning rate (or eps, momentum): a finite float >= 0.
Rate = Annotated[float, BeforeValidator(no_bool), AfterValidator(_rate)]
#: An integer step count; 1.0 coerces to 1, 1.5 and bools are rejected.
StepInt = Annotated[int, BeforeValidator(no_bool), AfterValidator(_exact_step)]
#: An Adam beta: a float in [0, 1).
Beta = Annotated[float, BeforeValidator(no_bool), AfterValidator(_beta)]
#: A step count that may be 0 (e.g. ``num_ramp_steps: 0`` means no ramp).
Count = Annotated[StepInt, AfterValidator(_non_negative)]
#: A step count >= 1 (a period, a number of decay steps).
PositiveStep = Annotated[StepInt, AfterValidator(at_least_one)]
#: A finite float > 0 (a decay rate, a power, a division factor).
Positive = Annotated[float, BeforeValidator(no_bool), AfterValidator(_positive)]


class ConfigModel(pydantic.BaseModel):
    """The base of every config model: unknown fields are errors, and a model is immutable."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


def exactly_one(model: pydantic.BaseModel, names: tuple[str, ...]) -> str:
    """The one field of ``names`` that is not None; raise naming all that are set otherwise."""
    chosen = [name for name in names if getattr(model, name) is not None]
    if len(chosen) != 1:
        raise ValueError(
            f"exactly one of {', '.join(names)} must be set, got: {', '.join(chosen) or 'none'}"
        )
    return chosen[0]
