"""Pydantic v2 models of the tml optimizer config, validated at construction, and their loading.

Field names are tml's (``optimizers/config.py`` and recap's ``MultiTaskLearningRates``), so a tml
training YAML loads unchanged: ``load_config("train.yaml", section="optimizer")``. Unlike tml, every
rule is checked when a model is built (see DESIGN.md, "The seed semantics"); a broken config raises
pydantic's ``ValidationError`` (a ``ValueError``) whose message names the field and the value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import pydantic
import yaml
from pydantic import AfterValidator, BeforeValidator, ValidationInfo

__all__ = [
    "AdagradConfig",
    "AdamConfig",
    "LearningRate",
    "LinearRampToConstant",
    "LinearRampToCosine",
    "MultiTaskLearningRates",
    "OptimizerConfig",
    "PiecewiseConstant",
    "SgdConfig",
    "dump_config",
    "load_config",
]


# --- field types -------------------------------------------------------------------------------


def _no_bool(value: Any, info: ValidationInfo) -> Any:
    # pydantic's lax mode turns True into 1 / 1.0; a bool in a numeric field is always a mistake.
    if isinstance(value, bool):
        raise ValueError(f"{info.field_name} must be a number, not a bool, got {value!r}")
    return value


def _rate(value: float, info: ValidationInfo) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{info.field_name} ({value!r}) must be finite and >= 0")
    return value


def _beta(value: float, info: ValidationInfo) -> float:
    if not 0 <= value < 1:  # also rejects NaN
        raise ValueError(f"{info.field_name} ({value!r}) must be in [0, 1)")
    return value


def _at_least_one(value: int, info: ValidationInfo) -> int:
    if value < 1:
        raise ValueError(f"{info.field_name} ({value}) must be >= 1")
    return value


#: Step counts and boundaries live in a float64 device table: keep them (and T + 1) exact there.
MAX_STEP = 2**53 - 2


def _exact_step(value: int, info: ValidationInfo) -> int:
    if value > MAX_STEP:
        raise ValueError(f"{info.field_name} ({value}) must be <= 2**53 - 2 (exact in float64)")
    return value


#: A learning rate (or eps, momentum): a finite float >= 0.
Rate = Annotated[float, BeforeValidator(_no_bool), AfterValidator(_rate)]
#: An integer step count; 1.0 coerces to 1, 1.5 and bools are rejected.
StepInt = Annotated[int, BeforeValidator(_no_bool), AfterValidator(_exact_step)]
Beta = Annotated[float, BeforeValidator(_no_bool), AfterValidator(_beta)]


class _Config(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


def _exactly_one(model: _Config, names: tuple[str, ...]) -> str:
    """The one field of ``names`` that is not None; raise naming all that are set otherwise."""
    chosen = [name for name in names if getattr(model, name) is not None]
    if len(chosen) != 1:
        raise ValueError(
            f"exactly one of {', '.join(names)} must be set, got: {', '.join(chosen) or 'none'}"
        )
    return chosen[0]


# --- schedules ---------------------------------------------------------------------------------
# Every schedule kind lives in fusedsched.kinds (model, formula and compile rule side by side),
# which builds on the field types above: imported here, after them, from its modules (this works
# whichever of config and kinds is imported first; fusedsched.kinds imports config first).
from .kinds.compose import Join, LearningRate, Product  # noqa: E402
from .kinds.cosine import CosineAnnealing, CosineWithRestarts, OneCycle, WarmupStableDecay  # noqa: E402
from .kinds.decay import ExponentialDecay, InverseSqrt, PolynomialDecay  # noqa: E402
from .kinds.tml import LinearRampToConstant, LinearRampToCosine, PiecewiseConstant  # noqa: E402


# --- optimizers --------------------------------------------------------------------------------


class AdamConfig(_Config):
    lr: Rate
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    eps: Rate = 1e-7


class SgdConfig(_Config):
    lr: Rate
    momentum: Rate = 0.0


class AdagradConfig(_Config):
    lr: Rate
    eps: Rate = 0.0


class MultiTaskLearningRates(_Config):
    """tml recap's per-tower schedules: one per tower name, plus one for the shared backbone."""

    tower_learning_rates: dict[str, LearningRate]
    backbone_learning_rate: LearningRate

    @pydantic.field_validator("tower_learning_rates")
    @classmethod
    def _towers(cls, towers: dict[str, LearningRate]) -> dict[str, LearningRate]:
        if not towers:
            raise ValueError("tower_learning_rates must name at least one tower, got {}")
        for name in towers:
            if not name or "." in name:
                raise ValueError(
                    f"tower_learning_rates: tower name {name!r} must be non-empty, without '.'"
                )
        return towers


