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
HEAVY = ["tensorflow", "keras", "matplotlib", "sklearn", "streamlit", "distributed"]


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


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["predict", "a.png", "--json"], "predict"),
        (["--workspace", "predict", "--debug", "train", "--epochs", "1"], "train"),
        (["--config=x.toml", "config", "--json"], "config"),
    ],
)
def test_one_command_is_built_alone(argv: list[str], command: str) -> None:
    from digitctl.cli import _app_for

    alone = _app_for(argv)
    names = [c.name or c.callback.__name__ for c in alone.registered_commands]
    assert len(names) == 1 and names[0].startswith(command)
    assert alone.registered_callback is app.registered_callback
    assert len(app.registered_commands) > 1  # the app itself is untouched


@pytest.mark.parametrize("argv", [[], ["--help"], ["feedback", "list"], ["nosuch"]])
def test_groups_help_and_unknown_names_get_the_whole_app(argv: list[str]) -> None:
    from digitctl.cli import _app_for

    assert _app_for(argv) is app


def test_a_command_alone_keeps_the_top_level_options(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "digitctl", "--workspace", str(tmp_path), "config", "--json"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert str(tmp_path) in result.stdout


def test_predict_json_imports_no_rich(tmp_path) -> None:
    # Rich costs ~45 ms of the cold start; a --json answer with no message needs none of it.
    import numpy as np
    from PIL import Image

    image = np.full((60, 60), 240, np.uint8)
    image[10:50, 27:33] = 20
    Image.fromarray(image).save(tmp_path / "one.png")
    code = (
        "import sys\n"
        f"sys.argv = ['digitctl', 'predict', {str(tmp_path / 'one.png')!r}, '--json']\n"
        "from digitctl.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = result.stdout.strip().splitlines()
    assert '"label": 1' in lines[0], result.stderr
    assert lines[-1] == "[]"
