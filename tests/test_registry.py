"""Registries: aliases resolve, unknown names list the valid ones."""

from __future__ import annotations

import pytest

from deepleak.core.attacks import ATTACKS
from deepleak.core.explainers import EXPLAINERS
from deepleak.errors import UnknownNameError
from deepleak.registry import Registry


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [("SMAP", "SMAP"), ("saliency", "SMAP"), ("Saliency Map", "SMAP"), ("integrated-gradients", "IG"), ("lime", "LIME")],
)
def test_explainer_aliases(alias, canonical):
    assert EXPLAINERS.canonical(alias) == canonical


def test_unknown_name_lists_valid():
    with pytest.raises(UnknownNameError) as info:
        EXPLAINERS.get("Salency")
    message = str(info.value)
    assert "unknown explanation method 'Salency'" in message
    assert "Did you mean" in message
    for name in ("SMAP", "IG", "SHAP", "LIME"):
        assert name in message


def test_unknown_attack_lists_valid():
    with pytest.raises(UnknownNameError, match="Valid names: .*reference_cnn"):
        ATTACKS.get("lira2")


def test_alias_collision_rejected():
    registry: Registry[type] = Registry("thing")
    registry.register("A", "alpha")(int)
    with pytest.raises(ValueError, match="alias 'Alpha' is taken by 'A'"):
        registry.register("B", "Alpha")(float)


def test_duplicate_name_rejected():
    registry: Registry[type] = Registry("thing")
    registry.register("A")(int)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("A")(float)
