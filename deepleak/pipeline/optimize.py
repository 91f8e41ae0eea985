"""Stage ``optimize``: search hardening settings that cut one method's leakage at a bounded utility loss.

For every (method, seed) row of ``top_<k>_tprs.csv`` an Optuna study runs
``optimize.trials`` trials. Each trial samples a hardening chain (and, for
methods with a search space, explainer settings), hardens the target and
shadow maps, retrains every configured attack on the hardened shadow maps,
scores the hardened target maps, and measures utility on a fixed set of
target-side images. The unhardened baseline is the first trial.

Raw attributions are cached by explainer settings: the explain stage's
outputs serve the baseline settings, and only trials that change explainer
settings recompute maps (kept in memory and under ``.deepleak/cache``).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import torch

from deepleak import __version__
from deepleak.core.attacks import AttackData, create_attack
from deepleak.core.explainers import EXPLAINERS, create_explainer
from deepleak.core.hardening import Calibration, HardeningChain
from deepleak.core.io import fingerprint, load_arrays, replace_dir, save_arrays, write_json
from deepleak.core.metrics import auc, evaluate_attack, level_key, tpr_at_fpr
from deepleak.core.models import ModelOutput
from deepleak.core.seeding import derive_seed, seed_everything
from deepleak.core.study import (
    complete_trials,
    choose,
    default_storage,
    enqueue_baseline,
    open_study,
    pareto_front,
    plot_pareto,
    results_payload,
    run_trials,
    save_results,
    trial_config,
)
from deepleak.core.training import predict_logits
from deepleak.core.utility import deletion_insertion, max_sensitivity, perturb_inputs, utility_loss, utility_report
from deepleak.errors import ArtifactError
from deepleak.pipeline.attack import attack_settings
from deepleak.pipeline.context import StageContext
from deepleak.pipeline.explain import explain_side, load_explanations
from deepleak.pipeline.prepare import load_splits
from deepleak.pipeline.select import topk_path
from deepleak.pipeline.train import ROLES, load_trained_model

log = logging.getLogger(__name__)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def optimize_dir(ctx: StageContext, method: str) -> Path:
    """Output folder of ``method`` (canonical name)."""
    return ctx.artifacts("optimize", EXPLAINERS.canonical(method))


def results_name(method: str, seed: int) -> str:
    """Stem of the results files of one (method, seed): ``optuna_results_<METHOD>+<seed>``."""
    return f"optuna_results_{method}+{seed}"


def read_top_seeds(ctx: StageContext, method: str) -> list[int]:
    """Return the seeds ``top_<k>_tprs.csv`` lists for ``method``.

    Raises:
        ArtifactError: The file is missing, unreadable, lacks the columns
            ``XAI Method`` and ``Seed``, or has no row for ``method``.
    """
    path = topk_path(ctx)
    if not path.is_file():
        raise ArtifactError(f"{path} not found; run the attack phase first (deepleak run --mode attack, or dvc repro select)")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise ArtifactError(f"{path} is corrupt ({error}); delete it and rerun the select stage") from None
    missing = [column for column in ("XAI Method", "Seed") if column not in table.columns]
    if missing:
        raise ArtifactError(f"{path} lacks columns {missing}; rerun the select stage")
    rows = table[table["XAI Method"].astype(str).map(lambda value: value in EXPLAINERS and EXPLAINERS.canonical(value) == method)]
    if rows.empty:
        raise ArtifactError(f"{path} has no row for {method}; add {method} to explain.methods and rerun the attack phase")
    return [int(seed) for seed in rows["Seed"]]


@dataclass
class RawMaps:
    """Unhardened maps of one explainer setting: both sides, and the perturbed utility images."""

    target: np.ndarray
    shadow: np.ndarray
    perturbed: np.ndarray


class SeedProblem:
    """Everything the trials of one (method, seed) share: data, models, cached maps and baseline utility."""

    def __init__(self, ctx: StageContext, method: str, seed: int) -> None:
        params = ctx.params
        self.ctx, self.method, self.seed = ctx, method, seed
        self.options = params.optimize
        self.dataset = ctx.dataset()
        self.sides = {role: load_explanations(ctx, method, seed, role) for role in ROLES}
        self.images = {role: self.dataset.tensor(arrays["indices"]).numpy() for role, arrays in self.sides.items()}
        self.models = {role: load_trained_model(ctx, seed, role, self.dataset) for role in ROLES}
        self.base_settings = params.explain.settings_for(method)
        self.map_size = int(np.prod(self.sides["target"]["maps"].shape[1:]))

        target = self.sides["target"]
        count = min(self.options.utility_images, len(target["maps"]))
        rng = np.random.default_rng(derive_seed(self.options.seed, seed, method, "utility"))
        self.utility_index = np.sort(rng.choice(len(target["maps"]), count, replace=False))
        self.utility_inputs = self.images["target"][self.utility_index]
        self.utility_targets = target["targets"][self.utility_index]
        self.perturbed_inputs = perturb_inputs(
            self.utility_inputs, self.options.perturb_radius, self.options.perturb_samples, derive_seed(seed, method, "perturb")
        )
        self.cache: OrderedDict[str, RawMaps] = OrderedDict()
        self.cache_dir = ctx.root / ".deepleak" / "cache" / "optimize"
        self.recomputed = 0

        raw = self.raw_maps(self.base_settings)
        self.raw_utility_maps = raw.target[self.utility_index]
        self.raw_report = self.report(self.raw_utility_maps, self.raw_utility_maps, raw.perturbed)
        self.accuracy = self.model_accuracy()

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities of the target model, shape ``(N, classes)``."""
        logits = predict_logits(self.models["target"], torch.from_numpy(images), self.ctx.device)
        return torch.softmax(logits, dim=1).numpy()

    def model_accuracy(self) -> float:
        """Accuracy of the target model on its non-members, recomputed from a fresh forward pass."""
        side = self.sides["target"]
        outside = side["membership"] == 0
        predictions = self.predict(self.images["target"][outside]).argmax(1)
        return float((predictions == side["labels"][outside]).mean())

    def cache_key(self, settings: dict[str, Any]) -> str:
        """Key of the raw maps of ``settings``: method, seed, settings, explained output and the explain stage's record."""
        meta = (self.ctx.artifacts("explanations", self.method, f"seed_{self.seed}", "meta.json"))
        record = meta.read_text(encoding="utf-8") if meta.is_file() else ""
        explain = self.ctx.params.explain
        return fingerprint(
            __version__, self.method, self.seed, settings, explain.output, explain.target, record,
            self.utility_index, self.options.perturb_radius, self.options.perturb_samples,
        )

    def raw_maps(self, settings: dict[str, Any]) -> RawMaps:
        """Return the unhardened maps of ``settings`` from memory, disk, the explain stage, or a new computation."""
        key = self.cache_key(settings)
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        path = self.cache_dir / f"{key}.npz"
        if path.is_file():
            arrays = load_arrays(path, "optimize", ("target", "shadow", "perturbed"))
            maps = RawMaps(arrays["target"], arrays["shadow"], arrays["perturbed"])
        else:
            explainer = create_explainer(self.method, settings, seed=derive_seed(self.seed, self.method, "explain"))
            if settings == self.base_settings:
                target, shadow = self.sides["target"]["maps"], self.sides["shadow"]["maps"]
            else:
                self.recomputed += 1
                target, shadow = self.explain_sides(explainer)
            maps = RawMaps(target, shadow, self.explain_perturbed(explainer))
            save_arrays(path, target=maps.target, shadow=maps.shadow, perturbed=maps.perturbed)
        self.cache[key] = maps
        while len(self.cache) > 4:
            self.cache.popitem(last=False)
        return maps

    def explain_sides(self, explainer) -> tuple[np.ndarray, np.ndarray]:
        """Recompute both sides' maps the way the explain stage does, in the same order."""
        splits = load_splits(self.ctx, self.seed)
        out = {}
        with self.ctx.progress.task(f"explain {self.method} (new settings)", None) as bar:
            for role, (members, non_members) in ROLES.items():
                seed_everything(derive_seed(self.seed, self.method, role))
                other = "shadow_non_members" if role == "target" else "target_non_members"
                arrays = explain_side(
                    self.ctx, explainer, self.models[role], self.dataset, splits[members], splits[non_members],
                    splits[other], derive_seed(self.seed, self.method, role, "shuffle"), bar,
                )
                out[role] = arrays["maps"]
        return out["target"], out["shadow"]

    def explain_perturbed(self, explainer) -> np.ndarray:
        """Maps of the perturbed utility images with the target model, shape ``(K, M, C, H, W)``."""
        count, images = self.perturbed_inputs.shape[:2]
        flat_inputs = torch.from_numpy(self.perturbed_inputs.reshape(count * images, *self.perturbed_inputs.shape[2:]))
        flat_targets = torch.from_numpy(np.tile(self.utility_targets, count)).long()
        reference = None
        if explainer.needs_reference:
            reference = self.dataset.tensor(load_splits(self.ctx, self.seed)["shadow_non_members"]).to(self.ctx.device)
        wrapped = ModelOutput(self.models["target"], self.ctx.params.explain.output).eval()
        batch = self.ctx.params.explain.batch_size
        seed_everything(derive_seed(self.seed, self.method, "perturbed"))
        maps = [
            explainer.explain(wrapped, flat_inputs[start : start + batch].to(self.ctx.device), flat_targets[start : start + batch].to(self.ctx.device), reference).cpu().numpy()
            for start in range(0, len(flat_inputs), batch)
        ]
        return np.concatenate(maps).reshape(self.perturbed_inputs.shape)

    def report(self, raw_utility: np.ndarray, hardened: np.ndarray, hardened_perturbed: np.ndarray) -> dict[str, float]:
        """Utility metrics of hardened utility maps against the baseline's raw maps."""
        deletion, insertion = deletion_insertion(
            self.predict, self.utility_inputs, hardened, self.utility_targets, self.options.curve_steps, seed=self.seed
        )
        sensitivity = max_sensitivity(hardened, hardened_perturbed)
        return utility_report(raw_utility, hardened, deletion, insertion, sensitivity, self.options.top_k_fraction)

    def harden(self, steps: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, np.ndarray]:
        """Return hardened maps of both sides and of the perturbed utility images."""
        raw = self.raw_maps(settings)
        chain = HardeningChain.from_config(steps, seed=derive_seed(self.seed, self.method, "harden"))
        calibration = Calibration(raw.target[self.utility_index], self.utility_inputs, raw.perturbed, self.perturbed_inputs)
        sensitivities = chain.sensitivities(calibration, self.map_size)
        return {
            "target": chain.apply(raw.target, self.images["target"], sensitivities),
            "shadow": chain.apply(raw.shadow, self.images["shadow"], sensitivities),
            "perturbed": chain.apply_stacked(raw.perturbed, self.perturbed_inputs, sensitivities),
        }

    def attack_data(self, role: str, maps: np.ndarray) -> AttackData:
        side = self.sides[role]
        return AttackData(maps, side["membership"], side["labels"], side["targets"])

    def attack_settings(self, name: str, search: bool) -> Any:
        """Settings of attack ``name``; inside the search the reference CNN may train for fewer epochs."""
        settings = attack_settings(self.ctx, name)
        epochs = self.options.search_cnn_epochs
        if search and name == "reference_cnn" and epochs is not None and settings is not None:
            return settings.model_copy(update={"epochs": epochs})
        return settings

    def leakage(self, hardened: dict[str, np.ndarray]) -> tuple[float, dict[str, float]]:
        """Retrain every attack on the hardened shadow maps; return the leakage and each attack's TPR and AUC.

        The leakage is the worst over attacks of TPR - FPR at ``optimize.fpr``,
        or of ``|AUC - 0.5|`` when ``optimize.leakage`` is ``auc``.
        """
        fpr = self.options.fpr
        shadow = self.attack_data("shadow", hardened["shadow"])
        target = self.attack_data("target", hardened["target"])
        measured: dict[str, float] = {}
        advantages = []
        for name in self.options.attacks:
            attack_seed = derive_seed(self.seed, self.method, name, "optimize")
            seed_everything(attack_seed)
            attack = create_attack(name, self.attack_settings(name, search=True), seed=attack_seed)
            scores = attack.fit(shadow).score(target)
            tpr, area = tpr_at_fpr(scores, target.membership, fpr), auc(scores, target.membership)
            measured[f"tpr_{name}"], measured[f"auc_{name}"] = tpr, area
            advantages.append(abs(area - 0.5) if self.options.leakage == "auc" else tpr - fpr)
        return max(advantages), measured

    def evaluate(self, hardened: dict[str, np.ndarray], label: str) -> dict[str, Any]:
        """Leakage of one configuration with bootstrap intervals, under full-strength attacks seeded apart from the search."""
        params = self.ctx.params
        shadow = self.attack_data("shadow", hardened["shadow"])
        target = self.attack_data("target", hardened["target"])
        key = level_key(self.options.fpr)
        per_attack = {}
        for name in self.options.attacks:
            attack_seed = derive_seed(self.seed, self.method, name, "confirm")
            seed_everything(attack_seed)
            attack = create_attack(name, self.attack_settings(name, search=False), seed=attack_seed)
            result = evaluate_attack(
                attack.fit(shadow).score(target), target.membership, [self.options.fpr],
                self.options.bootstrap, self.options.confidence, seed=attack_seed,
            )
            per_attack[name] = result.to_dict()
        if self.options.leakage == "auc":
            strongest = max(per_attack, key=lambda name: abs(per_attack[name]["auc"]["value"] - 0.5))
        else:
            strongest = max(per_attack, key=lambda name: per_attack[name]["tpr"][key]["value"])
        entry = per_attack[strongest]["tpr"][key]
        area = per_attack[strongest]["auc"]
        log.info(
            "%s seed %d %s: strongest attack %s, TPR %.4f, AUC %.4f",
            self.method, self.seed, label, strongest, entry["value"], area["value"],
        )
        return {"strongest_attack": strongest, "tpr": entry, "auc": area, "per_attack": per_attack, "fpr": self.options.fpr}


