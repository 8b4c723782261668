"""download against a real HTTP server on 127.0.0.1 that misbehaves in every usual way."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digitctl import data
from digitctl.cli import app
from digitctl.config import Settings
from digitctl.errors import DownloadError


class _Handler(BaseHTTPRequestHandler):
    """``/<behaviour>/<file>`` where behaviour is ok, 404, 500, truncated, wrong or stall."""

    folder: Path

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        _, behaviour, name = self.path.split("/", 2)
        body = (self.folder / name).read_bytes() if (self.folder / name).is_file() else b""
        if behaviour == "404" or not body:
            self.send_error(404)
            return
        if behaviour == "500":
            self.send_error(500)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if behaviour == "ok":
            self.wfile.write(body)
        elif behaviour == "wrong":
            self.wfile.write(bytes(len(body)))
        elif behaviour == "truncated":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif behaviour == "stall":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            time.sleep(3)


@pytest.fixture
def server(mnist_mirror: Path) -> Iterator[str]:
    handler = type("Handler", (_Handler,), {"folder": mnist_mirror})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def fixture_is_official(monkeypatch: pytest.MonkeyPatch, mnist_mirror: Path) -> None:
    """Pretend the fixture archives are the official ones, so the strict path is tested."""
    for name in data.MNIST_FILES:
        monkeypatch.setitem(data.OFFICIAL_SHA256, name, data.sha256_of(mnist_mirror / name))


def _settings(workspace: Path, **changes: object) -> Settings:
    return Settings(
        workspace=workspace, cache_dir=workspace / "cache", download_timeout=0.5, **changes
    )


def _leftovers(directory: Path) -> list[str]:
    if not directory.exists():
        return []
    return sorted(p.name for p in directory.iterdir())


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_every_failure_recovers_from_the_next_mirror(
    server: str, workspace: Path, fixture_is_official: None
) -> None:
    mirrors = [f"{server}/{b}/" for b in ("404", "500", "truncated", "wrong", "stall", "ok")]
    result = data.download_mnist(_settings(workspace), mirrors=mirrors)
    assert [f.status for f in result.files] == ["downloaded"] * 4
    assert all(f.check == data.CHECK_OFFICIAL for f in result.files)
    assert all(f.source.startswith(f"{server}/ok/") for f in result.files)
    names = _leftovers(result.directory)
    assert sorted(n for n in names if not n.endswith(".verified.json")) == sorted(data.MNIST_FILES)


@pytest.mark.parametrize("behaviour", ["404", "500", "truncated", "wrong", "stall"])
def test_a_failing_only_mirror_is_a_clear_error_with_no_partial_file(
    server: str, workspace: Path, fixture_is_official: None, behaviour: str
) -> None:
    settings = _settings(workspace)
    with pytest.raises(DownloadError) as caught:
        data.download_mnist(settings, mirrors=[f"{server}/{behaviour}/"])
    message = str(caught.value)
    assert f"{server}/{behaviour}/" in message and "--mirror" in message
    expected_reason = {
        "404": "HTTP 404",
        "500": "HTTP 500",
        "truncated": "truncated",
        "wrong": "checksum mismatch",
        "stall": "stalled",
    }[behaviour]
    assert expected_reason in message
    assert _leftovers(settings.raw_data_path) == []


def test_offline_cli_names_the_mirrors_and_suggests_mirror(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = [_closed_port_url(), _closed_port_url()]
    monkeypatch.setattr(data, "PUBLIC_MIRRORS", tuple(dead))
    result = CliRunner().invoke(app, ["--cache-dir", str(workspace / "cache"), "download"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert dead[0] in result.output and dead[1] in result.output
    assert "--mirror" in result.output
    assert _leftovers(workspace / "cache" / "mnist") == []


def test_a_user_mirror_url_with_unofficial_files_is_checked_by_structure(
    server: str, workspace: Path
) -> None:
    result = data.download_mnist(_settings(workspace, mirror=f"{server}/ok/"))
    assert all(f.check == data.CHECK_STRUCTURE for f in result.files)


def test_a_truncated_user_mirror_fails_without_a_partial_file(server: str, workspace: Path) -> None:
    settings = _settings(workspace, mirror=f"{server}/truncated/")
    with pytest.raises(DownloadError, match="truncated"):
        data.download_mnist(settings)
    assert _leftovers(settings.raw_data_path) == []


def test_a_folder_mirror_is_copied_then_cached_and_a_tampered_copy_is_refetched(
    mnist_mirror: Path, workspace: Path
) -> None:
    settings = _settings(workspace, mirror=str(mnist_mirror))
    first = data.download_mnist(settings)
    assert [f.status for f in first.files] == ["copied"] * 4
    again = data.download_mnist(settings)
    assert [f.status for f in again.files] == ["cached"] * 4
    (settings.raw_data_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    third = data.download_mnist(settings)
    assert [f.status for f in third.files] == ["cached", "cached", "cached", "copied"]


def test_a_folder_mirror_with_a_corrupt_file_names_it(tmp_path: Path, workspace: Path) -> None:
    from conftest import build_mnist_folder

    folder = build_mnist_folder(tmp_path / "bad")
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(DownloadError, match="train-labels-idx1-ubyte.gz"):
        data.download_mnist(_settings(workspace, mirror=str(folder)))


def test_download_json_output(mnist_mirror: Path, workspace: Path) -> None:
    import json

    result = CliRunner().invoke(
        app,
        [
            "--cache-dir",
            str(workspace / "cache"),
            "download",
            "--mirror",
            str(mnist_mirror),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert {f["name"] for f in document["files"]} == set(data.MNIST_FILES)
    assert {f["status"] for f in document["files"]} == {"copied"}
