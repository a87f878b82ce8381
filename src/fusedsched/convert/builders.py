"""The schedule configs the converters write: typed builders for the composite kinds (``join``,
``product``, ``offset``) and the pieces every converter uses, as the dicts ``LearningRate(**config)``
validates (:func:`fusedsched.convert.common.learning_rate` does it, naming the source scheduler).

This is the one place that knows the composite kinds' layout (``schedule/kinds/compose.py``):

- :func:`constant`: ``lr(s) = value``;
- :func:`line`: ``lr(s) = v0 + ((v1 - v0) / steps) * s`` for ``s < steps``;
- :func:`join`: ``lr(s) = schedules[i](s - boundaries[i - 1])``, ``i = bisect_right(boundaries, s)``;
- :func:`join_pieces`: the same from ``(start, schedule)`` pieces, dropping a piece that never runs;
- :func:`product`: ``lr(s) = schedules[0](s) * schedules[1](s) * ...``;
- :func:`offset`: ``lr(s) = schedule(s + steps)``.

Each returns the schedule itself where the composite would hold one schedule (a join of one piece,
a product of one factor, an offset of 0), so a conversion's config is as small as its source.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["Config", "constant", "join", "join_pieces", "line", "offset", "product"]

#: One schedule, ``{kind: settings}``, as ``LearningRate(**config)`` takes it.
Config = dict[str, Any]


def constant(value: float) -> Config:
    """``lr(s) = value``."""
    return {"constant": value}


def line(v0: float, v1: float, steps: int) -> Config:
    """``v0 + ((v1 - v0) / steps) * s`` for ``s < steps`` (then v0: cut it with a ``join``)."""
    return {"warmup_stable_decay": {"learning_rate": v1, "final_learning_rate": v0, "num_ramp_steps": steps,
                                    "num_stable_steps": 0, "num_decay_steps": 0}}


def join(schedules: Sequence[Config], boundaries: Sequence[int]) -> Config:
    """``schedules[i]`` from ``boundaries[i - 1]`` on (the first from step 0), each seeing the step
    relative to its boundary; one schedule (no boundaries) is itself."""
    if len(schedules) == 1 and not boundaries:
        return schedules[0]
    return {"join": {"schedules": list(schedules), "boundaries": list(boundaries)}}


def join_pieces(pieces: Sequence[tuple[int, Config]]) -> Config:
    """``(start, schedule)`` pieces, the first at 0, as one schedule (a :func:`join` when more than
    one); a piece that starts where the next does is dropped."""
    kept = [(b, c) for i, (b, c) in enumerate(pieces) if i + 1 == len(pieces) or pieces[i + 1][0] > b]
    return join([c for _, c in kept], [b for b, _ in kept[1:]])


def product(*schedules: Config) -> Config:
    """``schedules[0](s) * schedules[1](s) * ...``, left to right; one schedule is itself."""
    if len(schedules) == 1:
        return schedules[0]
    return {"product": {"schedules": list(schedules)}}


def offset(schedule: Config, steps: int) -> Config:
    """``schedule(s + steps)``: the schedule already ``steps`` steps in; 0 steps is the schedule itself."""
    return schedule if steps == 0 else {"offset": {"schedule": schedule, "steps": steps}}
