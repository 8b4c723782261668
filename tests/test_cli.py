"""The CLI frame: help everywhere, version, fast and light start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from digitctl import __version__
from digitctl.cli import app

COMMANDS = [
    "config",
    "download",
    "preprocess",
    "train",
    "evaluate",
    "predict",
    "export",
    "serve",
    "feedback",
    "finetune",
]
HEAVY = ["tensorflow", "keras", "matplotlib", "sklearn", "streamlit"]


def test_top_level_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"digitctl {__version__}"


def test_unknown_option_is_a_usage_error() -> None:
    assert CliRunner().invoke(app, ["download", "--no-such-flag"]).exit_code == 2


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "from digitctl.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip().splitlines()[-1] == "[]"


def test_python_dash_m_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "digitctl", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == f"digitctl {__version__}"


def test_import_digitctl_is_light_and_exposes_the_python_api() -> None:
    code = (
        "import sys, digitctl\n"
        "heavy = sorted(m for m in ['numpy', *" + repr(HEAVY) + "] if m in sys.modules)\n"
        "api = [getattr(digitctl, name).__module__ for name in "
        "('read', 'load_model', 'train', 'evaluate')]\n"
        "print(heavy, api)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[] ['digitctl.api', 'digitctl.api', 'digitctl.api', 'digitctl.api']"
