"""Batch reading: many images into JSON Lines shards, resumable, here or on a cluster.

The inputs (files, folders, globs, manifests) are split into shards of ``shard_size``
inputs that have no answer yet. Each shard is read as one task, in this process
(``engine="local"``) or on a Dask cluster (``engine="dask"``, :mod:`digitctl.cluster`),
and written as ``<out>/part-NNNNNN.jsonl`` in one atomic step when its answers arrive:
a shard file is whole or absent. Each line is exactly the line ``digitctl predict
--json`` writes for that input. A rerun reads the paths already in the shards and reads
only the other inputs, so an interrupted job (Ctrl-C, a killed driver or worker) finishes
without answering an input twice or losing one.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from digitctl.atomic import write_text
from digitctl.choices import Engine, choose
from digitctl.errors import ConfigError, DigitctlError

if TYPE_CHECKING:
    from digitctl.config import Settings
    from digitctl.inference import PredictInput, Predictor

SHARD_SIZE = 500  # inputs a task reads: a few seconds of one worker, the most a crash loses
SHARD_PATTERN = re.compile(r"part-(\d{6,})\.jsonl")
MANIFEST_SUFFIXES = (".txt", ".csv", ".lst")


@dataclass
class BatchProgress:
    """Where a batch stands after a shard: images answered of the total, errors so far."""

    done: int
    total: int
    errors: int
    seconds: float
    new_errors: list[str] = field(default_factory=list)  # the shard's error lines

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BatchSummary:
    """What a batch run did. ``answered``/``errors`` count this run; ``*_before`` what the
    output folder already held; ``startup_seconds`` the engine's start (0 for local)."""

    out: Path
    engine: str
    workers: int
    total: int
    answered_before: int
    answered: int
    errors_before: int
    errors: int
    shards: int
    seconds: float
    startup_seconds: float

    @property
    def images_per_second(self) -> float:
        reading = self.seconds - self.startup_seconds
        return self.answered / reading if reading > 0 else 0.0

    @property
    def complete(self) -> bool:
        return self.answered_before + self.answered >= self.total

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "engine": self.engine,
            "workers": self.workers,
            "total": self.total,
            "answered_before": self.answered_before,
            "answered": self.answered,
            "errors_before": self.errors_before,
            "errors": self.errors,
            "shards": self.shards,
            "seconds": round(self.seconds, 3),
            "startup_seconds": round(self.startup_seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
        }


@dataclass
class ShardAnswers:
    """One shard's JSON lines (each ending in a newline) and its error messages."""

    lines: list[str]
    errors: list[str]


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------
def expand_paths(paths: Sequence[str]) -> list[str]:
    """Globs and manifests replaced by the paths they name; files and folders unchanged.

    A manifest is a ``.txt``/``.lst`` file (one path a line, ``#`` comments) or a ``.csv``
    (the ``path`` column if the header has one, else the first column). Relative paths in
    a manifest are relative to its folder. A glob that matches nothing stays as it is, so
    that it is answered "does not exist".
    """
    expanded: list[str] = []
    for raw in paths:
        if raw == "-":
            raise ConfigError("a batch cannot read stdin (-): save the image to a file")
        path = Path(raw).expanduser()
        if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            expanded.extend(read_manifest(path))
        elif not path.exists() and any(c in raw for c in "*?["):
            expanded.extend(sorted(glob.glob(os.path.expanduser(raw), recursive=True)) or [raw])
        else:
            expanded.append(raw)
    return expanded


