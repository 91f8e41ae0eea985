"""Protocol audit: checks that only membership, no confound, separates members from non-members.

A membership attack measures leakage only if members and non-members reach the
explainer the same way. Each check returns the problems it finds as short
sentences naming the confound; :func:`raise_if_failed` turns them into one
:class:`~deepleak.errors.ProtocolError`.

Checks:

- splits are pairwise disjoint;
- members and non-members have the same class shares (chi-square test and a gap limit);
- the inputs the explainer saw have the same pixel and border statistics for
  members and non-members (two-sample Kolmogorov-Smirnov tests), and match the
  dataset's one preprocessing function for both groups;
- no module of the explained model was in training mode;
- batches mix members and non-members (chi-square test of independence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from deepleak.errors import ProtocolError

# scipy.stats is imported inside the functions that use it: it costs about 1 s
# per process, and the explain stage imports this module only for
# input_statistics.

INPUT_STATISTICS = ("pixel_mean", "pixel_std", "border_mean")


@dataclass
class AuditReport:
    """Outcome of the checks: problems found and the statistics behind each check."""

    problems: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def extend(self, other: AuditReport, prefix: str) -> None:
        """Add the problems and details of ``other`` under ``prefix``."""
        self.problems.extend(f"{prefix}: {problem}" for problem in other.problems)
        self.details[prefix] = other.details


def input_statistics(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Return the pixel mean, pixel standard deviation and mean of the one-pixel border per image, ``(N, 3)``."""
    values = torch.as_tensor(images, dtype=torch.float64)
    flat = values.reshape(len(values), -1)
    border = torch.ones(values.shape[-2:], dtype=torch.bool)
    border[1:-1, 1:-1] = False
    return torch.stack(
        [flat.mean(1), flat.std(1, unbiased=False), values[..., border].reshape(len(values), -1).mean(1)], dim=1
    ).numpy()


def check_disjoint(splits: dict[str, np.ndarray]) -> AuditReport:
    """Check that no example is in two splits."""
    report = AuditReport()
    names = list(splits)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = np.intersect1d(splits[first], splits[second])
            report.details[f"{first}&{second}"] = int(len(shared))
            if len(shared):
                report.problems.append(
                    f"{len(shared)} examples are in both {first} and {second} (first: {int(shared[0])}); redraw the splits"
                )
    return report


def check_class_balance(
    member_labels: np.ndarray, non_member_labels: np.ndarray, num_classes: int, alpha: float, max_gap: float
) -> AuditReport:
    """Check that members and non-members have the same class shares.

    Fails when a chi-square test rejects equal shares at ``alpha`` and some
    class share differs by more than ``max_gap``.
    """
    from scipy import stats

    counts = np.stack(
        [np.bincount(member_labels, minlength=num_classes), np.bincount(non_member_labels, minlength=num_classes)]
    )
    counts = counts[:, counts.sum(axis=0) > 0]
    shares = counts / counts.sum(axis=1, keepdims=True)
    gap = float(np.abs(shares[0] - shares[1]).max())
    p_value = float(stats.chi2_contingency(counts)[1]) if counts.shape[1] > 1 else 1.0
    report = AuditReport(details={"chi2_p": p_value, "max_class_gap": gap})
    if p_value < alpha and gap > max_gap:
        report.problems.append(
            f"class shares of members and non-members differ (largest gap {gap:.3f}, chi-square p={p_value:.2g}); "
            "use stratified splits (prepare.stratify: true)"
        )
    return report


def check_inputs(
    recorded: np.ndarray, canonical: np.ndarray, membership: np.ndarray, alpha: float
) -> AuditReport:
    """Check that members' and non-members' explainer inputs went through the same preprocessing.

    Args:
        recorded: :func:`input_statistics` of the inputs the explainer received, ``(N, 3)``.
        canonical: :func:`input_statistics` of the same examples through the dataset's
            preprocessing, ``(N, 3)``.
        membership: 1 for members, 0 for non-members.
        alpha: Significance level of each Kolmogorov-Smirnov test, Bonferroni-corrected here.
    """
    from scipy import stats

    report = AuditReport()
    members = membership.astype(bool)
    changed = ~np.isclose(recorded, canonical, rtol=1e-5, atol=1e-6).all(axis=1)
    rates = (float(changed[members].mean()), float(changed[~members].mean()))
    report.details["changed_share_members"], report.details["changed_share_non_members"] = rates
    if rates[0] != rates[1] and max(rates) > 0:
        report.problems.append(
            f"{rates[0]:.0%} of members' and {rates[1]:.0%} of non-members' explainer inputs differ from the dataset's "
            "preprocessing; preprocess both groups with one function and never augment outside training"
        )
    corrected = alpha / len(INPUT_STATISTICS)
    for column, name in enumerate(INPUT_STATISTICS):
        p_value = float(stats.ks_2samp(recorded[members, column], recorded[~members, column]).pvalue)
        report.details[f"{name}_ks_p"] = p_value
        if p_value < corrected:
            report.problems.append(
                f"members' and non-members' explainer inputs differ in {name} (Kolmogorov-Smirnov p={p_value:.2g}); "
                "check that both groups get the same preprocessing"
            )
    return report


def check_batches(batches: np.ndarray, membership: np.ndarray, alpha: float) -> AuditReport:
    """Check that batches mix members and non-members (chi-square test of batch against membership)."""
    from scipy import stats

    table = np.zeros((int(batches.max()) + 1, 2))
    np.add.at(table, (batches.astype(np.int64), membership.astype(np.int64)), 1)
    table = table[table.sum(axis=1) > 0]
    pure = int(((table == 0).any(axis=1) & (table.sum(axis=1) > 1)).sum())
    p_value = float(stats.chi2_contingency(table)[1]) if len(table) > 1 else 1.0
    report = AuditReport(details={"batches": len(table), "single_kind_batches": pure, "chi2_p": p_value})
    if p_value < alpha:
        report.problems.append(
            f"batches do not mix members and non-members ({pure} of {len(table)} batches hold one kind, "
            f"chi-square p={p_value:.2g}); shuffle members and non-members together before batching"
        )
    return report


def check_eval_mode(training_modules: int) -> AuditReport:
    """Check that no module of the explained model was in training mode."""
    report = AuditReport(details={"training_modules": int(training_modules)})
    if training_modules:
        report.problems.append(
            f"{int(training_modules)} modules of the explained model were in training mode "
            "(dropout and batch norm then depend on chance and on the batch); call model.eval() before explaining"
        )
    return report


def raise_if_failed(report: AuditReport) -> None:
    """Raise :class:`ProtocolError` listing every problem of ``report`` on one line."""
    if report.problems:
        raise ProtocolError(f"protocol audit failed: {'; '.join(report.problems)}")
