"""Typed, validated view of ``params.yaml``.

All problems in a file are collected and raised together as one
:class:`~deepleak.errors.ConfigError`, each naming the key, the value found
and what is allowed, before any compute starts.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deepleak.errors import ConfigError, UnknownNameError

OutputKind = Literal["logit", "probability", "log_probability"]
TargetKind = Literal["true_label", "predicted"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class BaseParams(_Section):
    """Settings shared by every stage."""

    dataset: Literal["digits", "cifar10", "cifar100"] = "digits"
    data_root: str = Field("data/raw", description="Folder holding CIFAR archives; unused for digits.")
    download: bool = Field(False, description="Let torchvision download CIFAR into data_root.")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    device: str = "auto"
    artifacts_dir: str = "artifacts"

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be unique, got {seeds}")
        if any(seed < 0 for seed in seeds):
            raise ValueError(f"seeds must be non-negative, got {seeds}")
        return seeds

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", device):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps, got {device!r}")
        return device


class PrepareParams(_Section):
    """Sizes of the four disjoint splits drawn for every seed."""

    target_members: int = Field(180, gt=1)
    target_non_members: int = Field(720, gt=1)
    shadow_members: int = Field(180, gt=1)
    shadow_non_members: int = Field(717, gt=1)
    stratify: bool = Field(True, description="Keep class proportions equal across splits.")


class TrainParams(_Section):
    """Training of the target and shadow models (the same code for both)."""

    model: str = "small_cnn"
    epochs: int = Field(60, gt=0)
    batch_size: int = Field(32, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = Field(0.9, ge=0, lt=1)
    augment: bool = Field(False, description="Random crop and flip, applied inside training only.")

    @field_validator("model")
    @classmethod
    def _registered_model(cls, name: str) -> str:
        from deepleak.core.models import MODELS

        return MODELS.canonical(name)


class ExplainParams(_Section):
    """Which explanation methods run, on which output, and their settings."""

    methods: list[str] = Field(default_factory=lambda: ["SMAP", "IG", "SHAP", "LIME"], min_length=1)
    output: OutputKind = Field(
        "probability",
        description="Model output the explanation differentiates: logit, probability or log_probability.",
    )
    target: TargetKind = "true_label"
    batch_size: int = Field(64, gt=0)
    method_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_methods(self) -> ExplainParams:
        from deepleak.core.explainers import EXPLAINERS

        problems = []
        canonical = []
        for name in self.methods:
            try:
                canonical.append(EXPLAINERS.canonical(name))
            except UnknownNameError as error:
                problems.append(str(error))
        for name, settings in self.method_settings.items():
            try:
                EXPLAINERS.get(name).settings_type.model_validate(settings)
            except UnknownNameError as error:
                problems.append(f"method_settings: {error}")
            except ValidationError as error:
                for item in error.errors():
                    where = ".".join(str(part) for part in item["loc"])
                    problems.append(f"method_settings.{name}.{where}: {item['msg']}")
        if len(set(canonical)) != len(canonical):
            problems.append(f"methods lists a method twice: {self.methods}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def settings_for(self, method: str) -> dict[str, Any]:
        """Return the raw settings of ``method``, whichever alias they were written under."""
        from deepleak.core.explainers import EXPLAINERS

        wanted = EXPLAINERS.canonical(method)
        for name, settings in self.method_settings.items():
            if EXPLAINERS.canonical(name) == wanted:
                return dict(settings)
        return {}


class ReferenceCnnParams(_Section):
    """Training of the reference attack's binary CNN on shadow attribution maps."""

    epochs: int = Field(30, gt=0)
    batch_size: int = Field(64, gt=0)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    absolute: bool = Field(False, description="Feed |map| instead of the signed map.")


