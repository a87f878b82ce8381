"""The converters of the other training stacks' schedulers, under one name: timm (:mod:`.timm`),
DeepSpeed (:mod:`.deepspeed`) and Megatron-core (:mod:`.megatron`), each a module of its own.

Kept for the paths that name this module (``fusedsched``'s lazy exports); :mod:`fusedsched.convert`
holds the same names.
"""

from .deepspeed import (
    DeepSpeedShim,
    deepspeed_config_to_hyperparameters,
    deepspeed_config_to_schedules,
    from_deepspeed,
    from_deepspeed_config,
)
from .megatron import MegatronShim, from_megatron, megatron_learning_rates
from .timm import TimmShim, from_timm, timm_learning_rates

__all__ = [
    "DeepSpeedShim",
    "MegatronShim",
    "TimmShim",
    "deepspeed_config_to_hyperparameters",
    "deepspeed_config_to_schedules",
    "from_deepspeed",
    "from_deepspeed_config",
    "from_megatron",
    "from_timm",
    "megatron_learning_rates",
    "timm_learning_rates",
]
