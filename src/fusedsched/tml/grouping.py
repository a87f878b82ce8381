"""tml's grouping rules: which param group each parameter of a model joins.

- tml core's multi-task rule (:func:`multi_task_param_groups`): a tower owns the parameters whose
  dotted name contains ``.<tower>.``; the rest form ``backbone``.
- recap's (:func:`recap_param_groups`): task ``t`` owns the parameters whose name contains
  ``.{sanitize(t)}.``; the rest go to ``backbone``, except those named ``embedding_bags``, which form
  the SGD group ``dense_ebc``.
"""

from __future__ import annotations

import torch

from .config import BACKBONE

__all__ = ["DENSE_EBC", "EMBEDDING_BAGS", "multi_task_param_groups", "recap_param_groups", "sanitize"]

#: recap's SGD group for parameters whose name contains ``embedding_bags``.
DENSE_EBC = "dense_ebc"
EMBEDDING_BAGS = "embedding_bags"


def multi_task_param_groups(model: torch.nn.Module, towers: list[str]) -> dict[str, list[torch.nn.Parameter]]:
    """tml core's rule: trainable parameters whose dotted name contains ``.<tower>.`` go to that tower.

    The rest form the ``backbone`` group. Raises if a parameter matches two towers or a group is empty.
    """
    groups: dict[str, list[torch.nn.Parameter]] = {tower: [] for tower in towers}
    groups[BACKBONE] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        dotted = f".{name}."
        matches = [t for t in towers if f".{t}." in dotted]
        if len(matches) > 1:
            raise ValueError(f"parameter {name!r} matches more than one tower: {matches}")
        groups[matches[0] if matches else BACKBONE].append(param)
    empty = [g for g, ps in groups.items() if not ps]
    if empty:
        raise ValueError(f"no parameters for group(s) {empty}: check the tower names against the model")
    return groups


def sanitize(task: str) -> str:
    """Recap's module name for a task: ``task.replace(".", "__")``."""
    return task.replace(".", "__")


def recap_param_groups(model: torch.nn.Module, tasks: list[str]) -> dict[str, dict[str, torch.nn.Parameter]]:
    """Recap's rule: ``{group: {parameter name: parameter}}``, tasks first (in ``tasks`` order).

    Task ``t`` owns every parameter whose name contains ``f".{sanitize(t)}."`` (the name is not
    padded: a task module at the top level of the model matches nothing). Every other parameter
    goes to ``backbone``, except those whose name contains ``embedding_bags``: they form
    ``dense_ebc``. ``backbone`` and ``dense_ebc`` appear only when they have parameters. All
    parameters count, frozen ones too, as in recap.

    Raises:
        ValueError: a parameter matches two tasks, or a task matches no parameter.
    """
    named = list(model.named_parameters())
    groups: dict[str, dict[str, torch.nn.Parameter]] = {task: {} for task in tasks}
    owner: dict[str, str] = {}
    for task in tasks:
        needle = f".{sanitize(task)}."
        for name, param in named:
            if needle in name:
                if name in owner:
                    raise ValueError(
                        f"parameter {name!r} matches more than one task: {owner[name]!r} and {task!r}"
                    )
                owner[name] = task
                groups[task][name] = param
    empty = [task for task in tasks if not groups[task]]
    if empty:
        needles = ", ".join(repr(f".{sanitize(t)}.") for t in empty)
        raise ValueError(f"no parameter name contains {needles}: task(s) {empty} own no parameters")
    rest = [(name, param) for name, param in named if name not in owner]
    for group, wanted in ((BACKBONE, False), (DENSE_EBC, True)):
        params = {name: param for name, param in rest if (EMBEDDING_BAGS in name) == wanted}
        if params:
            groups[group] = params
    return groups


