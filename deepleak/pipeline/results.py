"""Read the attack stage's outputs back for display: metrics, ROC points and attribution maps.

Nothing here computes new figures; every number comes from the files that
``deepleak attack`` and ``deepleak explain`` wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepleak.core.io import load_arrays, read_json
from deepleak.core.metrics import Estimate


@dataclass(frozen=True)
class AttackResult:
    """AUC and TPR at each FPR level of one attack on one method's maps for one seed."""

    method: str
    seed: int
    attack: str
    auc: Estimate
    tpr: dict[float, Estimate]
    fpr_resolution: float


@dataclass(frozen=True)
class RocCurve:
    """ROC points of one attack on one method's maps for one seed."""

    method: str
    seed: int
    attack: str
    fpr: np.ndarray
    tpr: np.ndarray


@dataclass(frozen=True)
class MeanMaps:
    """Mean absolute attribution over target members and over target non-members, as ``(H, W)`` arrays."""

    members: np.ndarray
    non_members: np.ndarray
    n_members: int
    n_non_members: int


def _estimate(entry: dict) -> Estimate:
    return Estimate(entry.get("value"), entry.get("low"), entry.get("high"), entry.get("resolvable", True))


def load_results(root: Path) -> list[AttackResult]:
    """Read every ``metrics/attack/<METHOD>.json`` under ``root``, ordered by method, seed and attack.

    Returns an empty list when the attack stage has not run yet. Raises
    :class:`~deepleak.errors.ArtifactError` for a corrupt file.
    """
    results = []
    for path in sorted((root / "metrics" / "attack").glob("*.json")):
        data = read_json(path, f"attack@{path.stem}")
        method = data.get("method", path.stem)
        for seed, attacks in data.get("per_seed", {}).items():
            for attack, result in attacks.items():
                tpr = {float(entry["fpr_level"]): _estimate(entry) for entry in result.get("tpr", {}).values()}
                results.append(
                    AttackResult(method, int(seed), attack, _estimate(result["auc"]), tpr, float(result.get("fpr_resolution", 0.0)))
                )
    results.sort(key=lambda item: (item.method, item.seed, item.attack))
    return results


def load_roc_curves(root: Path, method: str, artifacts_dir: str = "artifacts") -> list[RocCurve]:
    """Read ``<artifacts_dir>/attacks/<method>/roc.json``, returning an empty list when it does not exist."""
    path = root / artifacts_dir / "attacks" / method / "roc.json"
    if not path.is_file():
        return []
    return [
        RocCurve(method, int(record["seed"]), record["attack"], np.asarray(record["fpr"], float), np.asarray(record["tpr"], float))
        for record in read_json(path, f"attack@{method}")
    ]


def load_mean_maps(root: Path, method: str, seed: int, artifacts_dir: str = "artifacts") -> MeanMaps | None:
    """Average ``|map|`` over channels and over the target model's members and non-members.

    Returns ``None`` when the explain stage of ``method`` has not written that seed.
    """
    path = root / artifacts_dir / "explanations" / method / f"seed_{seed}" / "target.npz"
    if not path.is_file():
        return None
    arrays = load_arrays(path, f"explain@{method}", required=("maps", "membership"))
    maps = np.abs(arrays["maps"].astype(np.float64))
    if maps.ndim == 4:
        maps = maps.mean(axis=1)
    membership = arrays["membership"] == 1
    return MeanMaps(maps[membership].mean(axis=0), maps[~membership].mean(axis=0), int(membership.sum()), int((~membership).sum()))
