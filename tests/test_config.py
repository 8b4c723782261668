"""Settings layers: defaults < file < environment < flags, with provenance and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digitctl.cli import app
from digitctl.config import Settings, load_settings
from digitctl.errors import ConfigError


def test_defaults_when_nothing_is_given(tmp_path: Path) -> None:
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings == Settings()
    assert settings.sources == {}
    assert settings.models_path == Path("models")


def test_each_layer_overrides_the_one_before(tmp_path: Path) -> None:
    (tmp_path / "digitctl.toml").write_text("seed = 1\nval_split = 0.2\nport = 9000\n")
    settings = load_settings(
        environ={"DIGITCTL_SEED": "2", "DIGITCTL_VAL_SPLIT": "0.3"},
        overrides={"seed": 3},
        cwd=tmp_path,
    )
    assert (settings.seed, settings.val_split, settings.port) == (3, 0.3, 9000)
    assert settings.sources["seed"] == "flag"
    assert settings.sources["val_split"] == "environment"
    assert settings.sources["port"].startswith("file ")


def test_explicit_config_file_and_digitctl_table(tmp_path: Path) -> None:
    config = tmp_path / "custom.toml"
    config.write_text("[digitctl]\nrecipe = 'fast'\nbatch-size = 64\n")
    settings = load_settings(config, environ={}, cwd=tmp_path)
    assert settings.recipe == "fast" and settings.batch_size == 64


def test_none_overrides_mean_not_given(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"DIGITCTL_EPOCHS": "4"}, overrides={"epochs": None}, cwd=tmp_path
    )
    assert settings.epochs == 4


@pytest.mark.parametrize(
    ("file_text", "environ", "expected"),
    [
        ("sed = 1\n", {}, r"unknown setting 'sed' in file .*did you mean 'seed'"),
        ("seed = 'abc'\n", {}, r"seed \(from file .*\) must be a whole number"),
        ("", {"DIGITCTL_AUGMENT": "maybe"}, r"augment \(from environment\) must be true or false"),
        (
            "",
            {"DIGITCTL_EPOCS": "3"},
            r"unknown setting 'epocs' in environment variable "
            r"DIGITCTL_EPOCS; did you mean 'epochs'",
        ),
        ("val_split = 0.9\n", {}, r"val_split \(from file .*\) must be between 0 and 0.5"),
        ("recipe = 'slow'\n", {}, r"recipe .* must be one of best, fast"),
        ("seed = [\n", {}, r"is not valid TOML"),
    ],
)
def test_bad_values_name_the_key_and_the_source(
    tmp_path: Path, file_text: str, environ: dict[str, str], expected: str
) -> None:
    (tmp_path / "digitctl.toml").write_text(file_text)
    with pytest.raises(ConfigError, match=expected):
        load_settings(environ=environ, cwd=tmp_path)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={}, cwd=tmp_path)


def test_with_overrides_validates(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="epochs"):
        Settings().with_overrides(epochs=0)


def test_config_command_shows_values_and_sources(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workspace / "digitctl.toml").write_text("seed = 7\n")
    monkeypatch.setenv("DIGITCTL_PORT", "8600")
    result = CliRunner().invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["seed"] == {"value": 7, "source": f"file {workspace / 'digitctl.toml'}"}
    assert document["port"] == {"value": 8600, "source": "environment"}
    assert document["recipe"] == {"value": "best", "source": "default"}
    assert document["models_path"]["source"] == "derived"


def test_config_command_flag_beats_environment(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGITCTL_WORKSPACE", "/from/env")
    result = CliRunner().invoke(app, ["--workspace", "/from/flag", "config", "--json"])
    document = json.loads(result.stdout)
    assert document["workspace"] == {"value": "/from/flag", "source": "flag"}
    assert document["artifacts_path"]["value"] == "/from/flag/artifacts"


def test_bad_config_is_one_line_and_exit_2(workspace: Path) -> None:
    (workspace / "digitctl.toml").write_text("bogus = 1\n")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.output.count("\n") == 1 and "unknown setting 'bogus'" in result.output
