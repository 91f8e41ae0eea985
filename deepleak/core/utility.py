"""Utility of hardened attribution maps: similarity, faithfulness, robustness, sparsity.

Every function takes maps of shape ``(N, C, H, W)`` (or ``(N, ...)`` where the
layout does not matter) and returns one value per map unless it says
otherwise. :func:`utility_loss` turns the reports of a raw and a hardened
map set into the single number the optimize phase minimizes.

Utility-loss definition (``faithfulness``, the default): with
``F = mean(insertion AUC - deletion AUC)`` over the utility images,
``loss = max(0, 1 - F_hardened / F_raw)``, the share of the raw maps'
faithfulness that hardening gives up. When ``F_raw <= 0`` (the raw maps are
no better than a random order) the ratio means nothing, and the loss falls
back to ``1 - mean Spearman correlation`` with the raw maps. The ``rank``
definition always uses ``1 - mean Spearman correlation``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

UtilityLossKind = Literal["faithfulness", "rank"]


def _flat(maps: np.ndarray) -> np.ndarray:
    return np.asarray(maps, dtype=np.float64).reshape(len(maps), -1)


def spearman(raw: np.ndarray, hardened: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pair of maps; 0 where either map is constant."""
    result = np.zeros(len(raw))
    for index, (a, b) in enumerate(zip(_flat(raw), _flat(hardened), strict=True)):
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            continue
        result[index] = spearmanr(a, b).statistic
    return result


def top_k_overlap(raw: np.ndarray, hardened: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Share of the ``k = ceil(fraction * size)`` largest-magnitude values of ``raw`` that are also in ``hardened``'s top ``k``.

    Ties at the cut are broken by position (earlier values first).
    """
    a, b = _flat(raw), _flat(hardened)
    k = max(1, int(np.ceil(fraction * a.shape[1])))
    top_a = np.argsort(-np.abs(a), axis=1, kind="stable")[:, :k]
    top_b = np.argsort(-np.abs(b), axis=1, kind="stable")[:, :k]
    return np.array([len(np.intersect1d(x, y)) / k for x, y in zip(top_a, top_b, strict=True)])


def cosine_similarity(raw: np.ndarray, hardened: np.ndarray) -> np.ndarray:
    """Cosine similarity of each pair of maps; 0 where either map is all zeros."""
    a, b = _flat(raw), _flat(hardened)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = (a * b).sum(axis=1)
    return np.divide(dots, norms, out=np.zeros(len(a)), where=norms > 0)


def ssim(raw: np.ndarray, hardened: np.ndarray) -> np.ndarray:
    """Structural similarity (scikit-image) of each pair of ``(C, H, W)`` maps, averaged over channels.

    The data range is the raw map's ``max - min``; a constant raw map scores 1
    if the hardened map equals it and 0 otherwise. The window is 7 pixels, or
    the largest odd size that fits smaller maps; maps under 3 pixels a side
    use one window over the whole map (the SSIM formula on global statistics).
    """
    raw = np.asarray(raw, dtype=np.float64)
    hardened = np.asarray(hardened, dtype=np.float64)
    side = min(raw.shape[-2:])
    window = min(7, side if side % 2 else side - 1)
    result = np.zeros(len(raw))
    for index, (a, b) in enumerate(zip(raw, hardened, strict=True)):
        data_range = float(a.max() - a.min())
        if data_range == 0:
            result[index] = float(np.array_equal(a, b))
        elif window < 3:
            result[index] = _global_ssim(a, b, data_range)
        else:
            result[index] = structural_similarity(a, b, data_range=data_range, channel_axis=0, win_size=window)
    return result


def _global_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    # Constants K1 = 0.01 and K2 = 0.03, as in scikit-image and Wang et al. (2004).
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mean_a, mean_b = a.mean(), b.mean()
    covariance = ((a - mean_a) * (b - mean_b)).mean()
    numerator = (2 * mean_a * mean_b + c1) * (2 * covariance + c2)
    return float(numerator / ((mean_a**2 + mean_b**2 + c1) * (a.var() + b.var() + c2)))


def gini(maps: np.ndarray) -> np.ndarray:
    """Gini index of ``|map|`` (0: all values equal, towards 1: one value has all the mass); 0 for an all-zero map.

    ``G = sum_i (2i - n - 1) |v|_(i) / (n sum |v|)`` with ``|v|`` sorted ascending and ``i`` from 1.
    """
    values = np.sort(np.abs(_flat(maps)), axis=1)
    n = values.shape[1]
    weights = 2 * np.arange(1, n + 1) - n - 1
    totals = values.sum(axis=1)
    return np.divide((values * weights).sum(axis=1), n * totals, out=np.zeros(len(values)), where=totals > 0)


def zero_fraction(maps: np.ndarray) -> np.ndarray:
    """Share of values that are exactly 0 in each map."""
    return (_flat(maps) == 0).mean(axis=1)


def perturb_inputs(inputs: np.ndarray, radius: float, samples: int, seed: int) -> np.ndarray:
    """Return ``samples`` copies ``x + delta`` of each input, shape ``(samples, N, ...)``.

    ``delta`` is uniform in ``[-radius, radius]`` per value, the perturbation
    that ``captum.metrics.sensitivity_max`` draws by default.
    """
    rng = np.random.default_rng(seed)
    delta = rng.uniform(-radius, radius, size=(samples, *inputs.shape)).astype(inputs.dtype)
    return inputs[None] + delta


def max_sensitivity(maps: np.ndarray, perturbed_maps: np.ndarray) -> np.ndarray:
    """Max-sensitivity of each map: ``max_k ||map(x + delta_k) - map(x)||_F / ||map(x)||_F``.

    This is the quantity ``captum.metrics.sensitivity_max`` returns (with its
    default Frobenius norm), computed from maps of perturbed inputs that the
    caller already has. A map that is all zeros scores 0 if its perturbed maps
    are too, and infinity otherwise.

    Args:
        maps: Maps of the inputs, shape ``(N, ...)``.
        perturbed_maps: Maps of ``samples`` perturbed copies, shape ``(samples, N, ...)``.
    """
    base = _flat(maps)
    moved = np.asarray(perturbed_maps, dtype=np.float64).reshape(len(perturbed_maps), len(base), -1)
    change = np.linalg.norm(moved - base[None], axis=2).max(axis=0)
    norms = np.linalg.norm(base, axis=1)
    out = np.full(len(base), np.inf)
    np.divide(change, norms, out=out, where=norms > 0)
    out[(norms == 0) & (change == 0)] = 0.0
    return out


def pixel_order(maps: np.ndarray, seed: int) -> np.ndarray:
    """Return pixel indices of each ``(C, H, W)`` map from most to least important, shape ``(N, H*W)``.

    Importance is the signed attribution summed over channels. Ties are broken
    in a random order drawn from ``seed``, so a constant map gives a random order
    rather than a scan from the top-left corner.
    """
    importance = np.asarray(maps, dtype=np.float64).sum(axis=1).reshape(len(maps), -1)
    tie_break = np.random.default_rng(seed).random(importance.shape)
    return np.lexsort((tie_break, -importance), axis=1)


def deletion_insertion(
    predict: Callable[[np.ndarray], np.ndarray],
    inputs: np.ndarray,
    maps: np.ndarray,
    targets: np.ndarray,
    steps: int = 16,
    baseline: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Area under the deletion and insertion curves of each map (Petsiuk et al., 2018, RISE).

    Pixels are taken in :func:`pixel_order`. At step ``s`` of ``steps``, the
    deletion curve removes (sets to ``baseline``, on every channel) the first
    ``round(s / steps * H * W)`` pixels; the insertion curve starts from a
    ``baseline`` image and puts them back. Each curve is the predicted
    probability of the target class; its area uses the trapezoid rule over
    ``[0, 1]``. A faithful map gives a low deletion area and a high insertion area.

    Args:
        predict: Maps images ``(B, C, H, W)`` to class probabilities ``(B, classes)``.
        inputs: Images, shape ``(N, C, H, W)``.
        maps: Attribution maps of ``inputs``, same shape.
        targets: Class explained by each map, shape ``(N,)``.
        steps: Curve points after the first.
        baseline: Value of a removed pixel.
        seed: Seed of the tie-breaking order.

    Returns:
        ``(deletion_auc, insertion_auc)``, each of shape ``(N,)``.
    """
    count, channels, height, width = inputs.shape
    pixels = height * width
    order = pixel_order(maps, seed)
    cuts = np.round(np.linspace(0, pixels, steps + 1)).astype(int)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(pixels)[None].repeat(count, 0), axis=1)
    # removed[n, s, p]: pixel p of image n is among the first cuts[s] pixels.
    removed = (rank[:, None, :] < cuts[None, :, None]).reshape(count, steps + 1, 1, height, width)
    images = inputs[:, None]
    deleted = np.where(removed, baseline, images).astype(inputs.dtype)
    inserted = np.where(removed, images, baseline).astype(inputs.dtype)
    batch = np.concatenate([deleted, inserted]).reshape(-1, channels, height, width)
    probabilities = predict(batch).reshape(2, count, steps + 1, -1)
    chosen = np.take_along_axis(probabilities, targets.reshape(1, count, 1, 1).astype(int), axis=3)[..., 0]
    areas = np.trapezoid(chosen, dx=1.0 / steps, axis=2)
    return areas[0], areas[1]


