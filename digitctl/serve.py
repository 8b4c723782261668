"""Run the bundled Streamlit app as a child process: ``digitctl serve``.

:func:`plan_serve` turns the settings into everything the launch needs (the streamlit
command line, the environment that carries the settings to the app, the URL, warnings)
and checks the port; :func:`run_server` starts the child, waits until it answers its
health check and stops it cleanly on Ctrl-C. Neither prints: the CLI presents the plan
and the callbacks' messages. Streamlit itself is imported only by the child process.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitctl.config import ENV_PREFIX, Settings
from digitctl.errors import DigitctlError
from digitctl.modelfiles import bundled_model_path, resolve_model_path

APP_FILE = Path(__file__).resolve().parent / "app" / "streamlit_app.py"
ALL_INTERFACES = {"0.0.0.0", "::", ""}
# Settings the app reads (through load_settings in its own process).
_APP_SETTINGS = (
    "uncertain_below",
    "unsafe_load",
    "max_upload_mb",
    "host",
    "port",
    "debug",
    "reader",
)
# How long a stopping server gets before it is terminated, then killed.
STOP_GRACE_S = 10.0


@dataclass(frozen=True)
class ServePlan:
    """Everything needed to start the app; built by :func:`plan_serve`."""

    command: list[str]
    env: dict[str, str]  # the full environment of the child process
    url: str  # what a person opens in a browser
    health_url: str  # what digitctl polls to know the server is up
    model: Path
    warnings: list[str] = field(default_factory=list)


def app_path() -> Path:
    """The Streamlit script shipped inside the installed package."""
    return APP_FILE


def is_all_interfaces(host: str) -> bool:
    return host.strip() in ALL_INTERFACES


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def browser_url(host: str, port: int) -> str:
    """The URL to open: localhost when bound to every interface."""
    if is_all_interfaces(host):
        return f"http://localhost:{port}"
    return f"http://{_url_host(host)}:{port}"


def health_url(host: str, port: int) -> str:
    if host.strip() in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host.strip() == "::":
        host = "::1"
    return f"http://{_url_host(host)}:{port}/_stcore/health"


def streamlit_command(
    settings: Settings, python: str | None = None, script: Path | None = None
) -> list[str]:
    """``python -m streamlit run <app> ...`` with the flags that make it a local server."""
    return [
        python or sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script or app_path()),
        "--server.headless",
        "true",
        "--server.address",
        settings.host,
        "--server.port",
        str(settings.port),
        "--server.maxUploadSize",
        str(settings.max_upload_mb),
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "viewer",
        "--browser.gatherUsageStats",
        "false",
    ]


def app_environment(
    settings: Settings, model: Path | None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The child's environment: ``base`` plus ``DIGITCTL_*`` variables carrying the settings.

    The app resolves its settings with the same ``load_settings`` as the CLI, and the
    environment beats any ``digitctl.toml``, so the app sees what the command resolved.
    ``model`` None leaves the model to the app's own resolution (the bundled one).
    """
    env = dict(os.environ if base is None else base)
    for name in _APP_SETTINGS:
        value = getattr(settings, name)
        env[ENV_PREFIX + name.upper()] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    if model is not None:
        env[ENV_PREFIX + "MODEL"] = str(model.resolve())
    else:
        env.pop(ENV_PREFIX + "MODEL", None)
    # Where the workspace's model appears (after `digitctl finetune`, say) and where the
    # app's corrections go, as absolute paths: the app's working directory may differ.
    env[ENV_PREFIX + "MODELS_DIR"] = str(settings.models_path.resolve())
    env[ENV_PREFIX + "FEEDBACK_DIR"] = str(settings.feedback_path.resolve())
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    return env


