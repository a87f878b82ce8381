"""The optimizers wing: graph-safe optimizers that read every hyperparameter from a float or a 0-dim tensor.

``group_key`` (where a hyperparameter sits in a group), ``fused`` (the fused ops: which parameters
they take), ``graphsafe`` (what the optimizers share: checks, checkpoints, the step skeleton, the
two paths), ``adam`` (``GraphSafeAdam``, ``GraphSafeAdamW``), ``sgd`` (``GraphSafeSGD``),
``adagrad`` (``FusedAdagrad``); here, above them, :data:`GRAPH_SAFE`.
"""

from __future__ import annotations

import torch

from .adam import GraphSafeAdam, GraphSafeAdamW
from .graphsafe import GraphSafeOptimizer, SparseGradientError
from .sgd import GraphSafeSGD

__all__ = ["GRAPH_SAFE", "SparseGradientError"]

#: Per torch optimizer class, its graph-safe class: same arguments and state, every scheduled
#: hyperparameter read as a device tensor (tml's builders swap to it; from_torch names it).
GRAPH_SAFE: dict[type[torch.optim.Optimizer], type[GraphSafeOptimizer]] = {
    torch.optim.Adam: GraphSafeAdam, torch.optim.AdamW: GraphSafeAdamW, torch.optim.SGD: GraphSafeSGD}