def study_name(ctx: StageContext, problem: SeedProblem) -> str:
    """Study name: method and seed, plus a hash of everything that changes the trials' results."""
    params = ctx.params
    digest = fingerprint(
        __version__, params.harden.model_dump(), params.optimize.model_dump(exclude={"trials", "storage", "bootstrap", "confidence"}),
        params.attack.model_dump(), problem.cache_key(problem.base_settings),
    )
    return f"{problem.method}+{problem.seed}-{digest}"


def make_objective(ctx: StageContext, problem: SeedProblem, parent, bar):
    """Return the Optuna objective of one (method, seed); every trial logs a nested tracker run under ``parent``."""
    options = ctx.params.optimize

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        start = time.perf_counter()
        steps, settings = trial_config(trial, ctx.params.harden, problem.method, problem.base_settings)
        recomputed_before = problem.recomputed
        hardened = problem.harden(steps, settings)
        leakage, measured = problem.leakage(hardened)
        report = problem.report(problem.raw_utility_maps, hardened["target"][problem.utility_index], hardened["perturbed"])
        loss = utility_loss(problem.raw_report, report, options.utility_loss)
        accuracy = problem.model_accuracy()
        metrics = {
            "leakage": leakage,
            "utility_loss": loss,
            **measured,
            **report,
            "model_accuracy": accuracy,
            "model_accuracy_change": accuracy - problem.accuracy,
            "recomputed_attributions": float(problem.recomputed > recomputed_before),
            "seconds": time.perf_counter() - start,
        }
        trial.set_user_attr("steps", steps)
        trial.set_user_attr("explainer_settings", settings)
        trial.set_user_attr("metrics", metrics)
        with parent.run(
            f"trial {trial.number}",
            {"trial": trial.number, "steps": {str(i): step for i, step in enumerate(steps)}, "explainer": settings},
            {"xai_method": problem.method, "seed": str(problem.seed), "optuna_trial": str(trial.number)},
        ) as child:
            child.log_metrics(metrics)
        bar.advance()
        return leakage, loss

    return objective