class OptimizerConfig(_Config):
    """One optimizer (exactly one of adam / sgd / adagrad) and at most one way to schedule its lr.

    ``learning_rate`` schedules every param group; ``multi_task_learning_rates`` gives each tower
    and the backbone its own schedule. With neither, the lr is the chosen optimizer's ``lr``.
    """

    learning_rate: LearningRate | None = None
    adam: AdamConfig | None = None
    sgd: SgdConfig | None = None
    adagrad: AdagradConfig | None = None
    multi_task_learning_rates: MultiTaskLearningRates | None = None

    OPTIMIZERS: ClassVar[tuple[str, ...]] = ("adam", "sgd", "adagrad")

    @pydantic.model_validator(mode="after")
    def _one_optimizer(self) -> OptimizerConfig:
        _exactly_one(self, self.OPTIMIZERS)
        if self.learning_rate is not None and self.multi_task_learning_rates is not None:
            raise ValueError(
                "learning_rate and multi_task_learning_rates are mutually exclusive, got both"
            )
        return self

    @property
    def optimizer_name(self) -> Literal["adam", "sgd", "adagrad"]:
        return _exactly_one(self, self.OPTIMIZERS)  # type: ignore[return-value]

    @property
    def optimizer(self) -> AdamConfig | SgdConfig | AdagradConfig:
        return getattr(self, self.optimizer_name)


# --- loading and dumping -----------------------------------------------------------------------

C = TypeVar("C", bound=pydantic.BaseModel)
_SUFFIXES = (".yaml", ".yml", ".json")


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)  # JSON first: PyYAML (YAML 1.1) reads 1e-07 as a string
    except json.JSONDecodeError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"cannot parse {where} as YAML or JSON: {_one_line(e)}") from None


def _is_file(text: str) -> bool:
    try:
        return "\n" not in text and Path(text).is_file()
    except (OSError, ValueError):  # name too long, NUL byte
        return False


def load_config(
    source: Mapping[str, Any] | str | Path,
    cls: type[C] = OptimizerConfig,
    section: str | None = None,
) -> C:
    """Build ``cls`` from a dict, a .yaml/.yml/.json file, or YAML/JSON text.

    Args:
        source: a mapping; a ``Path`` or path string to a file; or the text itself (a string that
            names an existing file is read as that file, anything else is parsed as YAML/JSON).
        cls: the model to build (``OptimizerConfig``, ``LearningRate``, ...).
        section: a dotted key path to descend first, e.g. ``"optimizer"`` for a tml training YAML.

    Raises:
        ValueError: the file is missing, the text does not parse, the document (or section) is not
            a mapping, or the section is missing; ``pydantic.ValidationError`` (a ``ValueError``)
            when the config itself is invalid.
    """
    if isinstance(source, Mapping):
        where, data = "config dict", source
    elif isinstance(source, (str, Path)):
        looks_like_path = isinstance(source, Path) or (
            "\n" not in source and source.strip().lower().endswith(_SUFFIXES)
        )
        if isinstance(source, Path) or _is_file(source):
            path = Path(source)
            if not path.is_file():
                raise ValueError(f"config file not found: {path}")
            where = f"config file {path}"
            data = _parse(path.read_text(encoding="utf-8"), where)
        elif looks_like_path:
            raise ValueError(f"config file not found: {source}")
        else:
            where, data = "config text", _parse(source, "config text")
    else:
        raise TypeError(
            "load_config: source must be a dict, a path or YAML/JSON text, "
            f"got {type(source).__name__}"
        )
    if data is None:
        raise ValueError(f"{where} is empty")
    if section:
        for depth, key in enumerate(section.split(".")):
            if not isinstance(data, Mapping) or key not in data:
                found = (
                    ", ".join(map(str, data)) if isinstance(data, Mapping) else type(data).__name__
                )
                at = ".".join(section.split(".")[:depth]) or "top level"
                raise ValueError(
                    f"{where}: section {section!r} not found "
                    f"(no key {key!r} at {at}; found: {found})"
                )
            data = data[key]
    if not isinstance(data, Mapping):
        what = f"section {section!r}" if section else "document"
        raise ValueError(
            f"{where}: {what} must be a mapping, got {type(data).__name__}: {data!r:.60}"
        )
    return cls.model_validate(dict(data))


def dump_config(
    cfg: pydantic.BaseModel, fmt: Literal["dict", "yaml", "json"] = "dict"
) -> dict[str, Any] | str:
    """``cfg`` as plain data (lists, no tuples), unset (None) fields dropped.

    ``load_config(dump_config(cfg, fmt), type(cfg)) == cfg`` for every ``fmt``.
    """
    data = cfg.model_dump(mode="json", exclude_none=True)
    if fmt == "dict":
        return data
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False)
    if fmt == "json":
        return json.dumps(data, indent=2)
    raise ValueError(f"dump_config: fmt must be 'dict', 'yaml' or 'json', got {fmt!r}")