def check_port_free(host: str, port: int) -> None:
    """Raise DigitctlError unless ``host:port`` can be bound now, the way Streamlit binds it
    (IPv6 when the address has a colon, SO_REUSEADDR except on Windows)."""
    address = host.strip() or "0.0.0.0"
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        if os.name != "nt":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        try:
            probe.bind((address, port))
        except socket.gaierror as exc:
            raise DigitctlError(
                f"cannot serve on host {host!r}: {exc.strerror}; use a name or IP address of "
                "this machine, e.g. --host 127.0.0.1"
            ) from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise DigitctlError(
                    f"port {port} on {host} is already in use; stop the other server or pick "
                    f"another port with --port (e.g. --port {port + 1 if port < 65535 else 8502})"
                ) from None
            if exc.errno == errno.EACCES:
                raise DigitctlError(
                    f"port {port} on {host} needs special permissions; use a port above 1023 "
                    "with --port (e.g. --port 8501)"
                ) from None
            raise DigitctlError(
                f"cannot serve on {host}:{port}: {exc.strerror}; check --host"
            ) from None


def plan_serve(settings: Settings) -> ServePlan:
    """Resolve the model, check the port and build the command; start nothing."""
    model = resolve_model_path(settings)
    bundled = settings.model is None and model == bundled_model_path()
    check_port_free(settings.host, settings.port)
    warnings = []
    if is_all_interfaces(settings.host):
        warnings.append(
            f"--host {settings.host} makes the app reachable from other machines on the "
            "network, and it has no authentication; use --host 127.0.0.1 to keep it local"
        )
    return ServePlan(
        command=streamlit_command(settings),
        # The bundled model is not pinned: a workspace model written while the app runs
        # (`digitctl train`, `digitctl finetune`) is picked up on the next rerun.
        env=app_environment(settings, model if model.exists() and not bundled else None),
        url=browser_url(settings.host, settings.port),
        health_url=health_url(settings.host, settings.port),
        model=model,
        warnings=warnings,
    )


def wait_until_healthy(
    url: str, process: subprocess.Popen[Any] | None = None, timeout: float = 60.0
) -> bool:
    """Poll Streamlit's health endpoint; False on timeout or when ``process`` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.1)
    return False


class _Terminated(Exception):
    """SIGTERM reached digitctl while the server ran."""


def _stop(process: subprocess.Popen[Any], already_signalled: bool) -> None:
    """Ask the server to stop like Ctrl-C does, then insist."""
    try:
        if already_signalled:
            # A terminal's Ctrl-C reaches the whole process group: give the child a
            # moment to stop on its own before signalling it again.
            process.wait(timeout=2)
            return
    except subprocess.TimeoutExpired:
        pass
    for stop in (
        lambda: process.send_signal(signal.SIGINT),
        process.terminate,
        process.kill,
    ):
        if process.poll() is not None:
            return
        try:
            stop()
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=STOP_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue


def run_server(
    plan: ServePlan,
    *,
    open_browser: bool = False,
    on_ready: Callable[[str], None] | None = None,
    ready_timeout: float = 60.0,
    popen: Callable[..., subprocess.Popen[Any]] = subprocess.Popen,
) -> int:
    """Run the app until it exits or the user presses Ctrl-C; return the exit status.

    Ctrl-C (or SIGTERM to digitctl) stops the server and counts as success (0). The
    child's output goes to our stderr so stdout stays clean. A server that exits on its
    own with a non-zero status raises DigitctlError.
    """
    try:
        stdout: Any = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        stdout = None
    previous_term = None
    in_main_thread = _in_main_thread()
    if in_main_thread:

        def on_term(signum: int, frame: Any) -> None:  # noqa: ARG001
            raise _Terminated

        previous_term = signal.signal(signal.SIGTERM, on_term)
    process = None
    try:
        process = popen(plan.command, env=plan.env, stdout=stdout)
        if wait_until_healthy(plan.health_url, process, ready_timeout):
            if on_ready is not None:
                on_ready(plan.url)
            if open_browser:
                import webbrowser

                webbrowser.open(plan.url)
        code = process.wait()
    except KeyboardInterrupt:
        if process is not None:
            _stop(process, already_signalled=True)
        return 0
    except _Terminated:
        if process is not None:
            _stop(process, already_signalled=False)
        return 0
    finally:
        if in_main_thread:
            signal.signal(
                signal.SIGTERM, previous_term if previous_term is not None else signal.SIG_DFL
            )
    # Streamlit exits 0 after its own SIGINT/SIGTERM handler stopped it.
    if code not in (0, -signal.SIGINT, -signal.SIGTERM):
        raise DigitctlError(
            f"the Streamlit server stopped with exit status {code}; its messages are above"
        )
    return 0


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()
