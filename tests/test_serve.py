"""`digitctl serve`: the streamlit command line, settings passed by environment, the port
check, the all-interfaces warning, and a clean stop on Ctrl-C (a real server process)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from digitctl import serve as serving
from digitctl.cli import app
from digitctl.config import Settings, load_settings
from digitctl.errors import DigitctlError, ModelError

runner = CliRunner()


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    # serve only checks that the model exists; the app loads it when a page opens.
    path = tmp_path / "digits.tflite"
    path.write_bytes(b"not loaded by these tests")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---- the command line -------------------------------------------------------------------
def test_app_file_is_inside_the_installed_package() -> None:
    import digitctl

    path = serving.app_path()
    assert path.is_file()
    assert path.parent.parent == Path(digitctl.__file__).resolve().parent
    assert "st_canvas" in path.read_text(encoding="utf-8")


def test_streamlit_command_is_headless_local_and_capped() -> None:
    settings = Settings(port=8600, max_upload_mb=3)
    command = serving.streamlit_command(settings, python="/venv/bin/python")
    assert command[:5] == ["/venv/bin/python", "-m", "streamlit", "run", str(serving.app_path())]
    flags = dict(zip(command[5::2], command[6::2], strict=True))
    assert flags["--server.headless"] == "true"
    assert flags["--server.address"] == "127.0.0.1"
    assert flags["--server.port"] == "8600"
    assert flags["--server.maxUploadSize"] == "3"
    assert flags["--browser.gatherUsageStats"] == "false"


def test_environment_carries_the_settings_the_app_reads_back(
    model_file: Path, tmp_path: Path
) -> None:
    settings = Settings(uncertain_below=0.8, max_upload_mb=2, unsafe_load=True, port=9000)
    env = serving.app_environment(settings, model_file, base={"PATH": "/bin"})
    assert env["PATH"] == "/bin"
    assert env["DIGITCTL_MODEL"] == str(model_file.resolve())
    # The app resolves its settings with the same function, from this environment.
    seen = load_settings(environ=env, cwd=tmp_path)
    assert seen.model == model_file.resolve()
    assert seen.uncertain_below == 0.8
    assert seen.max_upload_mb == 2
    assert seen.unsafe_load is True
    assert seen.port == 9000
    assert seen.sources["uncertain_below"] == "environment"


def test_environment_without_a_model_drops_a_stale_one() -> None:
    env = serving.app_environment(Settings(), None, base={"DIGITCTL_MODEL": "/old.keras"})
    assert "DIGITCTL_MODEL" not in env


def test_urls_for_local_and_all_interfaces() -> None:
    assert serving.browser_url("127.0.0.1", 8501) == "http://127.0.0.1:8501"
    assert serving.browser_url("0.0.0.0", 8501) == "http://localhost:8501"
    assert serving.browser_url("::1", 8501) == "http://[::1]:8501"
    assert serving.health_url("0.0.0.0", 80) == "http://127.0.0.1:80/_stcore/health"
    assert serving.health_url("::", 80) == "http://[::1]:80/_stcore/health"


# ---- port and host checks ---------------------------------------------------------------
def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(DigitctlError, match=rf"port {port} on 127.0.0.1 is already in use"):
            serving.check_port_free("127.0.0.1", port)


def test_a_free_port_passes() -> None:
    serving.check_port_free("127.0.0.1", free_port())


def test_an_unknown_host_is_a_clear_error() -> None:
    with pytest.raises(DigitctlError, match="cannot serve on host"):
        serving.check_port_free("no-such-host.invalid", free_port())


def test_plan_warns_when_bound_to_all_interfaces(model_file: Path) -> None:
    plan = serving.plan_serve(Settings(host="0.0.0.0", port=free_port(), model=model_file))
    assert len(plan.warnings) == 1
    assert "other machines" in plan.warnings[0]
    assert plan.url.startswith("http://localhost:")


def test_plan_binds_localhost_by_default_without_warning(model_file: Path) -> None:
    port = free_port()
    plan = serving.plan_serve(Settings(port=port, model=model_file))
    assert plan.warnings == []
    assert plan.url == f"http://127.0.0.1:{port}"
    assert plan.model == model_file
    assert "--server.address" in plan.command
    assert plan.command[plan.command.index("--server.address") + 1] == "127.0.0.1"


def test_plan_fails_early_on_a_missing_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        serving.plan_serve(Settings(port=free_port(), model=tmp_path / "nope.keras"))


# ---- running and stopping (fake child process) ---------------------------------------------
class FakeProcess:
    """Stands in for the streamlit child: ``wait`` raises or returns what it is told."""

    def __init__(self, wait_effects: list[Any]) -> None:
        self.wait_effects = wait_effects
        self.signals: list[int] = []
        self.returncode: int | None = None

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        effect = self.wait_effects.pop(0) if self.wait_effects else 0
        if isinstance(effect, BaseException) or (
            isinstance(effect, type) and issubclass(effect, BaseException)
        ):
            raise effect
        self.returncode = effect
        return effect

    def send_signal(self, number: int) -> None:
        self.signals.append(number)

    def terminate(self) -> None:
        self.signals.append(signal.SIGTERM)

    def kill(self) -> None:
        self.signals.append(signal.SIGKILL)


def _plan(model_file: Path) -> serving.ServePlan:
    plan = serving.plan_serve(Settings(port=free_port(), model=model_file))
    # Nothing listens there: the health wait must give up on its own, quickly.
    return serving.ServePlan(**{**plan.__dict__, "health_url": "http://127.0.0.1:9/"})


def test_ctrl_c_stops_the_server_and_counts_as_success(model_file: Path) -> None:
    # The terminal's Ctrl-C reaches the child too; it stops within the grace period.
    child = FakeProcess([KeyboardInterrupt, 0])
    calls: list[tuple[Any, ...]] = []

    def popen(command: list[str], **kwargs: Any) -> FakeProcess:
        calls.append((command, kwargs))
        return child

    code = serving.run_server(_plan(model_file), popen=popen, ready_timeout=0.2)
    assert code == 0
    assert calls[0][1]["env"]["DIGITCTL_MODEL"] == str(model_file.resolve())
    assert child.signals == []


def test_ctrl_c_signals_a_child_that_keeps_running(model_file: Path) -> None:
    child = FakeProcess([KeyboardInterrupt, subprocess.TimeoutExpired("streamlit", 2), 0])
    code = serving.run_server(_plan(model_file), popen=lambda *a, **k: child, ready_timeout=0.2)
    assert code == 0
    assert child.signals == [signal.SIGINT]


def test_a_crashing_server_is_an_error(model_file: Path) -> None:
    child = FakeProcess([3])
    child.returncode = 3  # exited before it ever answered
    with pytest.raises(DigitctlError, match="exit status 3"):
        serving.run_server(_plan(model_file), popen=lambda *a, **k: child, ready_timeout=0.2)


# ---- the CLI command ------------------------------------------------------------------------
def test_cli_passes_flags_through_and_warns(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_run(plan: serving.ServePlan, **kwargs: Any) -> int:
        seen["plan"], seen["kwargs"] = plan, kwargs
        kwargs["on_ready"](plan.url)
        return 0

    monkeypatch.setattr(serving, "run_server", fake_run)
    port = free_port()
    result = runner.invoke(
        app,
        ["serve", "--host", "0.0.0.0", "--port", str(port), "--model", str(model_file), "--open"],
    )
    assert result.exit_code == 0, result.output
    plan = seen["plan"]
    assert plan.command[plan.command.index("--server.port") + 1] == str(port)
    assert plan.command[plan.command.index("--server.address") + 1] == "0.0.0.0"
    assert plan.env["DIGITCTL_MODEL"] == str(model_file.resolve())
    assert seen["kwargs"]["open_browser"] is True
    assert "Warning:" in result.stderr and "other machines" in result.stderr
    assert f"http://localhost:{port}" in result.stderr
    assert result.stdout == ""


def test_cli_defaults_to_localhost_and_no_browser(
    model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(
        serving, "run_server", lambda plan, **kw: seen.update(plan=plan, kw=kw) or 0
    )
    monkeypatch.setenv("DIGITCTL_PORT", str(free_port()))  # the environment layer applies
    result = runner.invoke(app, ["serve", "--model", str(model_file)])
    assert result.exit_code == 0, result.output
    assert seen["plan"].command[seen["plan"].command.index("--server.address") + 1] == "127.0.0.1"
    assert (
        seen["plan"].command[seen["plan"].command.index("--server.port") + 1]
        == os.environ["DIGITCTL_PORT"]
    )
    assert seen["kw"]["open_browser"] is False
    assert "Warning" not in result.stderr


def test_cli_port_in_use_is_one_red_line(model_file: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = runner.invoke(app, ["serve", "--port", str(port), "--model", str(model_file)])
    assert result.exit_code == 1
    assert f"Error: port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "--port" in result.stderr
    assert "Traceback" not in result.output


def test_cli_rejects_a_bad_port() -> None:
    result = runner.invoke(app, ["serve", "--port", "70000"])
    assert result.exit_code == 2
    assert "port" in result.stderr


def test_importing_the_cli_and_serve_does_not_import_streamlit() -> None:
    code = (
        "import sys, digitctl.cli, digitctl.serve; "
        "print(sorted(m for m in ('streamlit', 'tensorflow', 'streamlit_drawable_canvas') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- a real server ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "whole_group", [True, False], ids=["terminal-ctrl-c", "sigint-to-digitctl"]
)
def test_real_server_answers_and_stops_cleanly_on_ctrl_c(
    model_file: Path, tmp_path: Path, whole_group: bool
) -> None:
    # A terminal's Ctrl-C signals the whole process group (digitctl and streamlit); a
    # supervisor may signal digitctl alone, which must then stop its child.
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGITCTL_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "digitctl",
            "serve",
            "--port",
            str(port),
            "--model",
            str(model_file),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert serving.wait_until_healthy(
            f"http://127.0.0.1:{port}/_stcore/health", process, timeout=60
        ), process.communicate()[1].decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health") as response:
            assert response.read() == b"ok"
        time.sleep(0.5)  # the ready message follows the health check
    finally:
        if whole_group:
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGINT)
        try:
            out, err = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
    text = err.decode()
    assert process.returncode == 0, text
    assert "Traceback" not in text
    assert f"http://127.0.0.1:{port}" in text
    assert "Server stopped." in text
    assert out.decode() == ""  # streamlit's own output goes to stderr too
    # Nothing is left listening on the port.
    serving.check_port_free("127.0.0.1", port)
