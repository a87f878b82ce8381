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

__version__ = "0.1.0"

# name -> the submodule that defines it
_EXPORTS = {
    "AdagradConfig": "config",
    "AdamConfig": "config",
    "MultiTaskLearningRates": "config",
    "OptimizerConfig": "config",
    "SgdConfig": "config",
    "HyperparameterSchedules": "config",
    "GroupSchedules": "config",
    "Multipliers": "config",
    "EmbeddingOptimizerConfig": "config",
    "RecapAdamConfig": "config",
    "RecapMultiTaskLearningRates": "config",
    "RecapOptimizerConfig": "config",
    "dump_config": "config",
    "load_config": "config",
    "read_config_file": "config",
    "validate_optimizer_config": "config",
    # every schedule kind's model, and LearningRate, the one field that holds any of them
    "CosineAnnealing": "kinds",
    "CosineWithRestarts": "kinds",
    "Cyclic": "kinds",
    "ExponentialDecay": "kinds",
    "InverseSqrt": "kinds",
    "Join": "kinds",
    "LearningRate": "kinds",
    "LinearRampToConstant": "kinds",
    "LinearRampToCosine": "kinds",
    "LogWarmup": "kinds",
    "Offset": "kinds",
    "OneCycle": "kinds",
    "PiecewiseConstant": "kinds",
    "PolynomialDecay": "kinds",
    "Product": "kinds",
    "ReduceOnPlateau": "kinds",
    "TanhDecay": "kinds",
    "WarmupStableDecay": "kinds",
    "FusedAdagrad": "adagrad",
    # graph-safe optimizers: every per-step hyperparameter a float or a 0-dim device tensor
    "GraphSafeAdam": "adam",
    "GraphSafeAdamW": "adam",
    "GraphSafeSGD": "sgd",
    "ALL_PARAMS": "optim",
    "build_multi_task_optimizer": "optim",
    "build_optimizer": "optim",
    "get_optimizer_class": "optim",
    "multi_task_param_groups": "optim",
    "recap_param_groups": "optim",
    "schedules_by_group": "optim",
    "plot_schedules": "plotting",  # imports matplotlib only when called
    "from_torch": "convert",
    # the other training stacks' schedulers (timm, DeepSpeed, Megatron-core)
    "DeepSpeedShim": "convert_stacks",
    "MegatronShim": "convert_stacks",
    "TimmShim": "convert_stacks",
    "deepspeed_config_to_hyperparameters": "convert_stacks",
    "deepspeed_config_to_schedules": "convert_stacks",
    "from_deepspeed": "convert_stacks",
    "from_deepspeed_config": "convert_stacks",
    "from_megatron": "convert_stacks",
    "from_timm": "convert_stacks",
    "compute_lr": "schedules",
    "compute_lr_array": "schedules",
    "GroupBindingError": "binding",
    "LRShim": "scheduler",
    "ScheduleChangedWarning": "scheduler",
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
    from .adagrad import FusedAdagrad
    from .adam import GraphSafeAdam, GraphSafeAdamW
    from .binding import GroupBindingError
    from .convert import from_torch
    from .convert_stacks import (
        DeepSpeedShim,
        MegatronShim,
        TimmShim,
        deepspeed_config_to_hyperparameters,
        deepspeed_config_to_schedules,
        from_deepspeed,
        from_deepspeed_config,
        from_megatron,
        from_timm,
    )
    from .config import (
        AdagradConfig,
        AdamConfig,
        EmbeddingOptimizerConfig,
        GroupSchedules,
        HyperparameterSchedules,
        MultiTaskLearningRates,
        Multipliers,
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
    from .kinds import (
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
    from .optim import (
        ALL_PARAMS,
        build_multi_task_optimizer,
        build_optimizer,
        get_optimizer_class,
        multi_task_param_groups,
        recap_param_groups,
        schedules_by_group,
    )
    from .plotting import plot_schedules
    from .schedules import compute_lr, compute_lr_array
    from .scheduler import LRShim, ScheduleChangedWarning
    from .sgd import GraphSafeSGD