def read_manifest(path: Path) -> list[str]:
    """The paths a manifest names (see :func:`expand_paths`)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the manifest {path}: {exc}") from None
    if path.suffix.lower() == ".csv":
        rows = [row for row in csv.reader(text.splitlines()) if row and row[0].strip()]
        header = [cell.strip().lower() for cell in rows[0]] if rows else []
        column = header.index("path") if "path" in header else 0
        entries = [row[column].strip() for row in rows[1 if "path" in header else 0 :]]
    else:
        entries = [line.strip() for line in text.splitlines()]
        entries = [e for e in entries if e and not e.startswith("#")]
    folder = path.parent
    return [e if Path(e).expanduser().is_absolute() else str(folder / e) for e in entries]


def batch_inputs(paths: Sequence[str], recursive: bool = False) -> list[PredictInput]:
    """Every input once, in a stable order (as ``predict`` names them)."""
    from digitctl.inference import collect_inputs

    seen: set[str] = set()
    unique = []
    for item in collect_inputs(expand_paths(paths), recursive=recursive):
        if item.name not in seen:
            seen.add(item.name)
            unique.append(item)
    return unique


# --------------------------------------------------------------------------------------
# the output folder
# --------------------------------------------------------------------------------------
def shard_path(out: Path, index: int) -> Path:
    return out / f"part-{index:06d}.jsonl"


@dataclass
class Answered:
    """What an output folder already holds: the paths answered, errors, next shard index."""

    paths: set[str]
    errors: int
    next_index: int


def answered_in(out: Path) -> Answered:
    """Read the shards in ``out`` (none yet: an empty record)."""
    paths: set[str] = set()
    errors, last = 0, -1
    if not out.is_dir():
        return Answered(paths, 0, 0)
    for shard in sorted(out.iterdir()):
        match = SHARD_PATTERN.fullmatch(shard.name)
        if match is None:
            continue
        last = max(last, int(match.group(1)))
        with shard.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    record = json.loads(line)
                    paths.add(record["path"])
                except (ValueError, KeyError, TypeError):
                    raise DigitctlError(
                        f"{shard}:{number} is not an answer line; remove that file to read its "
                        "inputs again"
                    ) from None
                errors += record.get("error") is not None
    return Answered(paths, errors, last + 1)


def read_shard(
    predictor: Predictor, items: Sequence[PredictInput], workers: int | None = None
) -> ShardAnswers:
    """The ``predict --json`` lines of ``items``, in order (the work of one task)."""
    from digitctl.inference import predict_inputs

    lines, errors = [], []
    for outcome in predict_inputs(predictor, items, workers=workers):
        lines.append(json.dumps(outcome.as_dict(), default=str) + "\n")
        if outcome.error is not None:
            errors.append(outcome.error)
    return ShardAnswers(lines, errors)


def _shards(items: list[PredictInput], size: int, first: int) -> Iterator[tuple[int, list]]:
    for number, start in enumerate(range(0, len(items), size)):
        yield first + number, items[start : start + size]


# --------------------------------------------------------------------------------------
# the job
# --------------------------------------------------------------------------------------
def read_batch(
    paths: Sequence[str],
    out: str | os.PathLike[str],
    *,
    settings: Settings | None = None,
    engine: str = "local",
    workers: int | None = None,
    shard_size: int = SHARD_SIZE,
    recursive: bool = False,
    on_progress: Callable[[BatchProgress], None] | None = None,
) -> BatchSummary:
    """Answer every input that ``out`` has no answer for yet, one shard file per task.

    ``engine``: ``local`` (this process and its forked workers) or ``dask``: the cluster
    at ``settings.cluster_address``, else a local cluster of ``workers`` processes (default:
    one per core) on 127.0.0.1. ``on_progress`` is called after each shard is written.
    """
    from digitctl.config import Settings
    from digitctl.modelfiles import resolve_model_path

    chosen = choose(Engine, engine, "engine")
    if shard_size < 1:
        raise ConfigError(f"shard size must be at least 1, got {shard_size}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    settings = settings if settings is not None else Settings()
    model = resolve_model_path(settings)  # a missing model fails here, before any work
    out = Path(out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigitctlError(f"cannot create the output folder {out}: {exc.strerror}") from None
    started = time.perf_counter()
    items = batch_inputs(paths, recursive=recursive)
    before = answered_in(out)
    todo = [item for item in items if item.name not in before.paths]
    shards = _shards(todo, shard_size, before.next_index)
    total, done, errors, written = len(items), len(items) - len(todo), 0, 0

    def store(index: int, answers: ShardAnswers) -> None:
        nonlocal done, errors, written
        write_text(shard_path(out, index), "".join(answers.lines))
        done += len(answers.lines)
        errors += len(answers.errors)
        written += 1
        if on_progress is not None:
            elapsed = time.perf_counter() - started
            on_progress(BatchProgress(done, total, before.errors + errors, elapsed, answers.errors))

    if on_progress is not None:
        on_progress(BatchProgress(done, total, before.errors, 0.0))
    startup, used = 0.0, 1
    if chosen is Engine.DASK and todo:
        from digitctl import cluster

        portable = settings.with_overrides(
            workspace=settings.workspace_dir.resolve(), model=model.resolve()
        )
        with cluster.dask_client(settings.cluster_address, workers) as (client, startup):
            used = cluster.worker_count(client)
            for index, answers in cluster.read_shards(client, portable, shards):
                store(index, answers)
            seconds = time.perf_counter() - started  # the cluster's shutdown is not reading
    elif todo:
        from digitctl.inference import load_predictor, preprocess_workers

        predictor = load_predictor(settings)
        used = workers or preprocess_workers(min(shard_size, len(todo)))
        for index, chunk in shards:
            store(index, read_shard(predictor, chunk, workers=workers))
    if chosen is not Engine.DASK or not todo:
        seconds = time.perf_counter() - started
    return BatchSummary(
        out=out,
        engine=str(chosen),
        workers=used,
        total=total,
        answered_before=len(items) - len(todo),
        answered=done - (len(items) - len(todo)),
        errors_before=before.errors,
        errors=errors,
        shards=written,
        seconds=seconds,
        startup_seconds=startup,
    )


def iter_answers(out: str | os.PathLike[str]) -> Iterable[dict[str, Any]]:
    """Every answer line in ``out``'s shards, shard by shard (for reading results back)."""
    for shard in sorted(Path(out).glob("part-*.jsonl")):
        with shard.open(encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)
