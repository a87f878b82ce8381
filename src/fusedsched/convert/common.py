"""What the converters (``from_torch``, ``from_timm``, ``from_deepspeed``, ``from_megatron``) share.

- :func:`learning_rate`: a converted config dict as a validated ``LearningRate``, or a
  ``ValueError`` naming the source scheduler and what no kind represents;
- :func:`float32_ulps`: how many float32 steps apart two rates are once rounded to float32 (the
  converters compare a source scheduler's rate with its conversion's this way: at most 1);
- :func:`group_names`: the names the converted ``LRShim`` gives the optimizer's param groups;
- :func:`as_float`: a source's number (a float, or a one-element tensor) as a Python float;
- :func:`whole_number`: a source's step count as an int, or a ``ValueError`` naming the setting;
- :class:`ConversionWarning`: a converted schedule gives, at some step, a rate the source does not.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic
import torch

from ..schedule.kinds import LearningRate

__all__ = ["ConversionWarning", "as_float", "float32_ulps", "group_names", "learning_rate", "whole_number"]


class ConversionWarning(UserWarning):
    """A converted schedule gives, at some step, a rate the stock scheduler does not."""


def learning_rate(config: dict[str, Any], what: str) -> LearningRate:
    """``LearningRate(**config)``; a ``ValueError`` "``what`` has settings no schedule kind represents"."""
    try:
        return LearningRate(**config)
    except pydantic.ValidationError as e:
        detail = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ValueError(f"{what} has settings no schedule kind represents ({detail})") from None


def _float32_bits(x: float) -> int:
    """``x`` rounded to float32, as an integer that orders like the floats (adjacent floats: 1 apart)."""
    bits = struct.unpack("<i", struct.pack("<f", x))[0]
    return bits if bits >= 0 else -(bits & 0x7FFFFFFF)


def float32_ulps(a: float, b: float) -> int:
    """How many float32 values apart ``a`` and ``b`` are after rounding each to float32 (0: equal)."""
    return abs(_float32_bits(a) - _float32_bits(b))


def group_names(groups: Sequence[Mapping[str, Any]]) -> list[str]:
    """The groups' ``"name"`` entries when every group has one and they are distinct as strings,
    else ``group0``, ``group1``, ... in group order."""
    names = [group.get("name") for group in groups]
    if all(n is not None for n in names) and len({str(n) for n in names}) == len(names):
        return [str(n) for n in names]
    return [f"group{i}" for i in range(len(names))]


def as_float(value: Any) -> float:
    """``value`` (a number, or a one-element tensor: a group's ``lr`` may be one) as a Python float."""
    return float(value.item() if isinstance(value, torch.Tensor) else value)


def whole_number(value: Any, what: str) -> int:
    """``value`` as an int when it is a whole number (timm and DeepSpeed take floats), else a ValueError.
    ``what`` names the setting: ``"Class(setting"`` reads ``Class(setting=value)``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value != value // 1:
        raise ValueError(f"{what}={value!r}{')' if '(' in what else ''}: only a whole number of steps is converted")
    return int(value)
