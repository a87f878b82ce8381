"""The schedule configs the converters write, as the dicts ``LearningRate(**config)`` validates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Config = dict[str, Any]


def _line(v0: float, v1: float, steps: int) -> Config:
    """``v0 + ((v1 - v0) / steps) * s`` for ``s < steps`` (then v0: cut it with a ``join``)."""
    return {"warmup_stable_decay": {"learning_rate": v1, "final_learning_rate": v0, "num_ramp_steps": steps,
                                    "num_stable_steps": 0, "num_decay_steps": 0}}


def _join(pieces: Sequence[tuple[int, Config]]) -> Config:
    """``(start, schedule)`` pieces, the first at 0, as one schedule (a join when more than one);
    a piece that starts where the next does is dropped."""
    kept = [(b, c) for i, (b, c) in enumerate(pieces) if i + 1 == len(pieces) or pieces[i + 1][0] > b]
    if len(kept) == 1:
        return kept[0][1]
    return {"join": {"schedules": [c for _, c in kept], "boundaries": [b for b, _ in kept[1:]]}}


def _offset(schedule: Config, steps: int) -> Config:
    return schedule if steps == 0 else {"offset": {"schedule": schedule, "steps": steps}}
