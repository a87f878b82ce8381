"""fusedsched: tml-config optimizers and learning-rate schedules, evaluated on the device.

Every param group's schedule is compiled once into a device table and evaluated by one op launch
per ``scheduler.step()``, straight into the float32 tensors torch's fused optimizers read, so a
training step captured in a CUDA graph advances its schedule on every replay.

The names below are imported on first use (PEP 562), so ``import fusedsched`` costs little more
than ``import torch``; ``from fusedsched import LRShim`` imports what ``LRShim`` needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import _aliases

__version__ = "0.1.0"

_aliases.install()  # the flat module paths of earlier versions, for imports and pickles

# name -> the submodule that defines it
_EXPORTS = {
    "AdagradConfig": "tml.config",
    "AdamConfig": "tml.config",
    "MultiTaskLearningRates": "tml.config",
    "OptimizerConfig": "tml.config",
    "SgdConfig": "tml.config",
    "HyperparameterSchedules": "tml.config",
    "GroupSchedules": "tml.config",
    "Multipliers": "tml.config",
    "EmbeddingOptimizerConfig": "tml.config",
    "RecapAdamConfig": "tml.config",
    "RecapMultiTaskLearningRates": "tml.config",
    "RecapOptimizerConfig": "tml.config",
    "dump_config": "tml.config",
    "load_config": "tml.config",
    "read_config_file": "tml.config",
    "validate_optimizer_config": "tml.config",
    # every schedule kind's model, and LearningRate, the one field that holds any of them
    "CosineAnnealing": "schedule.kinds",
    "CosineWithRestarts": "schedule.kinds",
    "Cyclic": "schedule.kinds",
    "ExponentialDecay": "schedule.kinds",
    "InverseSqrt": "schedule.kinds",
    "Join": "schedule.kinds",
    "LearningRate": "schedule.kinds",
    "LinearRampToConstant": "schedule.kinds",
    "LinearRampToCosine": "schedule.kinds",
    "LogWarmup": "schedule.kinds",
    "Offset": "schedule.kinds",
    "OneCycle": "schedule.kinds",
    "PiecewiseConstant": "schedule.kinds",
    "PolynomialDecay": "schedule.kinds",
    "Product": "schedule.kinds",
    "ReduceOnPlateau": "schedule.kinds",
    "TanhDecay": "schedule.kinds",
    "WarmupStableDecay": "schedule.kinds",
    "FusedAdagrad": "optimizers.adagrad",
    # graph-safe optimizers: every per-step hyperparameter a float or a 0-dim device tensor
    "GraphSafeAdam": "optimizers.adam",
    "GraphSafeAdamW": "optimizers.adam",
    "GraphSafeSGD": "optimizers.sgd",
    "ALL_PARAMS": "tml.builders",
    "build_multi_task_optimizer": "tml.builders",
    "build_optimizer": "tml.builders",
    "get_optimizer_class": "tml.builders",
    "multi_task_param_groups": "tml.grouping",
    "recap_param_groups": "tml.grouping",
    "schedules_by_group": "tml.builders",
    "plot_schedules": "tools.plotting",  # imports matplotlib only when called
    "from_torch": "convert.torch",
    # the other training stacks' schedulers (timm, DeepSpeed, Megatron-core)
    "DeepSpeedShim": "convert.deepspeed",
    "MegatronShim": "convert.megatron",
    "TimmShim": "convert.timm",
    "deepspeed_config_to_hyperparameters": "convert.deepspeed",
    "deepspeed_config_to_schedules": "convert.deepspeed",
    "from_deepspeed": "convert.deepspeed",
    "from_deepspeed_config": "convert.deepspeed",
    "from_megatron": "convert.megatron",
    "from_timm": "convert.timm",
    "compute_lr": "schedule.reference",
    "compute_lr_array": "ops.host",
    "GroupBindingError": "shim.binding",
    "LRShim": "shim.scheduler",
    "ScheduleChangedWarning": "shim.scheduler",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'fusedsched' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load on first use
    from .convert.deepspeed import (
        DeepSpeedShim,
        deepspeed_config_to_hyperparameters,
        deepspeed_config_to_schedules,
        from_deepspeed,
        from_deepspeed_config,
    )
    from .convert.megatron import MegatronShim, from_megatron
    from .convert.timm import TimmShim, from_timm
    from .convert.torch import from_torch
    from .ops.host import compute_lr_array
    from .optimizers.adagrad import FusedAdagrad
    from .optimizers.adam import GraphSafeAdam, GraphSafeAdamW
    from .optimizers.sgd import GraphSafeSGD
    from .schedule.kinds import (
        CosineAnnealing,
        CosineWithRestarts,
        Cyclic,
        ExponentialDecay,
        InverseSqrt,
        Join,
        LearningRate,
        LinearRampToConstant,
        LinearRampToCosine,
        LogWarmup,
        Offset,
        OneCycle,
        PiecewiseConstant,
        PolynomialDecay,
        Product,
        ReduceOnPlateau,
        TanhDecay,
        WarmupStableDecay,
    )
    from .schedule.reference import compute_lr
    from .shim.binding import GroupBindingError
    from .shim.scheduler import LRShim, ScheduleChangedWarning
    from .tml.builders import (
        ALL_PARAMS,
        build_multi_task_optimizer,
        build_optimizer,
        get_optimizer_class,
        schedules_by_group,
    )
    from .tml.config import (
        AdagradConfig,
        AdamConfig,
        EmbeddingOptimizerConfig,
        GroupSchedules,
        HyperparameterSchedules,
        Multipliers,
        MultiTaskLearningRates,
        OptimizerConfig,
        RecapAdamConfig,
        RecapMultiTaskLearningRates,
        RecapOptimizerConfig,
        SgdConfig,
        dump_config,
        load_config,
        read_config_file,
        validate_optimizer_config,
    )
    from .tml.grouping import multi_task_param_groups, recap_param_groups
    from .tools.plotting import plot_schedules
