"""`deepleak run`: the reference tool's options land in params.yaml and the stages run."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from deepleak.cli.main import app
from deepleak.core.config import load_params
from deepleak.errors import ConfigError
from deepleak.pipeline.runner import apply_overrides
from tests.conftest import REPO, make_project, tiny_params


def test_overrides_keep_comments(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    changed = apply_overrides(path, {"explain.methods": ["SMAP", "LIME"], "select.topk": 2, "base.seeds": [0, 1, 2, 3]})
    assert changed
    text = path.read_text()
    assert "# logit, probability or log_probability" in text
    params = load_params(path)
    assert params.explain.methods == ["SMAP", "LIME"]
    assert params.select.topk == 2
    assert params.base.seeds == [0, 1, 2, 3]
    assert not apply_overrides(path, {"select.topk": 2})


def test_invalid_override_writes_nothing(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    before = path.read_text()
    with pytest.raises(ConfigError, match="NOPE"):
        apply_overrides(path, {"explain.methods": ["NOPE"]})
    assert path.read_text() == before


def test_run_without_dvc_prints_table(tmp_path, monkeypatch):
    params = tiny_params(tracking={"enabled": False})
    root = make_project(tmp_path / "project", params)
    monkeypatch.chdir(root)
    result = CliRunner().invoke(
        app, ["-q", "run", "--no-dvc", "--mode", "attack", "--xai-methods", "SMAP", "--topk", "1", "--trials", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "Most vulnerable seeds" in result.output
    top = pd.read_csv(root / "top_1_tprs.csv")
    assert list(top["XAI Method"]) == ["SMAP"]
    written = yaml.safe_load((root / "params.yaml").read_text())
    assert written["base"]["seeds"] == [0, 1]
    assert written["select"]["topk"] == 1
