"""Bad input: one clear line, exit status 1, and nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from deepleak.cli.main import app, expand_multi_value_options
from tests.conftest import make_project, tiny_params

runner = CliRunner()


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    root = make_project(tmp_path / "project")
    monkeypatch.chdir(root)
    return root


def _invoke(*args: str):
    return runner.invoke(app, list(args))


def test_unknown_method_lists_valid(project):
    result = _invoke("explain", "NOPE")
    assert result.exit_code == 1
    assert "unknown explanation method 'NOPE'" in result.output
    assert "Valid names:" in result.output
    assert "Traceback" not in result.output
    assert not (project / "artifacts" / "explanations").exists()


def test_misspelled_key_names_fix(project):
    params = tiny_params()
    params["train"]["epoch"] = params["train"].pop("epochs")
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = _invoke("prepare")
    assert result.exit_code == 1
    assert "unknown key 'train.epoch'; did you mean 'epochs'?" in result.output
    assert not (project / "artifacts").exists()
    assert not (project / "metrics").exists()


def test_wrong_type_names_value(project):
    params = tiny_params()
    params["train"]["lr"] = "fast"
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = _invoke("validate")
    assert result.exit_code == 1
    assert "train.lr = 'fast'" in result.output


def test_missing_cifar_root(project):
    params = tiny_params(base={"dataset": "cifar10", "data_root": "data/none"})
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    result = _invoke("prepare")
    assert result.exit_code == 1
    assert "cifar10 not found" in result.output
    assert "--download" in result.output
    assert not (project / "artifacts").exists()


def test_corrupt_weights_rejected(project):
    assert _invoke("-q", "prepare").exit_code == 0
    assert _invoke("-q", "train").exit_code == 0
    weights = project / "artifacts" / "models" / "seed_0" / "target.pt"
    weights.write_bytes(b"not a torch file")
    result = _invoke("explain", "SMAP")
    assert result.exit_code == 1
    assert f"weights file {weights} is corrupt" in " ".join(result.output.split())
    assert "rerun the train stage" in result.output
    assert not (project / "artifacts" / "explanations" / "SMAP").exists()


def test_missing_splits_name_stage(project):
    result = _invoke("train")
    assert result.exit_code == 1
    assert "run the prepare stage first" in result.output


def test_run_rejects_unknown_method_before_writing(project):
    before = (project / "params.yaml").read_text()
    result = _invoke("run", "--no-dvc", "--xai-methods", "SMAP", "--xai-methods", "BOGUS")
    assert result.exit_code == 1
    assert "BOGUS" in result.output
    assert (project / "params.yaml").read_text() == before


def test_space_separated_methods_expand():
    argv = ["run", "--xai-methods", "SMAP", "SHAP", "LIME", "--topk", "3"]
    assert expand_multi_value_options(argv) == [
        "run", "--xai-methods", "SMAP", "--xai-methods", "SHAP", "--xai-methods", "LIME", "--topk", "3",
    ]


def test_entry_point_prints_one_line(project):
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("deepleak")), "explain", "SMAPP"],
        cwd=project, capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Did you mean 'SMAP'?" in lines[0]


def test_version_flag():
    result = _invoke("--version")
    assert result.exit_code == 0
    assert "deepleak" in result.output
