"""fusedsched: tml-config optimizers and learning-rate schedules, evaluated on the device.

Every param group's schedule is compiled once into a device table and evaluated by one op launch
per ``scheduler.step()``, straight into the float32 tensors torch's fused optimizers read, so a
training step captured in a CUDA graph advances its schedule on every replay.
"""

from .config import (
    AdagradConfig,
    AdamConfig,
    EmbeddingOptimizerConfig,
    LearningRate,
    LinearRampToConstant,
    LinearRampToCosine,
    MultiTaskLearningRates,
    OptimizerConfig,
    PiecewiseConstant,
    RecapAdamConfig,
    RecapMultiTaskLearningRates,
    RecapOptimizerConfig,
    SgdConfig,
    dump_config,
    load_config,
    read_config_file,
    validate_optimizer_config,
)
from .optim import (
    ALL_PARAMS,
    FusedAdagrad,
    build_multi_task_optimizer,
    build_optimizer,
    get_optimizer_class,
    multi_task_param_groups,
    recap_param_groups,
    schedules_by_group,
)
from .plotting import plot_schedules  # imports matplotlib only when called
from .schedules import compute_lr, compute_lr_array
from .scheduler import LRShim

__version__ = "0.1.0"

__all__ = [
    "ALL_PARAMS",
    "AdagradConfig",
    "AdamConfig",
    "EmbeddingOptimizerConfig",
    "FusedAdagrad",
    "LRShim",
    "LearningRate",
    "LinearRampToConstant",
    "LinearRampToCosine",
    "MultiTaskLearningRates",
    "OptimizerConfig",
    "PiecewiseConstant",
    "RecapAdamConfig",
    "RecapMultiTaskLearningRates",
    "RecapOptimizerConfig",
    "SgdConfig",
    "build_multi_task_optimizer",
    "build_optimizer",
    "compute_lr",
    "compute_lr_array",
    "dump_config",
    "get_optimizer_class",
    "load_config",
    "multi_task_param_groups",
    "plot_schedules",
    "read_config_file",
    "recap_param_groups",
    "schedules_by_group",
    "validate_optimizer_config",
]