def optimize_seed(ctx: StageContext, method: str, seed: int, parent, bar, out_dir: Path) -> dict[str, Any]:
    """Run or resume the study of one (method, seed) and write its results into ``out_dir``."""
    options = ctx.params.optimize
    with ctx.phase(f"optimize {method} seed {seed}: setup"):
        problem = SeedProblem(ctx, method, seed)
    storage = options.storage or default_storage(ctx.root)
    name = study_name(ctx, problem)
    study = open_study(storage, name, options.sampler, derive_seed(options.seed, method, seed))
    enqueue_baseline(study, len(ctx.params.harden.steps))
    done = len(complete_trials(study))
    bar.advance(min(done, options.trials))
    if done:
        log.info("%s seed %d: resuming study %s with %d complete trial(s)", method, seed, name, done)
    with ctx.phase(f"optimize {method} seed {seed}: trials"):
        run_trials(study, make_objective(ctx, problem, parent, bar), options.trials)

    complete = complete_trials(study)
    baseline = next((trial for trial in complete if trial.user_attrs.get("baseline")), complete[0])
    chosen = choose(complete, options.utility_budget)
    front = pareto_front(complete)
    with ctx.phase(f"optimize {method} seed {seed}: final comparison"):
        comparison = {
            "baseline": problem.evaluate(problem.harden(baseline.user_attrs["steps"], baseline.user_attrs["explainer_settings"]), "baseline"),
            "chosen": problem.evaluate(problem.harden(chosen.user_attrs["steps"], chosen.user_attrs["explainer_settings"]), "chosen"),
        }
    chosen_config = {
        "method": method,
        "seed": seed,
        "trial": chosen.number,
        "steps": chosen.user_attrs["steps"],
        "explainer_settings": chosen.user_attrs["explainer_settings"],
        "leakage": chosen.values[0],
        "utility_loss": chosen.values[1],
        "utility_budget": options.utility_budget,
        "utility_loss_definition": options.utility_loss,
    }
    extra = {
        "method": method,
        "seed": seed,
        "storage": storage if options.storage is None else "configured (optimize.storage)",
        "baseline_trial": baseline.number,
        "baseline_utility": problem.raw_report,
        "chosen_config": chosen_config,
        "comparison": comparison,
        "recomputed_attributions": problem.recomputed,
    }
    payload = results_payload(study, options.utility_budget, extra)
    stem = results_name(method, seed)
    save_results(out_dir / f"{stem}.pkl", out_dir / f"{stem}.json", study, payload)
    write_json(out_dir / f"chosen_{method}+{seed}.json", chosen_config)
    plot = out_dir / f"pareto_{method}+{seed}.png"
    plot_pareto(complete, front, chosen, options.utility_budget, f"{method} seed {seed}", plot)
    parent.log_artifact(plot, "plots")
    parent.log_metrics({
        "baseline_leakage": baseline.values[0],
        "chosen_leakage": chosen.values[0],
        "chosen_utility_loss": chosen.values[1],
        "pareto_size": float(len(front)),
    })
    return payload


