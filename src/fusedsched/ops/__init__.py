"""The ``advance_`` op and its backends (``native``, ``triton``, ``reference``)."""

from .advance import advance_, advance_op, check_advance_args
from .dispatch import AUTO_ORDER, BACKENDS, BackendUnavailable, explain, resolve_backend, unavailable_reason

__all__ = [
    "AUTO_ORDER",
    "BACKENDS",
    "BackendUnavailable",
    "advance_",
    "advance_op",
    "check_advance_args",
    "explain",
    "resolve_backend",
    "unavailable_reason",
]
