"""Contract every registered hardener must meet, plus the chain's order and sensitivity rules."""

from __future__ import annotations

import numpy as np
import pytest

from deepleak.core.hardening import HARDENERS, Calibration, HardeningChain, create_hardener, max_change
from deepleak.errors import ConfigError, DeepLeakError, UnknownNameError

# Settings that make each step change a typical map; noise steps get a fixed
# sensitivity so they run without calibration maps.
EXAMPLES = {
    "gaussian_noise": {"multiplier": 0.5, "sensitivity": 1.0},
    "laplace_noise": {"multiplier": 0.5, "sensitivity": 1.0},
    "clip_value": {"low": -0.5, "high": 0.5},
    "clip_percentile": {"lower": 5, "upper": 95},
    "clip_norm": {"order": 2, "max_norm": 0.5},
    "threshold": {"fraction": 0.5},
    "top_k": {"fraction": 0.25},
    "random_mask": {"rate": 0.5},
    "round": {"decimals": 1},
}


def _batch(count: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    maps = rng.normal(size=(count, 1, 8, 8)).astype(np.float32)
    inputs = rng.random((count, 1, 8, 8)).astype(np.float32)
    return maps, inputs


def test_every_hardener_has_an_example():
    assert sorted(EXAMPLES) == sorted(HARDENERS.names())


@pytest.mark.parametrize("name", HARDENERS.names())
def test_shape_and_dtype_preserved(name):
    maps, inputs = _batch()
    for dtype in (np.float32, np.float64):
        out = create_hardener(name, EXAMPLES[name]).harden(maps.astype(dtype), inputs)
        assert out.shape == maps.shape
        assert out.dtype == dtype


@pytest.mark.parametrize("name", HARDENERS.names())
def test_changes_maps_and_leaves_input_alone(name):
    maps, inputs = _batch()
    original = maps.copy()
    out = create_hardener(name, EXAMPLES[name]).harden(maps, inputs)
    assert np.array_equal(maps, original)
    assert not np.array_equal(out, maps)


@pytest.mark.parametrize("name", HARDENERS.names())
def test_same_output_on_repeated_queries(name):
    maps, inputs = _batch()
    first = create_hardener(name, EXAMPLES[name]).harden(maps, inputs)
    again = create_hardener(name, EXAMPLES[name]).harden(maps, inputs)
    assert np.array_equal(first, again)


@pytest.mark.parametrize("name", HARDENERS.names())
def test_each_map_independent_of_batch(name):
    maps, inputs = _batch()
    hardener = create_hardener(name, EXAMPLES[name])
    whole = hardener.harden(maps, inputs)
    order = np.array([3, 0, 5, 1, 4, 2])
    shuffled = hardener.harden(maps[order], inputs[order])
    alone = hardener.harden(maps[2:3], inputs[2:3])
    assert np.array_equal(shuffled, whole[order])
    assert np.array_equal(alone[0], whole[2])


@pytest.mark.parametrize("name", [name for name in HARDENERS.names() if HARDENERS.get(name).random])
def test_random_steps_seeded_by_input(name):
    maps, inputs = _batch()
    hardener = create_hardener(name, EXAMPLES[name])
    same_map = np.repeat(maps[:1], 2, axis=0)
    out = hardener.harden(same_map, inputs[:2])
    assert not np.array_equal(out[0], out[1])
    assert not np.array_equal(hardener.harden(maps, inputs), hardener.harden(maps, inputs[::-1].copy()))
    other = create_hardener(name, {**EXAMPLES[name], **({"rate": 0.4} if name == "random_mask" else {"multiplier": 0.4})})
    assert not np.array_equal(hardener.harden(maps, inputs), other.harden(maps, inputs))


def test_noise_scale_matches_multiplier_and_sensitivity():
    maps = np.zeros((1, 1, 100, 100), np.float64)
    inputs = np.ones_like(maps)
    gaussian = create_hardener("gaussian_noise", {"multiplier": 0.1, "sensitivity": 2.0}).harden(maps, inputs)
    laplace = create_hardener("laplace_noise", {"multiplier": 0.1, "sensitivity": 2.0}).harden(maps, inputs)
    assert gaussian.std() == pytest.approx(0.2, rel=0.03)
    # Laplace(0, b) has mean absolute deviation b.
    assert np.abs(laplace).mean() == pytest.approx(0.2, rel=0.03)


def test_clipping_values_by_hand():
    maps = np.array([[[[3.0, -4.0], [0.5, 0.0]]]])
    assert create_hardener("clip_value", {"low": -1, "high": 1}).harden(maps).ravel().tolist() == [1.0, -1.0, 0.5, 0.0]
    l2 = create_hardener("clip_norm", {"order": 2, "max_norm": 1.0}).harden(maps)
    assert np.linalg.norm(l2) == pytest.approx(1.0)
    assert l2.ravel()[0] == pytest.approx(3.0 / np.sqrt(25.25))
    l1 = create_hardener("clip_norm", {"order": 1, "max_norm": 3.75}).harden(maps)
    assert l1.ravel().tolist() == pytest.approx([1.5, -2.0, 0.25, 0.0])
    small = create_hardener("clip_norm", {"max_norm": 100.0}).harden(maps)
    assert np.array_equal(small, maps)


def test_masking_values_by_hand():
    maps = np.array([[[[3.0, -4.0], [0.5, 1.0]]]])
    assert create_hardener("top_k", {"k": 2}).harden(maps).ravel().tolist() == [3.0, -4.0, 0.0, 0.0]
    assert create_hardener("threshold", {"fraction": 0.2}).harden(maps).ravel().tolist() == [3.0, -4.0, 0.0, 1.0]
    assert create_hardener("round", {"decimals": 0}).harden(maps + 0.26).ravel().tolist() == [3.0, -4.0, 1.0, 1.0]
    relative = create_hardener("round", {"decimals": 1, "relative": True}).harden(maps)
    # v / 4 = [0.75, -1, 0.125, 0.25] rounds (half to even) to [0.8, -1, 0.1, 0.2].
    assert relative.ravel().tolist() == pytest.approx([3.2, -4.0, 0.4, 0.8])


def test_random_mask_rate():
    maps = np.ones((4, 1, 50, 50))
    out = create_hardener("random_mask", {"rate": 0.3}).harden(maps, np.random.default_rng(1).random(maps.shape))
    assert (out == 0).mean() == pytest.approx(0.3, abs=0.02)


def test_chain_order_respected():
    maps = np.array([[[[3.0, -4.0], [0.5, 1.0]]]])
    clip_then_top = HardeningChain.from_config(
        [{"name": "clip_value", "settings": {"low": -1, "high": 1}}, {"name": "top_k", "settings": {"k": 1}}]
    ).apply(maps)
    top_then_clip = HardeningChain.from_config(
        [{"name": "top_k", "settings": {"k": 1}}, {"name": "clip_value", "settings": {"low": -1, "high": 1}}]
    ).apply(maps)
    # Clipping first makes 1.0 and -1.0 tie, and the tie goes to the earlier value.
    assert clip_then_top.ravel().tolist() == [1.0, 0.0, 0.0, 0.0]
    assert top_then_clip.ravel().tolist() == [0.0, -1.0, 0.0, 0.0]


def test_chain_sensitivity_from_clip_bound():
    chain = HardeningChain.from_config(
        [
            {"name": "clip_norm", "settings": {"order": 2, "max_norm": 0.25}},
            {"name": "gaussian_noise", "settings": {"multiplier": 1.0}},
            {"name": "laplace_noise", "settings": {"multiplier": 1.0}},
        ]
    )
    # L2 ball of radius 0.25: diameter 0.5; the Laplace step after noise has no bound.
    with pytest.raises(ConfigError, match="laplace_noise"):
        chain.sensitivities(None, 64)
    assert HardeningChain.from_config(chain.describe()[:0] + [{"name": "clip_norm", "settings": {"max_norm": 0.25}}, {"name": "gaussian_noise"}]).sensitivities(None, 64) == [None, 0.5]
    l1 = HardeningChain.from_config([{"name": "clip_norm", "settings": {"max_norm": 0.25}}, {"name": "laplace_noise"}])
    assert l1.sensitivities(None, 64)[1] == pytest.approx(0.5 * 8)


def test_chain_sensitivity_from_calibration():
    maps = np.zeros((2, 1, 2, 2))
    perturbed = np.zeros((3, 2, 1, 2, 2))
    perturbed[1, 0, 0, 0, 0] = 3.0
    perturbed[2, 1, 0, 1, :] = [1.0, 1.0]
    inputs = np.zeros_like(maps)
    calibration = Calibration(maps, inputs, perturbed, np.zeros_like(perturbed))
    assert max_change(maps, perturbed, "l2") == 3.0
    assert max_change(maps, perturbed, "l1") == 3.0
    chain = HardeningChain.from_config([{"name": "clip_value", "settings": {"low": -5, "high": 2}}, {"name": "gaussian_noise"}])
    # The clip bound takes priority: width of [-5, 2] times sqrt(4).
    assert chain.sensitivities(calibration, 4)[1] == pytest.approx(14.0)
    percentile = HardeningChain.from_config([{"name": "top_k", "settings": {"k": 1}}, {"name": "gaussian_noise"}])
    assert percentile.sensitivities(calibration, 4)[1] == pytest.approx(3.0)


def test_apply_stacked_matches_apply_per_copy():
    # Noise and random masks are seeded by each map's input, so hardening a
    # (K, M, ...) stack must equal hardening each copy's (M, ...) slice alone.
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(3, 4, 1, 8, 8)).astype(np.float32)
    inputs = rng.random((3, 4, 1, 8, 8)).astype(np.float32)
    chain = HardeningChain.from_config(
        [
            {"name": "clip_norm", "settings": {"max_norm": 0.5}},
            {"name": "gaussian_noise", "settings": {"multiplier": 0.3}},
            {"name": "random_mask", "settings": {"rate": 0.4}},
        ],
        seed=5,
    )
    sensitivities = chain.sensitivities(None, 64)
    stacked = chain.apply_stacked(maps, inputs, sensitivities)
    assert stacked.shape == maps.shape
    for k in range(3):
        np.testing.assert_array_equal(stacked[k], chain.apply(maps[k], inputs[k], sensitivities))
    assert not np.allclose(stacked, maps)


@pytest.mark.parametrize(
    ("steps", "error", "fragment"),
    [
        ([{"name": "blur"}], UnknownNameError, "Valid names"),
        ([{"settings": {}}], ConfigError, "'name' key"),
        (["clip_norm"], ConfigError, "'name' key"),
        ([{"name": "clip_norm", "setting": {}}], ConfigError, "unknown keys"),
        ([{"name": "clip_value", "settings": {"low": 2, "high": 1}}], ConfigError, "must not exceed"),
        ([{"name": "top_k", "settings": {"k": 2, "fraction": 0.5}}], ConfigError, "exactly one"),
        ([{"name": "gaussian_noise", "settings": {"multiplier": -1}}], ConfigError, "multiplier"),
    ],
)
def test_invalid_chain_raises(steps, error, fragment):
    with pytest.raises(error, match=fragment) as caught:
        HardeningChain.from_config(steps)
    assert isinstance(caught.value, DeepLeakError)
    assert "\n" not in str(caught.value)
