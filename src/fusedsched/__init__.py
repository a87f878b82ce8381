"""fusedsched: tml-config optimizers and learning-rate schedules, evaluated on the device.

Every param group's schedule is compiled once into a device table and evaluated by one op launch
per ``scheduler.step()``, straight into the float32 tensors torch's fused optimizers read, so a
training step captured in a CUDA graph advances its schedule on every replay.
"""

from .config import (
    AdagradConfig,
    AdamConfig,
    LearningRate,
    LinearRampToConstant,
    LinearRampToCosine,
    MultiTaskLearningRates,
    OptimizerConfig,
    PiecewiseConstant,
    SgdConfig,
    dump_config,
    load_config,
)
from .optim import (
    ALL_PARAMS,
    FusedAdagrad,
    build_multi_task_optimizer,
    build_optimizer,
    get_optimizer_class,
    multi_task_param_groups,
)
from .schedules import compute_lr, compute_lr_array
from .scheduler import LRShim
from .convert import from_torch

__version__ = "0.1.0"

__all__ = [
    "ALL_PARAMS",
    "AdagradConfig",
    "AdamConfig",
    "FusedAdagrad",
    "LRShim",
    "LearningRate",
    "LinearRampToConstant",
    "LinearRampToCosine",
    "MultiTaskLearningRates",
    "OptimizerConfig",
    "PiecewiseConstant",
    "SgdConfig",
    "build_multi_task_optimizer",
    "build_optimizer",
    "compute_lr",
    "compute_lr_array",
    "dump_config",
    "from_torch",
    "get_optimizer_class",
    "load_config",
    "multi_task_param_groups",
]
