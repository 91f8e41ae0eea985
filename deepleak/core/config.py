"""Typed, validated view of ``params.yaml``.

All problems in a file are collected and raised together as one
:class:`~deepleak.errors.ConfigError`, each naming the key, the value found
and what is allowed, before any compute starts.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, get_args

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
    """Explanation methods to run, the output they explain, and their settings."""

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


class LrtParams(_Section):
    """Per-example likelihood-ratio tests (``lrt_*``, ``lira_output``) on reference-model statistics."""

    online: bool = Field(True, description="Fit IN and OUT Gaussians (online) or OUT only (offline).")
    global_variance: bool = Field(
        True, description="One variance for all examples instead of per-example variances (better below ~64 models)."
    )


class RmiaParams(_Section):
    """RMIA-style tests (``rmia_*``, ``rmia_output``) against population examples."""

    online: bool = Field(True, description="Average Pr(x) over all reference models; offline uses OUT models only.")
    gamma: float = Field(1.0, gt=0, description="Factor by which x's likelihood ratio must beat a population example's.")
    offline_a: float = Field(0.3, ge=0, le=1, description="Offline correction of Pr(x) for output probabilities.")


class CombinedParams(_Section):
    """The combined test on output and map statistics (``combined_lrt``)."""

    online: bool = True
    features: list[str] = Field(
        default_factory=lambda: ["confidence", "l1", "l2", "variance"],
        min_length=1,
        description="Statistics modelled jointly: confidence, loss, variance, l1, l2.",
    )

    @field_validator("features")
    @classmethod
    def _known_features(cls, names: list[str]) -> list[str]:
        known = ("confidence", "loss", "variance", "l1", "l2")
        unknown = [name for name in names if name not in known]
        if unknown:
            raise ValueError(f"unknown statistics {unknown}; valid statistics: {', '.join(known)}")
        return names


class PerturbationParams(_Section):
    """The attribution-guided perturbation attack (``perturbation``)."""

    fractions: list[float] = Field(
        default_factory=lambda: [0.05, 0.1, 0.25], min_length=1, description="Shares of most-attributed pixels changed."
    )
    strengths: list[float] = Field(
        default_factory=lambda: [0.5, 1.0], min_length=1, description="How far changed pixels move toward the image mean."
    )
    regularization: float = Field(1.0, gt=0, description="Inverse L2 strength C of the logistic regression.")

    @field_validator("fractions", "strengths")
    @classmethod
    def _unit_interval(cls, values: list[float]) -> list[float]:
        bad = [value for value in values if not 0.0 < value <= 1.0]
        if bad:
            raise ValueError(f"values must lie in (0, 1], got {bad}")
        return values


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
    lrt: LrtParams = Field(default_factory=LrtParams)
    rmia: RmiaParams = Field(default_factory=RmiaParams)
    combined: CombinedParams = Field(default_factory=CombinedParams)
    perturbation: PerturbationParams = Field(default_factory=PerturbationParams)

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


MAX_REFERENCE_MODELS = 64


class ReferenceParams(_Section):
    """Reference models for calibrated attacks, trained like the target on halves of a population pool.

    The pool is, per seed, the target's members and non-members (``pool: target``)
    or all four splits (``pool: all``). Models come in pairs: one trains on a
    random half of the pool and the other on its complement, so every pool
    example is a member of half of the models.
    """

    models: int = Field(8, description="Reference models K per seed, 1 to 64; an odd K leaves one model unpaired.")
    pool: Literal["target", "all"] = Field("target", description="target: target splits only; all: all four splits.")
    epochs: int | None = Field(None, gt=0, description="Training epochs; null uses train.epochs.")
    methods: list[str] = Field(
        default_factory=lambda: ["SMAP", "IG"],
        description="Methods whose maps are computed under every reference model; calibrated map attacks run on these only.",
    )
    leave_one_out: bool = Field(True, description="Also score each reference model in turn as the target.")

    @field_validator("models")
    @classmethod
    def _models_in_range(cls, models: int) -> int:
        if not 1 <= models <= MAX_REFERENCE_MODELS:
            raise ValueError(
                f"must be between 1 and {MAX_REFERENCE_MODELS} reference models; set reference.models to a value in that range"
            )
        return models

    @field_validator("methods")
    @classmethod
    def _registered_methods(cls, names: list[str]) -> list[str]:
        from deepleak.core.explainers import EXPLAINERS

        return [EXPLAINERS.canonical(name) for name in names]


class ProtocolParams(_Section):
    """The protocol audit: checks that no confound, only membership, separates members from non-members."""

    alpha: float = Field(
        1e-4, gt=0, lt=1, description="Significance level of each two-sample test before a Bonferroni correction."
    )
    max_class_gap: float = Field(
        0.05, gt=0, le=1, description="Largest allowed difference of any class share between members and non-members."
    )


class TrackingParams(_Section):
    """MLflow settings; the store itself comes from ``MLFLOW_TRACKING_URI`` or the project default."""

    enabled: bool = True
    experiment: str = "deepleak"


class SearchRange(_Section):
    """Search space of one setting: a numeric range (``low``, ``high``, optional ``log``) or a list of ``choices``.

    A range whose bounds are both integers samples integers.
    """

    low: int | float | None = None
    high: int | float | None = None
    log: bool = Field(False, description="Sample on a log scale (needs low > 0).")
    choices: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _range_or_choices(self) -> SearchRange:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give low and high, or choices")
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self

    @property
    def is_int(self) -> bool:
        """Whether the range samples integers."""
        return self.choices is None and isinstance(self.low, int) and isinstance(self.high, int)


class HardenStep(_Section):
    """One step of the hardening chain and the settings the search may change."""

    name: str = Field(description="Registered hardener, for example clip_norm or gaussian_noise.")
    settings: dict[str, Any] = Field(default_factory=dict, description="Fixed settings of the step.")
    search: dict[str, SearchRange] = Field(default_factory=dict, description="Settings the search samples.")

    @model_validator(mode="after")
    def _check_step(self) -> HardenStep:
        from deepleak.core.hardening import HARDENERS

        self.name = HARDENERS.canonical(self.name)
        settings_type = HARDENERS.get(self.name).settings_type
        fields = list(settings_type.model_fields)
        unknown = [key for key in (*self.settings, *self.search) if key not in fields]
        if unknown:
            raise ValueError(f"step {self.name}: unknown settings {unknown}; valid settings: {', '.join(fields)}")
        both = sorted(set(self.settings) & set(self.search))
        if both:
            raise ValueError(f"step {self.name}: {both} is both fixed in settings and searched; keep one")
        try:
            settings_type.model_validate({**self.settings, **{key: _example(spec) for key, spec in self.search.items()}})
        except ValidationError as error:
            problems = "; ".join(item["msg"].removeprefix("Value error, ") for item in error.errors())
            raise ValueError(f"step {self.name}: invalid settings: {problems}") from None
        return self


def _example(spec: SearchRange) -> Any:
    if spec.choices is not None:
        return spec.choices[0]
    return int(spec.low) if spec.is_int else spec.low


def _default_steps() -> list[HardenStep]:
    return [
        HardenStep(name="clip_norm", settings={"order": 2}, search={"max_norm": SearchRange(low=1e-6, high=1.0, log=True)}),
        HardenStep(name="gaussian_noise", search={"multiplier": SearchRange(low=1e-4, high=1.0, log=True)}),
        HardenStep(name="top_k", search={"fraction": SearchRange(low=0.05, high=1.0)}),
        HardenStep(name="round", settings={"relative": True}, search={"decimals": SearchRange(low=0, high=4)}),
    ]


def _default_explainer_search() -> dict[str, dict[str, SearchRange]]:
    return {
        "SHAP": {"n_samples": SearchRange(low=4, high=64, log=True)},
        "LIME": {"num_samples": SearchRange(low=50, high=400, log=True), "patch_size": SearchRange(choices=[1, 2, 4])},
        "KSHAP": {"n_samples": SearchRange(low=32, high=512, log=True), "patch_size": SearchRange(choices=[1, 2, 4])},
        "SmoothGrad": {"n_samples": SearchRange(low=4, high=64, log=True), "noise_level": SearchRange(low=0.0, high=0.5)},
        "VarGrad": {"n_samples": SearchRange(low=4, high=64, log=True), "noise_level": SearchRange(low=0.0, high=0.5)},
    }


class HardenParams(_Section):
    """The hardening chain the optimize phase searches over, and the explainer settings it may change.

    Every step can be switched off by the search; the unhardened baseline has
    all steps off and the explain stage's settings.
    """

    steps: list[HardenStep] = Field(default_factory=_default_steps)
    explainer_search: dict[str, dict[str, SearchRange]] = Field(
        default_factory=_default_explainer_search,
        description="Per method: explainer settings the search may change (sample and segment counts, noise level).",
    )

    @model_validator(mode="after")
    def _check_explainer_search(self) -> HardenParams:
        from deepleak.core.explainers import EXPLAINERS

        problems = []
        for method, space in self.explainer_search.items():
            try:
                fields = list(EXPLAINERS.get(method).settings_type.model_fields)
            except UnknownNameError as error:
                problems.append(f"explainer_search: {error}")
                continue
            unknown = [key for key in space if key not in fields]
            if unknown:
                problems.append(f"explainer_search.{method}: unknown settings {unknown}; valid settings: {', '.join(fields) or 'none'}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def search_for(self, method: str) -> dict[str, SearchRange]:
        """Return the explainer search space of ``method``, whichever alias it was written under."""
        from deepleak.core.explainers import EXPLAINERS

        wanted = EXPLAINERS.canonical(method)
        for name, space in self.explainer_search.items():
            if EXPLAINERS.canonical(name) == wanted:
                return space
        return {}


class OptimizeParams(_Section):
    """The Optuna search for hardening settings that cut leakage at a bounded utility loss."""

    trials: int = Field(20, gt=0, description="Complete Optuna trials per (method, seed), the baseline included.")
    sampler: Literal["tpe", "nsga2"] = Field("tpe", description="tpe (multivariate TPE) or nsga2.")
    storage: str | None = Field(
        None, description="Optuna storage URL; null uses sqlite:///<project root>/optuna.db."
    )
    utility_budget: float = Field(0.033, ge=0, le=1, description="Largest utility loss the chosen trial may have.")
    utility_loss: Literal["faithfulness", "rank"] = Field(
        "faithfulness", description="Utility-loss definition the search minimizes (see deepleak.core.utility)."
    )
    fpr: float = Field(0.01, gt=0, lt=1, description="FPR at which leakage (TPR - FPR) is measured.")
    leakage: Literal["tpr", "auc"] = Field(
        "tpr",
        description="Leakage the search minimizes: tpr (TPR at optimize.fpr minus that FPR) or auc "
        "(|AUC - 0.5|, which varies less between trials where few members are available); worst over attacks.",
    )
    attacks: list[str] = Field(
        default_factory=lambda: ["reference_cnn", "threshold_variance", "threshold_l1", "threshold_l2"],
        min_length=1,
        description="Attacks retrained on every trial's hardened shadow maps; leakage is the largest.",
    )
    search_cnn_epochs: int | None = Field(
        10,
        gt=0,
        description="Epochs of the reference_cnn attack inside the search; null uses attack.reference_cnn.epochs. "
        "The final comparison of the baseline and the chosen trial always uses attack.reference_cnn.",
    )
    utility_images: int = Field(64, gt=1, description="Target-side images the utility metrics use.")
    perturb_radius: float = Field(0.02, gt=0, description="Half-width of the uniform input perturbation, in pixel units.")
    perturb_samples: int = Field(10, ge=10, description="Perturbed copies per image for max-sensitivity.")
    top_k_fraction: float = Field(0.1, gt=0, le=1, description="Share of values compared by the top-k overlap.")
    curve_steps: int = Field(16, gt=1, description="Points of the deletion and insertion curves.")
    bootstrap: int = Field(1000, ge=0, description="Bootstrap resamples for the intervals of the final comparison.")
    confidence: float = Field(0.95, gt=0, lt=1)
    seed: int = Field(0, ge=0, description="Seed of the sampler and of the utility-image draw.")

    @field_validator("attacks")
    @classmethod
    def _map_only_attacks(cls, names: list[str]) -> list[str]:
        from deepleak.core.attacks import ATTACKS

        canonical = [ATTACKS.canonical(name) for name in names]
        # Trials hand the attacks hardened maps only: no logits, reference-model
        # statistics or perturbation features are recomputed per trial.
        unsupported = [name for name in canonical if ATTACKS.get(name).requires]
        if unsupported:
            usable = [name for name in ATTACKS if not ATTACKS.get(name).requires]
            raise ValueError(
                f"{unsupported} need inputs besides the maps, which optimize trials do not compute; "
                f"use attacks among {', '.join(usable)}"
            )
        return canonical


def _check_levels(levels: list[Any], valid: Callable[[Any], bool], rule: str) -> list[Any]:
    bad = [level for level in levels if not valid(level)]
    if bad:
        raise ValueError(f"invalid levels {bad}: {rule}")
    if len(set(map(str, levels))) != len(levels):
        raise ValueError(f"levels {levels} repeat a value; list each level once")
    return levels


def _check_method_settings(method: str, settings: dict[str, Any]) -> str:
    from deepleak.core.explainers import EXPLAINERS

    canonical = EXPLAINERS.canonical(method)
    try:
        EXPLAINERS.get(canonical).settings_type.model_validate(settings)
    except ValidationError as error:
        problems = "; ".join(item["msg"].removeprefix("Value error, ") for item in error.errors())
        raise ValueError(f"invalid settings {settings} for {canonical}: {problems}") from None
    return canonical


class RootcauseEvaluation(_Section):
    """How every root-cause experiment measures leakage and correlates it with the property it varies."""

    attacks: list[str] = Field(
        default_factory=lambda: ["reference_cnn", "threshold_l1", "threshold_variance"],
        min_length=1,
        description="Attacks fitted on shadow maps and scored on target maps at every level.",
    )
    primary_attack: str = Field("reference_cnn", description="Attack whose AUC decides whether a property drives leakage.")
    reference_cnn: ReferenceCnnParams = Field(
        default_factory=lambda: ReferenceCnnParams(epochs=10),
        description="Training of the reference_cnn attack inside the experiments.",
    )
    non_members: int | None = Field(
        180, gt=1, description="Non-members explained per model, a fixed random subset of the split; null uses all."
    )
    fpr: float = Field(0.01, gt=0, lt=1, description="FPR level of the reported TPR.")
    bootstrap: int = Field(200, ge=0, description="Resamples for the interval of each AUC and TPR.")
    correlation_bootstrap: int = Field(1000, ge=0, description="Resamples for the interval of each Spearman correlation.")
    confidence: float = Field(0.95, gt=0, lt=1)

    @field_validator("attacks")
    @classmethod
    def _uncalibrated_attacks(cls, names: list[str]) -> list[str]:
        from deepleak.core.attacks import ATTACKS

        canonical = [ATTACKS.canonical(name) for name in names]
        # Calibrated attacks need maps under many reference models for every level
        # of every experiment, which the experiments do not compute.
        calibrated = [name for name in canonical if ATTACKS.get(name).requires - {"logits"}]
        if calibrated:
            usable = [name for name in ATTACKS if not ATTACKS.get(name).requires - {"logits"}]
            raise ValueError(
                f"{calibrated} need reference-model inputs that the root-cause experiments do not compute; "
                f"use attacks among {', '.join(usable)}"
            )
        return canonical

    @model_validator(mode="after")
    def _primary_among_attacks(self) -> RootcauseEvaluation:
        from deepleak.core.attacks import ATTACKS

        self.primary_attack = ATTACKS.canonical(self.primary_attack)
        if self.primary_attack not in self.attacks:
            raise ValueError(
                f"primary_attack {self.primary_attack!r} is not among attacks {self.attacks}; add it there or pick one of those"
            )
        return self


class _RootcauseFixedOutput(_Section):
    """Explained output and target class that an experiment holds fixed."""

    output: OutputKind = "probability"
    target: TargetKind = "true_label"


class _RootcauseFixedMethod(_RootcauseFixedOutput):
    """Explanation method, its settings and the explained output that an experiment holds fixed."""

    method: str = "SMAP"
    settings: dict[str, Any] = Field(default_factory=dict, description="Settings of the fixed method.")

    @model_validator(mode="after")
    def _check_method(self) -> _RootcauseFixedMethod:
        self.method = _check_method_settings(self.method, self.settings)
        return self


class EpochsExperiment(_RootcauseFixedMethod):
    """Generalization gap through training epochs (target and shadow models retrained per level)."""

    levels: list[int] = Field(default_factory=lambda: [5, 20, 60], min_length=2, description="Training epochs.")

    @field_validator("levels")
    @classmethod
    def _positive(cls, levels: list[int]) -> list[int]:
        return _check_levels(levels, lambda level: level > 0, "epochs must be positive integers")


class WeightDecayExperiment(_RootcauseFixedMethod):
    """Generalization gap through weight decay (target and shadow models retrained per level)."""

    levels: list[float] = Field(default_factory=lambda: [0.0, 1e-3, 1e-2], min_length=2, description="Weight decay.")

    @field_validator("levels")
    @classmethod
    def _non_negative(cls, levels: list[float]) -> list[float]:
        return _check_levels(levels, lambda level: level >= 0, "weight decay must be 0 or positive")


class MaskingExperiment(_RootcauseFixedMethod):
    """Attribution sparsity through top-k masking of every map (the ``top_k`` hardener)."""

    levels: list[float] = Field(
        default_factory=lambda: [1.0, 0.5, 0.2, 0.05], min_length=2, description="Share of each map's values kept."
    )

    @field_validator("levels")
    @classmethod
    def _share(cls, levels: list[float]) -> list[float]:
        return _check_levels(levels, lambda level: 0 < level <= 1, "a share of values kept must lie in (0, 1]")


class SmoothingExperiment(_RootcauseFixedOutput):
    """Attribution sensitivity through the SmoothGrad noise level."""

    levels: list[float] = Field(
        default_factory=lambda: [0.0, 0.1, 0.3], min_length=2, description="Noise stdev as a fraction of each image's value range."
    )
    base: str = Field("SMAP", description="Method applied to each noisy copy.")
    n_samples: int = Field(8, gt=0, description="Noisy copies per image.")

    @field_validator("levels")
    @classmethod
    def _non_negative(cls, levels: list[float]) -> list[float]:
        return _check_levels(levels, lambda level: level >= 0, "a noise level must be 0 or positive")

    @field_validator("base")
    @classmethod
    def _registered_base(cls, name: str) -> str:
        from deepleak.core.explainers import EXPLAINERS

        return EXPLAINERS.canonical(name)


class FamilyExperiment(_RootcauseFixedOutput):
    """Method family: one representative method per family."""

    levels: list[str] = Field(
        default_factory=lambda: ["SMAP", "IG", "Occlusion", "LIME", "GC", "ProtoDa", "LRP"],
        min_length=2,
        description="One registered method per family.",
    )
    method_settings: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"IG": {"n_steps": 16}, "LIME": {"num_samples": 50}},
        description="Settings per method; methods not listed use their defaults, and settings of methods not in levels are unused.",
    )

    @model_validator(mode="after")
    def _one_per_family(self) -> FamilyExperiment:
        from deepleak.core.explainers import EXPLAINERS

        self.levels = [EXPLAINERS.canonical(name) for name in self.levels]
        families: dict[str, list[str]] = {}
        for name in self.levels:
            families.setdefault(EXPLAINERS.get(name).family, []).append(name)
        shared = {family: names for family, names in families.items() if len(names) > 1}
        if shared:
            raise ValueError(f"levels {self.levels} list several methods of one family {shared}; keep one per family")
        for name, settings in self.method_settings.items():
            _check_method_settings(name, settings)
        return self

    def settings_for(self, method: str) -> dict[str, Any]:
        """Return the settings of ``method``, whichever alias they were written under."""
        from deepleak.core.explainers import EXPLAINERS

        for name, settings in self.method_settings.items():
            if EXPLAINERS.canonical(name) == method:
                return dict(settings)
        return {}


def _positive_counts(levels: list[int]) -> list[int]:
    return _check_levels(levels, lambda level: level > 0, "counts must be positive integers")


class IgStepsExperiment(_RootcauseFixedOutput):
    """Integrated Gradients path points."""

    levels: list[int] = Field(default_factory=lambda: [2, 8, 32], min_length=2, description="IG n_steps.")
    baseline: Literal["zeros", "mean"] = "zeros"

    @field_validator("levels")
    @classmethod
    def _positive(cls, levels: list[int]) -> list[int]:
        return _positive_counts(levels)


class IgBaselineExperiment(_RootcauseFixedOutput):
    """Integrated Gradients baseline image."""

    levels: list[Literal["zeros", "mean"]] = Field(default_factory=lambda: ["zeros", "mean"], min_length=2)
    n_steps: int = Field(16, gt=0)

    @field_validator("levels")
    @classmethod
    def _distinct(cls, levels: list[str]) -> list[str]:
        return _check_levels(levels, lambda level: True, "")


class LimeSamplesExperiment(_RootcauseFixedOutput):
    """LIME perturbed samples per image."""

    levels: list[int] = Field(default_factory=lambda: [25, 50, 100], min_length=2, description="LIME num_samples.")
    patch_size: int | None = Field(None, gt=0, description="Segment side in pixels; null picks 2 for 8x8, 4 for 32x32.")

    @field_validator("levels")
    @classmethod
    def _positive(cls, levels: list[int]) -> list[int]:
        return _positive_counts(levels)


class ShapSamplesExperiment(_RootcauseFixedOutput):
    """Gradient SHAP background draws per image."""

    levels: list[int] = Field(default_factory=lambda: [4, 16, 32], min_length=2, description="SHAP n_samples.")
    background_size: int = Field(64, gt=0)

    @field_validator("levels")
    @classmethod
    def _positive(cls, levels: list[int]) -> list[int]:
        return _positive_counts(levels)


class SegmentsExperiment(_RootcauseFixedOutput):
    """Segment count of a patch-based method, set through the segment side."""

    levels: list[int] = Field(
        default_factory=lambda: [1, 2, 4], min_length=2, description="Segment side in pixels (8x8 digits: 64, 16, 4 segments)."
    )
    method: str = Field("LIME", description="A registered method with a patch_size setting.")
    settings: dict[str, Any] = Field(default_factory=lambda: {"num_samples": 50})

    @field_validator("levels")
    @classmethod
    def _positive(cls, levels: list[int]) -> list[int]:
        return _positive_counts(levels)

    @model_validator(mode="after")
    def _patch_method(self) -> SegmentsExperiment:
        from deepleak.core.explainers import EXPLAINERS

        if "patch_size" not in EXPLAINERS.get(self.method).settings_type.model_fields:
            patched = [name for name in EXPLAINERS if "patch_size" in EXPLAINERS.get(name).settings_type.model_fields]
            raise ValueError(f"method {self.method} has no patch_size setting; use one of {', '.join(patched)}")
        self.method = _check_method_settings(self.method, self.settings)
        return self


class OutputExperiment(_Section):
    """Model output the explanation differentiates."""

    levels: list[OutputKind] = Field(default_factory=lambda: ["logit", "log_probability", "probability"], min_length=2)
    method: str = "SMAP"
    settings: dict[str, Any] = Field(default_factory=dict)
    target: TargetKind = "true_label"

    @field_validator("levels")
    @classmethod
    def _distinct(cls, levels: list[str]) -> list[str]:
        return _check_levels(levels, lambda level: True, "")

    @model_validator(mode="after")
    def _check_method(self) -> OutputExperiment:
        self.method = _check_method_settings(self.method, self.settings)
        return self


class TargetExperiment(_Section):
    """Class each map explains: the true label or the model's prediction."""

    levels: list[TargetKind] = Field(default_factory=lambda: ["true_label", "predicted"], min_length=2)
    method: str = "SMAP"
    settings: dict[str, Any] = Field(default_factory=dict)
    output: OutputKind = "probability"

    @field_validator("levels")
    @classmethod
    def _distinct(cls, levels: list[str]) -> list[str]:
        return _check_levels(levels, lambda level: True, "")

    @model_validator(mode="after")
    def _check_method(self) -> TargetExperiment:
        self.method = _check_method_settings(self.method, self.settings)
        return self


