"""Protocol audit: each injected confound is caught, and the confounds that change maps inflate the attack."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from deepleak.core.config import TrainParams
from deepleak.core.data import ImageDataset, load_digits, make_splits
from deepleak.core.explainers import create_explainer
from deepleak.core.metrics import auc
from deepleak.core.models import build_model
from deepleak.core.protocol import check_batches, check_class_balance, check_disjoint, check_eval_mode
from deepleak.core.training import augment_batch, train_model
from deepleak.errors import ProtocolError
from deepleak.pipeline import StageContext
from deepleak.pipeline.audit import audit_explanations
from deepleak.pipeline.explain import explain_side
from tests.conftest import make_project, tiny_params

ALPHA = 1e-4


class _Bar:
    def advance(self, amount: int = 1) -> None:
        pass


@dataclass(frozen=True)
class MembersAugmented(ImageDataset):
    """A dataset whose preprocessing shifts members' images: the confound of augmenting members only."""

    members: frozenset[int] = frozenset()

    def tensor(self, indices: np.ndarray | None = None) -> torch.Tensor:
        images = super().tensor(indices)
        chosen = torch.tensor([int(index) in self.members for index in indices])
        images[chosen] = augment_batch(images[chosen], torch.Generator().manual_seed(0), flip=False)
        return images


@pytest.fixture(scope="module")
def digits() -> ImageDataset:
    return load_digits()


@pytest.fixture(scope="module")
def splits(digits: ImageDataset) -> dict[str, np.ndarray]:
    return make_splits(digits.labels, {"members": 120, "non_members": 240, "background": 40}, seed=0)


@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory) -> StageContext:
    root = make_project(tmp_path_factory.mktemp("audit"), tiny_params(tracking={"enabled": False}))
    return StageContext.create(root / "params.yaml", root=root)


def _train(digits: ImageDataset, members: np.ndarray) -> torch.nn.Module:
    model = build_model("small_cnn", digits.image_shape, digits.num_classes)
    return train_model(model, digits, members, TrainParams(epochs=20), seed=0, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def model(digits: ImageDataset, splits: dict[str, np.ndarray]) -> torch.nn.Module:
    return _train(digits, splits["members"])


def _explain(context, model, dataset, members, non_members, background) -> dict[str, np.ndarray]:
    explainer = create_explainer("SMAP", {"absolute": True})
    return explain_side(context, explainer, model, dataset, members, non_members, background, 0, _Bar())


def _attack_auc(arrays: dict[str, np.ndarray]) -> float:
    """AUC of a map-reading attack: logistic regression on the flattened maps, scored by 5-fold cross-validation.

    Like the reference CNN it sees the whole map, but it trains in well under a second.
    """
    features = arrays["maps"].reshape(len(arrays["maps"]), -1)
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, class_weight="balanced", max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = cross_val_predict(classifier, features, arrays["membership"], cv=folds, method="decision_function")
    return auc(scores, arrays["membership"])


def test_clean_protocol_passes(context, model, digits, splits) -> None:
    arrays = _explain(context, model, digits, splits["members"], splits["non_members"], splits["background"])
    report = audit_explanations(arrays, digits, ALPHA)
    assert report.problems == []
    assert int(arrays["training_modules"]) == 0


def test_augmented_members_caught_and_inflate(context, model, digits, splits) -> None:
    confounded = MembersAugmented(
        digits.name, digits.images, digits.labels, digits.num_classes, digits.scale, frozenset(splits["members"].tolist())
    )
    clean = _explain(context, model, digits, splits["members"], splits["non_members"], splits["background"])
    shifted = _explain(context, model, confounded, splits["members"], splits["non_members"], splits["background"])

    problems = audit_explanations(shifted, digits, ALPHA).problems
    assert any("differ from the dataset's preprocessing" in problem for problem in problems)
    assert _attack_auc(shifted) > _attack_auc(clean) + 0.05


def test_class_imbalance_caught_and_inflates(context, model, digits, splits) -> None:
    # Members from classes 0-4 only and non-members from classes 5-9 only.
    low_classes = splits["members"][digits.labels[splits["members"]] < 5]
    high_classes = splits["non_members"][digits.labels[splits["non_members"]] >= 5]
    skewed_model = _train(digits, low_classes)
    report = check_class_balance(
        digits.labels[low_classes], digits.labels[high_classes], digits.num_classes, ALPHA, 0.05
    )
    assert any("class shares" in problem for problem in report.problems)

    clean = _explain(context, model, digits, splits["members"], splits["non_members"], splits["background"])
    skewed = _explain(context, skewed_model, digits, low_classes, high_classes, splits["background"])
    assert _attack_auc(skewed) > _attack_auc(clean) + 0.1


def test_balanced_classes_pass(digits, splits) -> None:
    report = check_class_balance(
        digits.labels[splits["members"]], digits.labels[splits["non_members"]], digits.num_classes, ALPHA, 0.05
    )
    assert report.problems == []


def test_unmixed_batches_caught() -> None:
    membership = np.r_[np.ones(128), np.zeros(256)].astype(int)
    members_first = np.arange(len(membership)) // 64
    shuffled = np.random.default_rng(0).permutation(len(membership)) // 64
    assert any("do not mix" in problem for problem in check_batches(members_first, membership, ALPHA).problems)
    assert check_batches(shuffled, membership, ALPHA).problems == []


def test_training_mode_caught() -> None:
    assert any("training mode" in problem for problem in check_eval_mode(3).problems)
    assert check_eval_mode(0).problems == []


def test_overlapping_splits_caught() -> None:
    report = check_disjoint({"target_members": np.array([1, 2, 3]), "target_non_members": np.array([3, 4])})
    assert report.problems == ["1 examples are in both target_members and target_non_members (first: 3); redraw the splits"]


def test_pipeline_audit_names_overlap(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from deepleak.cli.main import app
    from deepleak.pipeline.audit import run_protocol_audit

    root = tmp_path / "project"
    shutil.copytree(tiny_run, root, ignore=shutil.ignore_patterns("mlruns", "mlflow.db"))
    (root / "params.yaml").write_text(json.dumps(tiny_params(tracking={"enabled": False})))
    split_file = root / "artifacts" / "splits" / "seed_0.json"
    data = json.loads(split_file.read_text())
    data["target_non_members"][0] = data["target_members"][0]
    split_file.write_text(json.dumps(data))

    ctx = StageContext.create(root / "params.yaml", root=root)
    with pytest.raises(ProtocolError, match="both target_members and target_non_members"):
        run_protocol_audit(ctx)
    monkeypatch.chdir(root)
    result = CliRunner().invoke(app, ["audit-protocol"])
    assert result.exit_code == 1
    assert "protocol audit failed" in result.output