def utility_report(
    raw: np.ndarray,
    hardened: np.ndarray,
    deletion: np.ndarray,
    insertion: np.ndarray,
    sensitivity: np.ndarray,
    top_fraction: float = 0.1,
) -> dict[str, float]:
    """Return the mean of every utility metric of ``hardened`` against ``raw``.

    Args:
        raw: Unhardened maps.
        hardened: Hardened maps of the same images.
        deletion: Deletion areas of ``hardened`` (from :func:`deletion_insertion`).
        insertion: Insertion areas of ``hardened``.
        sensitivity: Max-sensitivity of ``hardened`` (from :func:`max_sensitivity`).
        top_fraction: Share of values compared by :func:`top_k_overlap`.
    """
    finite = sensitivity[np.isfinite(sensitivity)]
    return {
        "spearman": float(spearman(raw, hardened).mean()),
        "top_k_overlap": float(top_k_overlap(raw, hardened, top_fraction).mean()),
        "cosine": float(cosine_similarity(raw, hardened).mean()),
        "ssim": float(ssim(raw, hardened).mean()),
        "deletion_auc": float(deletion.mean()),
        "insertion_auc": float(insertion.mean()),
        "faithfulness": float((insertion - deletion).mean()),
        "max_sensitivity": float(finite.mean()) if len(finite) else float("inf"),
        "max_sensitivity_infinite": float(len(sensitivity) - len(finite)),
        "gini": float(gini(hardened).mean()),
        "zero_fraction": float(zero_fraction(hardened).mean()),
    }


def utility_loss(raw_report: dict[str, float], hardened_report: dict[str, float], kind: UtilityLossKind = "faithfulness") -> float:
    """Return the utility loss of a hardened map set (see the module docstring for the definition)."""
    if kind == "faithfulness" and raw_report["faithfulness"] > 0:
        return max(0.0, 1.0 - hardened_report["faithfulness"] / raw_report["faithfulness"])
    return max(0.0, 1.0 - hardened_report["spearman"])
