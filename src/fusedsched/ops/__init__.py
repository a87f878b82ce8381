"""The ``advance_`` op and its backends (``native``, ``triton``, ``reference``).

Callers outside ``ops`` name no backend internals: :func:`launcher` gives the cheapest call of the
op on a backend, :func:`host_evaluator` the float64 host evaluation, :func:`resolve_backend` /
:func:`unavailable_reason` / :func:`explain` which backend serves which device and why.
"""

from .advance import (
    METRIC_DTYPES,
    SKIP_DTYPES,
    advance_,
    advance_op,
    check_advance_args,
    check_amount_tensor,
    check_metric_tensor,
    check_previous_scale,
    check_plateau_tensor,
    check_skip_tensor,
    host_evaluator,
    launcher,
)
from .dispatch import AUTO_ORDER, BACKENDS, BackendUnavailable, explain, resolve_backend, unavailable_reason

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "BackendUnavailable",
    "METRIC_DTYPES",
    "SKIP_DTYPES",
    "advance_",
    "advance_op",
    "check_advance_args",
    "check_amount_tensor",
    "check_metric_tensor",
    "check_previous_scale",
    "check_plateau_tensor",
    "check_skip_tensor",
    "explain",
    "host_evaluator",
    "launcher",
    "resolve_backend",
    "unavailable_reason",
]