def run_optimize(ctx: StageContext, method: str) -> dict[str, Any]:
    """Write ``<artifacts>/optimize/<METHOD>/`` (results per top seed) and ``metrics/optimize/<METHOD>.json``."""
    params = ctx.params
    name = EXPLAINERS.canonical(method)
    seeds = read_top_seeds(ctx, name)
    options = params.optimize
    summary: dict[str, Any] = {
        "method": name, "fpr": options.fpr, "leakage": options.leakage, "utility_budget": options.utility_budget, "per_seed": {},
    }
    staging = optimize_dir(ctx, name).with_name(f".{name}.staging")
    if staging.exists():
        import shutil

        shutil.rmtree(staging)
    run_params = {"base": params.base.model_dump(), "harden": params.harden.model_dump(), "optimize": options.model_dump(), "method": name, "seeds": seeds}
    with ctx.tracker.run(f"optimize@{name}", run_params, {**ctx.stage_tags(f"optimize@{name}"), "xai_method": name}) as run:
        with ctx.phase(f"optimize {name}"), ctx.progress.task(f"optimize {name}", options.trials * len(seeds)) as bar:
            for seed in seeds:
                with run.run(f"{name}/seed{seed}", {"seed": seed}, {"xai_method": name, "seed": str(seed)}) as seed_run:
                    payload = optimize_seed(ctx, name, seed, seed_run, bar, staging)
                comparison = payload["comparison"]
                summary["per_seed"][str(seed)] = {
                    "chosen": payload["chosen_config"],
                    "baseline_tpr": comparison["baseline"]["tpr"],
                    "chosen_tpr": comparison["chosen"]["tpr"],
                    "baseline_auc": comparison["baseline"]["auc"],
                    "chosen_auc": comparison["chosen"]["auc"],
                    "baseline_attack": comparison["baseline"]["strongest_attack"],
                    "chosen_attack": comparison["chosen"]["strongest_attack"],
                    "pareto_size": len(payload["pareto_front"]),
                }
        with ctx.phase("write outputs"):
            write_json(staging / "summary.json", summary)
            replace_dir(staging, optimize_dir(ctx, name))
            write_json(ctx.path("metrics", "optimize", f"{name}.json"), summary)
    return summary
