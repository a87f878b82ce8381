"""Every schedule kind, one row each: its pydantic model, its float64 formula and its compile rule.

Adding a kind touches its module here, ``LearningRate`` and the tests, never a kernel: kinds
compile to the shapes of :mod:`fusedsched.schedule.program`, which every backend evaluates
(:func:`compile_schedule` one schedule, :func:`build_table` every group's into one table).

| kind | model | source of truth |
| --- | --- | --- |
| ``constant`` | a float | tml |
| ``piecewise_constant`` | :class:`PiecewiseConstant` | tml |
| ``linear_ramp_to_constant`` | :class:`LinearRampToConstant` | tml |
| ``linear_ramp_to_cosine`` | :class:`LinearRampToCosine` | tml |
| ``exponential_decay`` | :class:`ExponentialDecay` | optax ``exponential_decay`` |
| ``polynomial_decay`` | :class:`PolynomialDecay` | HF ``get_polynomial_decay_schedule_with_warmup`` |
| ``warmup_stable_decay`` | :class:`WarmupStableDecay` | HF ``get_wsd_schedule`` |
| ``cosine_annealing`` | :class:`CosineAnnealing` | torch ``CosineAnnealingLR``, HF cosine schedules |
| ``cosine_with_restarts`` | :class:`CosineWithRestarts` | torch ``CosineAnnealingWarmRestarts``, timm |
| ``one_cycle`` | :class:`OneCycle` | torch ``OneCycleLR`` |
| ``cyclic`` | :class:`Cyclic` | torch ``CyclicLR`` |
| ``tanh_decay`` | :class:`TanhDecay` | timm ``TanhLRScheduler`` (one cycle) |
| ``plateau`` | :class:`ReduceOnPlateau` | torch ``ReduceLROnPlateau`` (its state on the device) |
| ``inverse_sqrt`` | :class:`InverseSqrt` | HF ``get_inverse_sqrt_schedule`` |
| ``log_warmup`` | :class:`LogWarmup` | DeepSpeed's ``warmup_type='log'`` (``WarmupLR``...) |
| ``join`` | :class:`Join` | optax ``join_schedules`` |
| ``product`` | :class:`Product` | torch ``ChainedScheduler`` |
| ``offset`` | :class:`Offset` | a schedule already some steps in (timm, DeepSpeed) |
"""

from ._row import Kind
from .compiler import PlateauRow, build_table, compile_plateau, compile_schedule, with_plateau_value
from .compose import Join, LearningRate, Offset, Product, kind_row, plateaus, schedule_bounds
from .cosine import CosineAnnealing, CosineWithRestarts, OneCycle, WarmupStableDecay
from .cyclic import Cyclic
from .decay import ExponentialDecay, InverseSqrt, PolynomialDecay
from .plateau import ReduceOnPlateau
from .tanh import TanhDecay
from .tml import ConstantRow, LinearRampToConstant, LinearRampToCosine, PiecewiseConstant
from .warmup import LogWarmup

__all__ = [
    "ConstantRow",
    "CosineAnnealing",
    "CosineWithRestarts",
    "Cyclic",
    "ExponentialDecay",
    "InverseSqrt",
    "Join",
    "Kind",
    "LearningRate",
    "LinearRampToConstant",
    "LinearRampToCosine",
    "LogWarmup",
    "Offset",
    "OneCycle",
    "PiecewiseConstant",
    "PlateauRow",
    "PolynomialDecay",
    "Product",
    "ReduceOnPlateau",
    "TanhDecay",
    "WarmupStableDecay",
    "build_table",
    "compile_plateau",
    "compile_schedule",
    "kind_row",
    "plateaus",
    "schedule_bounds",
    "with_plateau_value",
]
