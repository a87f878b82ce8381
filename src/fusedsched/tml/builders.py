"""Optimizers from tml configs: ``get_optimizer_class``, ``build_optimizer`` and the multi-task builder.

Both of tml's optimizer schemas build here, each with its own grouping rules (``grouping``):

- tml core (:class:`~fusedsched.tml.config.OptimizerConfig`): one group ``ALL_PARAMS``, or with
  ``multi_task_learning_rates`` one group per tower (trainable parameters whose dotted name contains
  ``.<tower>.``) plus ``backbone``; Adam, SGD or Adagrad.
- recap (:class:`~fusedsched.tml.config.RecapOptimizerConfig`), as recap's own ``build_optimizer``: task
  ``t`` owns the parameters whose name contains ``.{sanitize(t)}.``, the rest go to ``backbone``
  except those named ``embedding_bags``, which form the SGD group ``dense_ebc``; Adam elsewhere.
  ``single_task_learning_rate`` gives one group ``single_task``.

With ``combined=True`` the optimizer is recap's layout: one torchrec ``KeyedOptimizerWrapper`` per
group inside a ``CombinedOptimizer``, so its state is keyed by parameter name as in tml checkpoints.
A sharded recap model's non-empty ``fused_optimizer`` is appended to it, as recap does, every one of
its groups scheduled by the embedding schedule (:func:`build_multi_task_optimizer`).

With ``device_schedule=True`` (the default when the model lives on CUDA) every optimizer is built
so that a whole training step, ``optimizer.step()`` and ``scheduler.step()`` included, can be
captured in a CUDA graph: float32 tensor learning rates on the params' device, Adam
``fused=True, capturable=True``, SGD ``fused=True``, and Adagrad :class:`FusedAdagrad`. A tml core
config's ``hyperparameter_schedules`` and ``multipliers`` go to the ``LRShim``; in device mode a
scheduled hyperparameter besides lr makes the groups ``GraphSafeAdam`` (``GraphSafeAdamW`` for
``decoupled_weight_decay``) or ``GraphSafeSGD``, which read it as a tensor, and Adagrad is refused.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, NamedTuple

import pydantic
import torch
from torch.optim import Optimizer

from ..optimizers import GRAPH_SAFE
from ..optimizers.adagrad import FusedAdagrad
from ..optimizers.adam import GraphSafeAdam
from ..optimizers.sgd import GraphSafeSGD
from ..schedule.kinds import LearningRate
from ..schedule.reference import compute_lr
from ..shim.binding import leaves
from ..shim.scheduler import LRShim
from .config import (
    ALL_PARAMS,
    BACKBONE,
    EmbeddingOptimizerConfig,
    MultiTaskLearningRates,
    OptimizerConfig,
    RecapMultiTaskLearningRates,
    RecapOptimizerConfig,
    validate_optimizer_config,
)
from .grouping import (  # noqa: F401  (sanitize: re-exported, where fusedsched.optim had it)
    DENSE_EBC,
    EMBEDDING_BAGS,
    multi_task_param_groups,
    recap_param_groups,
    sanitize,
)

#: recap's group for every parameter under ``single_task_learning_rate``.
SINGLE_TASK = "single_task"


def get_optimizer_class(optimizer_config: OptimizerConfig | RecapOptimizerConfig) -> type[Optimizer]:
    """The torch optimizer class for the chosen optimizer (``adam``, ``sgd`` or ``adagrad``).

    ``adam`` with ``decoupled_weight_decay: true`` is ``AdamW``.
    """
    name = optimizer_config.optimizer_name
    if name == "adam" and getattr(optimizer_config.optimizer, "decoupled_weight_decay", None):
        return torch.optim.AdamW
    return {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad}[name]


def schedules_by_group(optimizer_config: OptimizerConfig | RecapOptimizerConfig) -> dict[str, LearningRate]:
    """Every schedule a config names, keyed by the param group it drives, in group order.

    tml core: ``{ALL_PARAMS: learning_rate}`` (a constant at the optimizer's ``lr`` when unset), or
    every tower then ``backbone``. recap: ``{"single_task": ...}``, or every task then ``backbone``
    (when its schedule is not null). ``dense_ebc``'s schedule comes from the embedding config.
    """
    cfg = validate_optimizer_config(optimizer_config)
    rates = cfg.multi_task_learning_rates
    if rates is not None:
        backbone = {} if rates.backbone_learning_rate is None else {BACKBONE: rates.backbone_learning_rate}
        return {**rates.tower_learning_rates, **backbone}
    if isinstance(cfg, RecapOptimizerConfig):
        return {SINGLE_TASK: cfg.single_task_learning_rate}
    return {ALL_PARAMS: cfg.learning_rate or LearningRate(constant=cfg.optimizer.lr)}


# --- optimizers --------------------------------------------------------------------------------------


class _Group(NamedTuple):
    """One param group to build: its name, its named parameters and the optimizer that steps it."""

    name: str
    params: dict[str, torch.nn.Parameter]
    optimizer: type[Optimizer]
    hyper: dict[str, Any]  # the optimizer's arguments other than lr and the graph-safe flags
    lr: float  # the group's lr until its scheduler sets it


def _graph_safe(cls: type[Optimizer], device: torch.device) -> tuple[type[Optimizer], dict[str, Any]]:
    """The class and flags under which ``cls`` reads a tensor lr inside a CUDA graph."""
    if cls is torch.optim.Adagrad:
        return FusedAdagrad, {}
    if issubclass(cls, GraphSafeAdam | GraphSafeSGD):
        return cls, {}  # always graph-safe: no flags
    flags: dict[str, Any] = {"fused": True}
    if cls in (torch.optim.Adam, torch.optim.AdamW) and device.type == "cuda":
        flags["capturable"] = True  # Adam's capture health check demands it even when fused
    return cls, flags


def _torch_optimizer(groups: list[_Group], device_schedule: bool, device: torch.device) -> Optimizer:
    """One torch optimizer holding ``groups`` (all of one optimizer class), each group named."""
    cls, hyper = groups[0].optimizer, dict(groups[0].hyper)
    lr = lambda value: torch.tensor(float(value), dtype=torch.float32, device=device)  # noqa: E731
    if device_schedule:
        cls, flags = _graph_safe(cls, device)
        hyper.update(flags)
    param_groups = [
        {"params": list(g.params.values()), "name": g.name, "lr": lr(g.lr) if device_schedule else g.lr}
        for g in groups
    ]
    return cls(param_groups, lr=lr(groups[0].lr) if device_schedule else groups[0].lr, **hyper)


def _combined_optimizer(
    groups: list[_Group], device_schedule: bool, device: torch.device, fused: Any = None
) -> Optimizer:
    """Recap's layout: a torchrec ``CombinedOptimizer`` of one ``KeyedOptimizerWrapper`` per group.

    The wrappers are unnamed, so the state is keyed by parameter name exactly as recap's
    (``CombinedOptimizer.state_dict()["state"]``); each wrapped param group carries ``"name"``.
    ``fused`` (a sharded model's ``fused_optimizer``) is appended after them, unnamed, as recap does.
    """
    try:
        from torchrec.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
    except ImportError as e:
        raise ImportError(f"combined=True builds torchrec optimizers, and torchrec cannot be imported: {e}") from e
    wrappers = [
        KeyedOptimizerWrapper(group.params, functools.partial(_wrapped_optimizer, group, device_schedule, device))
        for group in groups
    ]
    return CombinedOptimizer(wrappers if fused is None else [*wrappers, fused])


def _wrapped_optimizer(group: _Group, device_schedule: bool, device: torch.device, params: list) -> Optimizer:
    return _torch_optimizer([group._replace(params=dict(zip(group.params, params)))], device_schedule, device)


def _build(
    groups: list[_Group],
    lr_dict: dict[str, LearningRate],
    *,
    device_schedule: bool | None,
    backend: str | None,
    combined: bool,
    spare_segments: int = 0,
    fused: Any = None,
    hyperparameters: dict[str, dict[str, LearningRate]] | None = None,
    multipliers: dict[str, dict[str, float]] | None = None,
) -> tuple[Optimizer, LRShim]:
    if not isinstance(combined, bool):
        raise TypeError(f"combined must be True or False, got {combined!r}")
    device = next(iter(groups[0].params.values())).device
    if device_schedule is None:
        device_schedule = device.type == "cuda"
    if device_schedule and hyperparameters:
        groups = _graph_safe_groups(groups, hyperparameters)
    if combined:
        optimizer = _combined_optimizer(groups, device_schedule, device, fused)
    else:
        by_class: dict[str, list[str]] = {}
        for group in groups:
            by_class.setdefault(group.optimizer.__name__, []).append(group.name)
        if len(by_class) > 1:
            needs = "; ".join(f"{cls} for {names if len(names) < 4 else f'{len(names)} groups'}"
                              for cls, names in by_class.items())
            raise ValueError(
                f"the groups need different optimizers ({needs}) and one torch optimizer holds one kind: "
                "pass combined=True for recap's layout (one torchrec optimizer per group)"
            )
        optimizer = _torch_optimizer(groups, device_schedule, device)
    scheduler = LRShim(
        optimizer, lr_dict, device_schedule=device_schedule, backend=backend, device=device,
        hyperparameters=hyperparameters, multipliers=multipliers, spare_segments=spare_segments,
    )
    if fused is not None:
        fused.zero_grad()  # sets nothing but each kernel's rate: the first backward reads step 0's
    return optimizer, scheduler


def _graph_safe_groups(groups: list[_Group], hyperparameters: dict[str, dict[str, LearningRate]]) -> list[_Group]:
    """``groups`` on the graph-safe class of their optimizer, since some hyperparameter besides lr is a
    device tensor (``GraphSafeAdam``, ``GraphSafeAdamW``, ``GraphSafeSGD``); Adagrad is refused."""
    out = []
    for group in groups:
        cls = GRAPH_SAFE.get(group.optimizer)
        if cls is None:
            scheduled = next(f"{g}: {list(keys)}" for g, keys in hyperparameters.items())
            raise ValueError(
                f"hyperparameter_schedules ({scheduled}) in device mode need an optimizer that reads them as "
                f"device tensors, and {group.optimizer.__name__} (group {group.name!r}) has no graph-safe form that does: "
                "FusedAdagrad takes only lr as a tensor. Schedule lr only, or use host mode (device_schedule=False)"
            )
        out.append(group._replace(optimizer=cls))
    return out


def _core_groups(optimizer_config: OptimizerConfig, named: dict[str, dict[str, torch.nn.Parameter]]) -> list[_Group]:
    name, cfg = optimizer_config.optimizer_name, optimizer_config.optimizer
    if name == "adam":
        hyper = {"betas": cfg.betas, "eps": cfg.eps}
    elif name == "sgd":
        hyper = {"momentum": cfg.momentum}
    else:
        hyper = {"eps": cfg.eps}
    cls = get_optimizer_class(optimizer_config)
    if getattr(cfg, "weight_decay", None) is not None or cls is torch.optim.AdamW:
        hyper["weight_decay"] = cfg.weight_decay or 0.0  # unset is 0, AdamW's included
    return [_Group(group, params, cls, hyper, cfg.lr) for group, params in named.items()]


def _check_model(model: Any) -> None:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")


def build_optimizer(
    model: torch.nn.Module,
    optimizer_config: OptimizerConfig | RecapOptimizerConfig | Mapping[str, Any],
    emb_optimizer_config: EmbeddingOptimizerConfig | LearningRate | Mapping[str, Any] | None = None,
    *,
    device_schedule: bool | None = None,
    backend: str | None = None,
    combined: bool = False,
    spare_segments: int = 0,
) -> tuple[Optimizer, LRShim]:
    """The optimizer and its ``LRShim`` for either of tml's optimizer schemas.

    tml core: one param group named ``ALL_PARAMS`` of every trainable parameter, scheduled by
    ``learning_rate`` (a constant at the optimizer's ``lr`` when unset). recap: one group
    ``single_task`` of every parameter under ``single_task_learning_rate``. A config with
    ``multi_task_learning_rates`` is built by :func:`build_multi_task_optimizer`.

    Args:
        model: the module whose ``named_parameters()`` are grouped.
        optimizer_config: a config model, or a mapping in either schema (validated as
            :func:`fusedsched.load_config` does).
        emb_optimizer_config: recap only: the schedule of the SGD group ``dense_ebc``
            (``embedding_bags`` parameters under ``multi_task_learning_rates``) and of a sharded
            model's ``fused_optimizer`` (:func:`build_multi_task_optimizer`), as recap's
            ``EmbeddingOptimizerConfig`` (its ``learning_rate``) or a ``LearningRate``.
        device_schedule: device mode (tensor lrs, graph-safe optimizers); default True on CUDA.
        backend: the ``advance_`` backend for device mode.
        spare_segments: device mode's room for :meth:`LRShim.switch` (see ``LRShim``); 0 by default.
        combined: recap's layout, a torchrec ``CombinedOptimizer`` with one ``KeyedOptimizerWrapper``
            per group (state keyed by parameter name); needs torchrec.
    """
    _check_model(model)
    optimizer_config = validate_optimizer_config(optimizer_config)
    if optimizer_config.multi_task_learning_rates is not None:
        return build_multi_task_optimizer(
            model, optimizer_config, emb_optimizer_config=emb_optimizer_config,
            device_schedule=device_schedule, backend=backend, combined=combined,
            spare_segments=spare_segments,
        )
    if isinstance(optimizer_config, RecapOptimizerConfig):
        # As recap: every parameter in one group; the embedding schedule drives a sharded model's
        # fused_optimizer only (checked all the same, so a wrong argument does not pass silently).
        embedding = _embedding_schedule(emb_optimizer_config)
        fused, fused_names = _checked_fused_optimizer(model, embedding, combined)
        params = dict(model.named_parameters())
        if fused is not None:
            params = _without_fused_parameters({SINGLE_TASK: params}, fused).get(SINGLE_TASK, {})
        if not params:
            raise ValueError("the model has no parameters" + (" besides its fused_optimizer's" if fused else ""))
        if SINGLE_TASK in fused_names:
            raise ValueError(
                f"the fused_optimizer's param group {SINGLE_TASK!r} (a sharded module's name) collides with "
                f"recap's {SINGLE_TASK!r} group: rename the sharded module"
            )
        schedule = optimizer_config.single_task_learning_rate
        groups = [_Group(SINGLE_TASK, params, torch.optim.Adam, _recap_adam(optimizer_config), compute_lr(schedule, 0))]
        lr_dict = {SINGLE_TASK: schedule}
        if fused is not None:
            _name_fused_groups(fused, fused_names)
            lr_dict.update(dict.fromkeys(fused_names, embedding))
        return _build(groups, lr_dict, device_schedule=device_schedule, backend=backend, combined=combined,
                      spare_segments=spare_segments, fused=fused)
    _no_embedding_config(emb_optimizer_config)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("the model has no trainable parameters")
    lr_dict = schedules_by_group(optimizer_config)
    groups = _core_groups(optimizer_config, {ALL_PARAMS: params})
    return _build(groups, lr_dict, device_schedule=device_schedule, backend=backend, combined=combined,
                  spare_segments=spare_segments, **_scheduled_hyperparameters(optimizer_config, lr_dict))


def _scheduled_hyperparameters(optimizer_config: OptimizerConfig, lr_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``LRShim``'s ``hyperparameters`` and ``multipliers`` for the groups of ``lr_dict`` (None when unset)."""
    return {
        "hyperparameters": optimizer_config.hyperparameters_by_group(list(lr_dict)) or None,
        "multipliers": optimizer_config.multipliers_by_group(list(lr_dict)) or None,
    }


def _no_embedding_config(emb_optimizer_config: Any) -> None:
    if emb_optimizer_config is not None:
        raise ValueError(
            "emb_optimizer_config schedules recap's dense_ebc group and applies to a recap config "
            "(RecapOptimizerConfig) only; this is a tml core OptimizerConfig"
        )


def _embedding_schedule(emb_optimizer_config: Any) -> LearningRate | None:
    """The ``dense_ebc`` schedule from an ``EmbeddingOptimizerConfig``, a ``LearningRate`` or a mapping
    of the former (recap's ``large_embeddings.optimizer`` section)."""
    if emb_optimizer_config is None or isinstance(emb_optimizer_config, LearningRate):
        return emb_optimizer_config
    if isinstance(emb_optimizer_config, Mapping):
        emb_optimizer_config = EmbeddingOptimizerConfig.model_validate(dict(emb_optimizer_config))
    if not isinstance(emb_optimizer_config, EmbeddingOptimizerConfig):
        raise TypeError(
            "emb_optimizer_config must be an EmbeddingOptimizerConfig, a LearningRate, a mapping or None, "
            f"got {type(emb_optimizer_config).__name__}"
        )
    return emb_optimizer_config.learning_rate


def _recap_adam(optimizer_config: RecapOptimizerConfig) -> dict[str, Any]:
    adam = optimizer_config.adam
    return {"betas": (adam.beta_1, adam.beta_2), "eps": adam.epsilon, "maximize": False}


def build_multi_task_optimizer(
    model: torch.nn.Module,
    optimizer_config: OptimizerConfig | RecapOptimizerConfig | Mapping[str, Any],
    multi_task_learning_rates: MultiTaskLearningRates | RecapMultiTaskLearningRates | Mapping | None = None,
    *,
    emb_optimizer_config: EmbeddingOptimizerConfig | LearningRate | Mapping[str, Any] | None = None,
    device_schedule: bool | None = None,
    backend: str | None = None,
    combined: bool = False,
    spare_segments: int = 0,
) -> tuple[Optimizer, LRShim]:
    """One param group per tower (task) plus ``backbone``, each with its own schedule.

    The grouping rules are those of the config's schema: tml core's
    (:func:`multi_task_param_groups`) or recap's (:func:`recap_param_groups`, with ``dense_ebc``
    scheduled by ``emb_optimizer_config``). ``multi_task_learning_rates`` defaults to the config's;
    given, it is validated as that schema's multi-task model. Other arguments: :func:`build_optimizer`.

    Recap with a sharded model (a non-empty ``model.fused_optimizer``: torchrec's fused embedding
    tables, updated by fbgemm inside the backward), as recap: ``model.fused_optimizer`` is appended
    to the ``CombinedOptimizer`` after the dense groups, and every one of its param groups is
    scheduled by the embedding schedule in the same ``LRShim``; the fused tables, which the model
    lists in ``named_parameters()`` too, are left out of the dense groups. A group is named by its sharded
    module's name (its ``_optims`` path, e.g. ``"ebc"``); a module whose tables fall into several
    fbgemm kernels has one group per kernel, named ``"<module>#0"``, ``"<module>#1"``, ... (recap
    zips rates with groups, so it schedules only the first of them). The kernel reads the rate on
    the host: torchrec's ``zero_grad()`` and ``step()`` copy ``param_groups[0]["lr"]`` (a float, or
    in device mode the 0-dim view of the LR buffer) into fbgemm's CPU ``learning_rate_tensor``, and
    the backward reads that. So call ``optimizer.zero_grad()`` before each backward (recap's and
    torchrec's order; the builder calls it once, so the first backward reads step 0's rate). In a
    CUDA graph that copy is not captured: the captured backward keeps the capture-time rate unless
    ``zero_grad()`` runs outside the graph each step, after ``scheduler.step()``; on CUDA it is
    also a device-to-host read per step.

    Raises:
        ValueError: no multi-task rates; a tower named ``backbone`` (or ``dense_ebc`` in recap);
            recap: backbone parameters with a null ``backbone_learning_rate``, a
            ``backbone_learning_rate`` with no backbone parameter, ``embedding_bags``
            parameters or a non-empty ``fused_optimizer`` without an embedding schedule, a
            ``fused_optimizer`` with ``combined=False`` (one torch optimizer cannot hold it), or a
            fused group named like a task, ``backbone`` or ``dense_ebc``.
    """
    _check_model(model)
    optimizer_config = validate_optimizer_config(optimizer_config)
    recap = isinstance(optimizer_config, RecapOptimizerConfig)
    rates = multi_task_learning_rates or optimizer_config.multi_task_learning_rates
    if rates is None:
        raise ValueError("build_multi_task_optimizer needs multi_task_learning_rates (argument or config)")
    schema = RecapMultiTaskLearningRates if recap else MultiTaskLearningRates
    if not isinstance(rates, schema):  # the other schema's model, or a mapping
        rates = schema.model_validate(rates.model_dump() if isinstance(rates, pydantic.BaseModel) else dict(rates))
    towers = list(rates.tower_learning_rates)
    reserved = [name for name in ((BACKBONE, DENSE_EBC) if recap else (BACKBONE,)) if name in towers]
    if reserved:
        raise ValueError(f"tower name(s) {reserved} are reserved for the shared parameters' groups")
    if not recap:
        _no_embedding_config(emb_optimizer_config)
        named = {n: p for n, p in model.named_parameters()}
        ids = {id(p): n for n, p in named.items()}
        groups = {g: {ids[id(p)]: p for p in ps} for g, ps in multi_task_param_groups(model, towers).items()}
        lr_dict = {**rates.tower_learning_rates, BACKBONE: rates.backbone_learning_rate}
        return _build(_core_groups(optimizer_config, groups), lr_dict,
                      device_schedule=device_schedule, backend=backend, combined=combined,
                      spare_segments=spare_segments, **_scheduled_hyperparameters(optimizer_config, lr_dict))

    embedding = _embedding_schedule(emb_optimizer_config)
    fused, fused_names = _checked_fused_optimizer(model, embedding, combined)
    named_groups = recap_param_groups(model, towers)
    if fused is not None:
        named_groups = _without_fused_parameters(named_groups, fused)
    lr_dict = dict(rates.tower_learning_rates)
    if BACKBONE in named_groups:
        if rates.backbone_learning_rate is None:
            example = next(iter(named_groups[BACKBONE]))
            raise ValueError(
                f"backbone_learning_rate is null but {len(named_groups[BACKBONE])} parameter(s) fall to the "
                f"backbone (e.g. {example!r}): give backbone_learning_rate a schedule"
            )
        lr_dict[BACKBONE] = rates.backbone_learning_rate
    elif rates.backbone_learning_rate is not None:
        raise ValueError(
            "backbone_learning_rate is set but no parameter falls to the backbone (every parameter belongs "
            "to a task or to dense_ebc): set it to null"
        )
    if DENSE_EBC in named_groups:
        if embedding is None:
            example = next(iter(named_groups[DENSE_EBC]))
            raise ValueError(
                f"{len(named_groups[DENSE_EBC])} parameter(s) named {EMBEDDING_BAGS!r} (e.g. {example!r}) form "
                f"the SGD group {DENSE_EBC!r}, which needs a schedule: pass emb_optimizer_config "
                "(an EmbeddingOptimizerConfig with learning_rate, or a LearningRate)"
            )
        lr_dict[DENSE_EBC] = embedding
    clashes = [
        f"{name!r} (the task {name!r})" if name in towers else f"{name!r} (recap's {name!r} group)"
        for name in fused_names
        if name in (*towers, BACKBONE, DENSE_EBC)
    ]
    if clashes:
        raise ValueError(
            f"the fused_optimizer's param group names (the sharded modules' names) collide with dense group "
            f"names: {', '.join(clashes)}; each group needs its own schedule name: rename the task or the "
            "sharded module"
        )
    adam = _recap_adam(optimizer_config)
    groups = [
        _Group(name, params, torch.optim.SGD, {"momentum": 0.0, "maximize": False}, compute_lr(lr_dict[name], 0))
        if name == DENSE_EBC
        else _Group(name, params, torch.optim.Adam, adam, compute_lr(lr_dict[name], 0))
        for name, params in named_groups.items()
    ]
    if fused is not None:
        _name_fused_groups(fused, fused_names)
        lr_dict.update(dict.fromkeys(fused_names, embedding))
    return _build(groups, lr_dict, device_schedule=device_schedule, backend=backend, combined=combined,
                  spare_segments=spare_segments, fused=fused)


def _checked_fused_optimizer(
    model: torch.nn.Module, embedding: LearningRate | None, combined: Any
) -> tuple[Any, list[str]]:
    """The model's non-empty ``fused_optimizer`` and its groups' schedule names, or ``(None, [])``.

    Raises (before anything is built) when there is no embedding schedule for it, or when
    ``combined`` is False: the fused optimizer is a torchrec ``KeyedOptimizer`` that one torch
    optimizer cannot hold, and an implicit switch to the combined layout would change the type
    and state keys the caller asked for.
    """
    fused = _fused_optimizer(model)
    if fused is None:
        return None, []
    if not isinstance(combined, bool):
        raise TypeError(f"combined must be True or False, got {combined!r}")
    if embedding is None:
        raise ValueError(
            "the model has a non-empty fused_optimizer (torchrec's sharded embedding tables), which recap "
            "schedules with the embedding schedule: pass emb_optimizer_config (an EmbeddingOptimizerConfig "
            "with learning_rate, or a LearningRate)"
        )
    if not combined:
        raise ValueError(
            "the model has a non-empty fused_optimizer (torchrec's sharded embedding tables): it is a "
            "torchrec KeyedOptimizer stepped inside the backward, which only recap's layout can hold "
            "(a torchrec CombinedOptimizer, the fused optimizer appended after the dense groups): "
            "pass combined=True"
        )
    return fused, _fused_group_names(fused)


def _fused_optimizer(model: torch.nn.Module) -> Any:
    """The model's ``fused_optimizer`` when it has param groups (a dense model's is empty), else None."""
    fused = getattr(model, "fused_optimizer", None)
    return fused if fused is not None and getattr(fused, "optimizers", None) else None


def _without_fused_parameters(
    named_groups: dict[str, dict[str, torch.nn.Parameter]], fused: Any
) -> dict[str, dict[str, torch.nn.Parameter]]:
    """The dense groups less the parameters the fused optimizer owns (by name: its ``params`` keys).

    A sharded model lists its fused tables in ``named_parameters()`` too; the fused kernel updates
    them inside the backward, and a ``CombinedOptimizer`` refuses a parameter held twice.
    """
    owned = set(getattr(fused, "params", {}))
    kept = {group: {n: p for n, p in params.items() if n not in owned} for group, params in named_groups.items()}
    emptied = [group for group, params in kept.items() if not params and group not in (BACKBONE, DENSE_EBC)]
    if emptied:
        raise ValueError(
            f"task(s) {emptied} own only parameters of the fused_optimizer (sharded embedding tables, "
            "scheduled by the embedding schedule): no dense parameter is left to their schedule"
        )
    return {group: params for group, params in kept.items() if params}


def _fused_group_names(fused: Any) -> list[str]:
    """The schedule name of each fused param group, in order: its ``_optims`` path (the sharded module's name).

    A group keeps ``group["name"]`` or its sub-optimizer's ``_optims`` path, as :class:`GroupBinding`
    names it, when that name is its own; a sharded module whose tables fall into several fbgemm
    kernels (tables differing in pooling, data type, ...) has one group per kernel, and those are
    named ``<path>#0``, ``<path>#1``, ... (``fused_optimizer#i`` without a path).
    """
    base = [
        str(group.get("name") or path or "fused_optimizer")
        for path, chain in leaves(fused)
        for group in chain[-1].param_groups
    ]
    seen: dict[str, int] = {}
    names = []
    for name in base:
        if base.count(name) > 1:
            names.append(f"{name}#{seen.get(name, 0)}")
            seen[name] = seen.get(name, 0) + 1
        else:
            names.append(name)
    return names


def _name_fused_groups(fused: Any, names: list[str]) -> None:
    """Write ``names`` into the fused groups whose implicit name differs (a shared path, or none)."""
    implicit = [
        group.get("name") or (path if path and len(chain[-1].param_groups) == 1 else None)
        for path, chain in leaves(fused)
        for group in chain[-1].param_groups
    ]
    for group, name, current in zip(fused.param_groups, names, implicit):
        if current != name:
            group["name"] = name
