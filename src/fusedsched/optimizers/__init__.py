"""The optimizers wing: graph-safe optimizers that read every hyperparameter from a float or a 0-dim tensor.

``graphsafe`` (what they share), ``adam`` (``GraphSafeAdam``, ``GraphSafeAdamW``), ``sgd``
(``GraphSafeSGD``), ``adagrad`` (``FusedAdagrad``).
"""
