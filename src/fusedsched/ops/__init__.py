"""The op ``advance_`` and its backends (``native``, ``triton``, ``reference``).

- :mod:`.schema`: the op's inputs (:class:`OpInputs`) and their checks;
- :mod:`.backends`: one record per backend (:data:`BACKENDS`), the op's declaration, and which
  backend serves a device (:func:`resolve_backend`, :func:`unavailable_reason`, :func:`explain`);
- :mod:`.launcher`: :func:`bind`, the op bound to an engine's tensors, and :func:`advance_`, one checked call;
- :mod:`.host`: float64 evaluation on the host (:func:`host_evaluator`, :func:`compute_lr_array`);
- ``_native``, ``_triton``, ``_reference``: the backends themselves.
"""

from ._reference import clock
from .backends import (
    AUTO_ORDER,
    BACKENDS,
    Backend,
    BackendUnavailable,
    advance_op,
    explain,
    resolve_backend,
    unavailable_reason,
)
from .host import compute_lr_array, host_evaluator
from .launcher import Launcher, advance_, bind
from .schema import (
    METRIC_DTYPES,
    SKIP_DTYPES,
    OpInputs,
    check_advance_args,
    check_amount_tensor,
    check_inputs,
    check_metric_tensor,
    check_plateau_tensor,
    check_previous_scale,
    check_skip_tensor,
)

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "Backend",
    "BackendUnavailable",
    "Launcher",
    "METRIC_DTYPES",
    "OpInputs",
    "SKIP_DTYPES",
    "advance_",
    "advance_op",
    "bind",
    "check_advance_args",
    "check_amount_tensor",
    "check_inputs",
    "check_metric_tensor",
    "check_plateau_tensor",
    "check_previous_scale",
    "check_skip_tensor",
    "clock",
    "compute_lr_array",
    "explain",
    "host_evaluator",
    "resolve_backend",
    "unavailable_reason",
]