class AttackParams(_Section):
    """Membership attacks run on every method's attribution maps, and how they are scored."""

    attacks: list[str] = Field(
        default_factory=lambda: ["reference_cnn", "threshold_variance", "threshold_l1", "threshold_l2"],
        min_length=1,
    )
    fpr_levels: list[float] = Field(default_factory=lambda: [0.01, 0.001, 0.0], min_length=1)
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples for confidence intervals; 0 disables them.")
    confidence: float = Field(0.95, gt=0, lt=1)
    reference_cnn: ReferenceCnnParams = Field(default_factory=ReferenceCnnParams)

    @field_validator("attacks")
    @classmethod
    def _registered_attacks(cls, names: list[str]) -> list[str]:
        from deepleak.core.attacks import ATTACKS

        return [ATTACKS.canonical(name) for name in names]

    @field_validator("fpr_levels")
    @classmethod
    def _levels_in_range(cls, levels: list[float]) -> list[float]:
        bad = [level for level in levels if not 0.0 <= level < 1.0]
        if bad:
            raise ValueError(f"fpr_levels must lie in [0, 1), got {bad}")
        return levels


class SelectParams(_Section):
    """Choice of the most vulnerable seeds per method (the reference tool's top-k)."""

    topk: int = Field(3, gt=0)
    attack: str = Field("reference_cnn", description="Attack whose TPR ranks the seeds.")
    fpr: float = Field(0.01, ge=0, lt=1, description="FPR level of the ranking TPR.")

    @field_validator("attack")
    @classmethod
    def _registered_attack(cls, name: str) -> str:
        from deepleak.core.attacks import ATTACKS

        return ATTACKS.canonical(name)


class TrackingParams(_Section):
    """MLflow settings; the store itself comes from ``MLFLOW_TRACKING_URI`` or the project default."""

    enabled: bool = True
    experiment: str = "deepleak"


class Params(_Section):
    """The whole of ``params.yaml``."""

    base: BaseParams = Field(default_factory=BaseParams)
    prepare: PrepareParams = Field(default_factory=PrepareParams)
    train: TrainParams = Field(default_factory=TrainParams)
    explain: ExplainParams = Field(default_factory=ExplainParams)
    attack: AttackParams = Field(default_factory=AttackParams)
    select: SelectParams = Field(default_factory=SelectParams)
    tracking: TrackingParams = Field(default_factory=TrackingParams)

    @model_validator(mode="after")
    def _select_attack_runs(self) -> Params:
        if self.select.attack not in self.attack.attacks:
            raise ValueError(
                f"select.attack {self.select.attack!r} is not among attack.attacks {self.attack.attacks}; "
                "add it there or pick one of those"
            )
        return self


class _Loader(yaml.SafeLoader):
    """Safe YAML loader that also reads ``1e-3`` as a float, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, raising :class:`ConfigError` for a missing or malformed file."""
    if not path.is_file():
        raise ConfigError(f"parameter file {path} not found; run from the project root or pass --params PATH")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must contain a mapping of sections, found {type(data).__name__}")
    return data


def _describe(error: dict[str, Any], raw: dict[str, Any], source: str) -> str:
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        section_keys = _known_keys(error["loc"][:-1])
        close = difflib.get_close_matches(str(error["loc"][-1]), section_keys, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(section_keys)}"
        return f"unknown key {where!r}{hint}"
    value = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    if isinstance(value, dict):
        return f"{where}: {message}"
    return f"{where} = {value!r}: {message}"


def _known_keys(location: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Params
    for part in location:
        field = model.model_fields.get(str(part))
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return list(model.model_fields)


def parse_params(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a raw mapping, raising one :class:`ConfigError` that lists every problem."""
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        lines = [_describe(item, raw, source) for item in error.errors()]
        raise ConfigError(f"{len(lines)} problem(s) in {source}: " + "; ".join(lines)) from None


def load_params(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """Read, merge ``overrides`` (dotted keys) into, and validate a parameter file."""
    path = Path(path)
    raw = read_yaml(path)
    for dotted, value in (overrides or {}).items():
        set_dotted(raw, dotted, value)
    return parse_params(raw, source=str(path))


def set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``raw["a"]["b"] = value`` for ``dotted == "a.b"``, creating sections as needed."""
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {dotted!r}: {part!r} is not a section")
        node = child
    node[leaf] = value