class RootcauseExperiments(_Section):
    """Controlled experiments, each varying one property; an experiment left out (null) does not run."""

    epochs: EpochsExperiment | None = None
    weight_decay: WeightDecayExperiment | None = None
    masking: MaskingExperiment | None = None
    smoothing: SmoothingExperiment | None = None
    family: FamilyExperiment | None = None
    ig_steps: IgStepsExperiment | None = None
    ig_baseline: IgBaselineExperiment | None = None
    lime_samples: LimeSamplesExperiment | None = None
    shap_samples: ShapSamplesExperiment | None = None
    segments: SegmentsExperiment | None = None
    output: OutputExperiment | None = None
    target: TargetExperiment | None = None

    def configured(self) -> list[str]:
        """Return the names of the experiments that run, in declaration order."""
        return [name for name in type(self).model_fields if getattr(self, name) is not None]


class RootcauseParams(_Section):
    """Root-cause analysis: controlled experiments on what drives explanation leakage."""

    evaluation: RootcauseEvaluation = Field(default_factory=RootcauseEvaluation)
    experiments: RootcauseExperiments = Field(default_factory=RootcauseExperiments)


class Params(_Section):
    """The whole of ``params.yaml``."""

    base: BaseParams = Field(default_factory=BaseParams)
    prepare: PrepareParams = Field(default_factory=PrepareParams)
    train: TrainParams = Field(default_factory=TrainParams)
    explain: ExplainParams = Field(default_factory=ExplainParams)
    attack: AttackParams = Field(default_factory=AttackParams)
    select: SelectParams = Field(default_factory=SelectParams)
    tracking: TrackingParams = Field(default_factory=TrackingParams)
    reference: ReferenceParams = Field(default_factory=ReferenceParams)
    protocol: ProtocolParams = Field(default_factory=ProtocolParams)
    harden: HardenParams = Field(default_factory=HardenParams)
    optimize: OptimizeParams = Field(default_factory=OptimizeParams)
    rootcause: RootcauseParams = Field(default_factory=RootcauseParams)

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


def parse_yaml_value(text: str) -> Any:
    """Parse one value as :func:`read_yaml` reads it from a file (``1e-3`` is a float, ``[0, 1]`` a list)."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as error:
        raise ConfigError(f"{text!r} is not a valid YAML value: {error}") from None


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
        annotation = field.annotation if field is not None else None
        # An optional section (``Model | None``) lists the keys of its model.
        models = [arg for arg in get_args(annotation) if isinstance(arg, type) and issubclass(arg, BaseModel)]
        if len(models) == 1:
            annotation = models[0]
        if not isinstance(annotation, type) or not issubclass(annotation, BaseModel):
            return []
        model = annotation
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
