"""The converters: other libraries' schedulers as ``LRShim`` s.

``torch`` (``from_torch``: torch's and Hugging Face's schedulers), ``stacks`` (timm, DeepSpeed,
Megatron-core), ``common`` (what they share). This package's names are the converters' public ones.
"""

from .stacks import (
    DeepSpeedShim,
    MegatronShim,
    TimmShim,
    deepspeed_config_to_hyperparameters,
    deepspeed_config_to_schedules,
    from_deepspeed,
    from_deepspeed_config,
    from_megatron,
    from_timm,
    megatron_learning_rates,
    timm_learning_rates,
)
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
