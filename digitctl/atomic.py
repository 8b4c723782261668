"""Atomic file writes: a crash never leaves a half-written file behind.

Every writer puts its bytes in a temporary file in the target's directory and moves it
over the target with ``os.replace``, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    For libraries that insist on writing to a path themselves (Keras, matplotlib, numpy).
    The temporary name keeps the target's suffix because some of them dispatch on it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}"
    )
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the file the permissions a plain open() would have.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``target`` when closed cleanly."""
    with atomic_path(target) as tmp, open(tmp, mode) as handle:
        yield handle
        handle.flush()


def write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_open(target, "wb") as handle:
        handle.write(data)
    return Path(target)


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike[str], document: Any) -> Path:
    return write_text(target, json.dumps(document, indent=2, sort_keys=False, default=str) + "\n")


def write_with(target: str | os.PathLike[str], writer: Callable[[Path], object]) -> Path:
    """Call ``writer(tmp_path)`` and move the result over ``target`` atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def _fsync_path(path: Path) -> None:
    # A file that was renamed into place before its data reached the disk can show up
    # empty after a power loss; fsync closes that window.
    if path.is_dir():
        return
    with contextlib.suppress(OSError), open(path, "rb+") as handle:
        os.fsync(handle.fileno())
