"""Validation of params.yaml: every problem reported at once, with the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deepleak.core.config import Params, load_params, parse_params
from deepleak.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_repository_params_are_valid():
    params = load_params(REPO / "params.yaml")
    assert params.base.dataset == "digits"
    assert params.explain.output == "probability"


def test_scientific_notation_reads_as_float(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 1e-3\n  weight_decay: 5E-4\n")
    params = load_params(path)
    assert params.train.lr == pytest.approx(0.001)
    assert isinstance(params.train.lr, float)
    assert params.train.weight_decay == pytest.approx(5e-4)


def test_all_problems_reported_together():
    raw = {
        "train": {"epoch": 3, "lr": "fast"},
        "explain": {"methods": ["SMAP", "NotAMethod"]},
        "base": {"device": "tpu"},
    }
    with pytest.raises(ConfigError) as info:
        parse_params(raw)
    message = str(info.value)
    assert "4 problem(s)" in message
    assert "unknown key 'train.epoch'; did you mean 'epochs'?" in message
    assert "train.lr = 'fast'" in message
    assert "NotAMethod" in message
    assert "Valid names:" in message
    assert "base.device = 'tpu'" in message


def test_unknown_section_lists_valid_keys():
    with pytest.raises(ConfigError, match="unknown key 'atack'; did you mean 'attack'"):
        parse_params({"atack": {}})


def test_wrong_type_names_value():
    with pytest.raises(ConfigError, match=r"prepare.target_members = 'many'"):
        parse_params({"prepare": {"target_members": "many"}})


def test_method_aliases_resolve():
    params = parse_params({"explain": {"methods": ["saliency", "Integrated-Gradients"]}})
    assert params.explain.methods == ["saliency", "Integrated-Gradients"]
    assert params.explain.settings_for("SMAP") == {}


def test_duplicate_method_rejected():
    with pytest.raises(ConfigError, match="lists a method twice"):
        parse_params({"explain": {"methods": ["SMAP", "saliency"]}})


def test_method_settings_validated():
    with pytest.raises(ConfigError, match=r"method_settings.IG.n_step"):
        parse_params({"explain": {"method_settings": {"IG": {"n_step": 4}}}})


def test_select_attack_must_run():
    with pytest.raises(ConfigError, match="select.attack 'threshold_l1' is not among attack.attacks"):
        parse_params({"attack": {"attacks": ["reference_cnn"]}, "select": {"attack": "threshold_l1"}})


def test_duplicate_seeds_rejected():
    with pytest.raises(ConfigError, match="seeds must be unique"):
        parse_params({"base": {"seeds": [1, 1]}})


def test_missing_file_names_fix(tmp_path):
    with pytest.raises(ConfigError, match="not found; run from the project root"):
        load_params(tmp_path / "params.yaml")


def test_malformed_yaml(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("base: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path)


def test_defaults_match_repository_file():
    # The documented defaults in params.yaml and the model defaults must agree.
    on_disk = load_params(REPO / "params.yaml").model_dump()
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    defaults = Params().model_dump()
    for section in ("base", "prepare", "train"):
        for key, value in on_disk[section].items():
            assert defaults[section][key] == value, f"{section}.{key}"
