"""The converters: other libraries' schedulers as ``LRShim`` s.

``torch`` (``from_torch``: torch's and Hugging Face's schedulers), one module per other training
stack (``timm``, ``deepspeed``, ``megatron``), ``stack_shim`` (what the stacks' shims share),
``builders`` (the schedule configs they write), ``common`` (what they all share). This package's
names are the converters' public ones.
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
from .torch import SUPPORTED, ConversionWarning, from_torch, learning_rates_from_torch

__all__ = [
    "SUPPORTED",
    "ConversionWarning",
    "DeepSpeedShim",
    "MegatronShim",
    "TimmShim",
    "deepspeed_config_to_hyperparameters",
    "deepspeed_config_to_schedules",
    "from_deepspeed",
    "from_deepspeed_config",
    "from_megatron",
    "from_timm",
    "from_torch",
    "learning_rates_from_torch",
    "megatron_learning_rates",
    "timm_learning_rates",
]
