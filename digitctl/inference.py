"""Predictor: runs a model's LiteRT export without TensorFlow, or the Keras file as fallback.

``load_predictor`` picks the fast path when it can: a ``.tflite`` beside the ``.keras``
(same stem, written by ``train`` and ``digitctl export``) runs in the LiteRT interpreter,
which starts in ~0.1 s and ~50 MiB instead of TensorFlow's ~2 s and ~550 MiB. Only the
Keras fallback imports TensorFlow, lazily. An ``.onnx`` file given with ``--model`` runs
in ONNX Runtime.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from digitctl import reading
from digitctl.choices import ReaderName
from digitctl.errors import DigitctlError, ImageError, ModelError, NoDigitFound
from digitctl.imaging import ImageSource, check_source, decode_page, is_image_path
from digitctl.linereader import LineModel, find_reader_model
from digitctl.modelfiles import (
    ModelCard,
    bundled_sequence_path,
    lite_path_for,
    read_card,
    resolve_model,
)
from digitctl.runners import KerasRunner, LiteRTRunner, OnnxRunner, run_batched
from digitctl.sequence import SEQUENCE_NAME

if TYPE_CHECKING:
    from digitctl.config import Settings

# One interpreter thread: readings score a few views per image, and big batches already
# keep every core busy with worker processes, each reading its share of the images.
LITERT_THREADS = 1
DECIDE_BATCH = 64  # images whose views are scored together
PARALLEL_FROM = 400  # below this many images, starting worker processes does not pay
STALE_AFTER_S = 60.0  # a .keras this much newer than its .tflite was replaced since export
T = TypeVar("T")


@dataclass
class Prediction:
    """One digit: the label, how sure the model is, and the 28×28 view it saw.

    What :meth:`Predictor.predict` returns; :meth:`Predictor.read` gives whole readings.
    """

    label: int
    confidence: float
    probabilities: list[float]
    uncertain: bool  # confidence below settings.uncertain_below
    view: np.ndarray

    def top(self, k: int = 3) -> list[tuple[int, float]]:
        order = np.argsort(self.probabilities)[::-1][:k]
        return [(int(i), float(self.probabilities[i])) for i in order]


def _softmax_if_logits(scores: np.ndarray) -> np.ndarray:
    sums = scores.sum(axis=1)
    if scores.min() >= 0 and np.allclose(sums, 1.0, atol=1e-3):
        return scores
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------
# Predictor
# --------------------------------------------------------------------------------------
class Predictor:
    """A loaded model that turns images (or ready 28×28 views) into readings.

    A model with an 11th output has a "not a digit" class (index 10); its card may carry
    a calibration ``temperature`` and the ``reject_threshold`` chosen on validation data.
    """

    def __init__(
        self,
        path: Path,
        backend: str,
        runner: Callable[[np.ndarray], np.ndarray],
        input_shape: Sequence[int],
        card: ModelCard | None = None,
        uncertain_below: float = 0.6,
        sequence_model: Path | None = None,
        line_model: Path | None = None,
        origin: str = "--model",
    ) -> None:
        self.path = path
        self.origin = origin  # where the model came from: bundled, workspace or --model
        self.backend = backend
        self.card = card
        self.uncertain_below = uncertain_below
        self._runner = runner
        self._input_shape = tuple(input_shape)
        self.temperature = float(card.temperature) if card is not None else 1.0
        self.reject_threshold = card.reject_threshold if card is not None else None
        # The sequence model that counts touching digits (digitctl.sequence): loaded when
        # a glyph first needs it, so that a single digit's cold start does not pay for it.
        self.sequence_model = sequence_model
        self._sequence_runner: LiteRTRunner | None = None
        # The line reader (digitctl.linereading): when set, images are read by it, each
        # digit's probabilities multiplied by this model's; loaded on first use.
        self.line_model = line_model
        self._line_reader: LineModel | None = None

    def __repr__(self) -> str:
        return f"Predictor(path={str(self.path)!r}, backend={self.backend!r})"

    @property
    def name(self) -> str:
        """The model's name: its card's, else its file's stem."""
        return self.card.name if self.card is not None and self.card.name else self.path.stem

    def describe(self) -> dict[str, Any]:
        """Which model answers: name, where it came from, file, runtime, and whether it can
        say "not a digit" (the ``model`` of every ``predict --json`` line)."""
        return {
            "name": self.name,
            "source": self.origin,
            "path": str(self.path),
            "backend": self.backend,
            "not_a_digit": self.rejects,
            "reader": str(self.reader),
            **({"line_model": str(self.line_model)} if self.line_model is not None else {}),
        }

    def classify(self, views: np.ndarray) -> np.ndarray:
        """(N, 28, 28) views in [0, 1] → (N, classes) calibrated probabilities.

        Ten columns for a digits-only model, eleven when the model has a "not a digit"
        class (the last column).
        """
        views = np.asarray(views, dtype=np.float32)
        if views.ndim == 2:
            views = views[None]
        count = len(views)
        if count == 0:
            return np.zeros((0, 10), dtype=np.float32)
        x = views.reshape((count, *self._input_shape))
        probabilities = _softmax_if_logits(run_batched(self._runner, x).astype(np.float32))
        if self.temperature != 1.0:
            probabilities = _tempered(probabilities, self.temperature)
        return probabilities

    def read_strips(self, strips: np.ndarray) -> np.ndarray:
        """(N, 28, 160) glyph strips → (N, steps, 11) sequence-model probabilities."""
        if self._sequence_runner is None:
            assert self.sequence_model is not None
            self._sequence_runner = LiteRTRunner(self.sequence_model, num_threads=LITERT_THREADS)
        strips = np.asarray(strips, dtype=np.float32)
        x = strips.reshape((len(strips), *self._sequence_runner.input_shape))
        return run_batched(self._sequence_runner, x)

    def predict_views(self, views: np.ndarray) -> np.ndarray:
        """(N, 28, 28) views in [0, 1] → (N, 10) probabilities over the digits only."""
        probabilities = self.classify(views)[:, :10]
        return probabilities / np.maximum(probabilities.sum(axis=1, keepdims=True), 1e-12)

    @property
    def rejects(self) -> bool:
        """Whether it can answer "not a digit": the model has the 11th class, or the line
        reader reads (reading no digit is "not a digit")."""
        return self.reject_threshold is not None or self.line_model is not None

    @property
    def reader(self) -> str:
        """What reads each image: ``rules`` (the layout rules) or ``line`` (the line reader)."""
        return ReaderName.LINE if self.line_model is not None else ReaderName.RULES

    def decide(self, drafted: reading.Draft) -> reading.Reading:
        """The reading of a draft (see :mod:`digitctl.reading`) with this model's scores."""
        return self.decide_many([drafted])[0]

    def decide_many(self, drafts: Sequence[reading.Draft]) -> list[reading.Reading]:
        """Readings of several drafts, their views scored in batches (whole glyphs, then
        the pieces that still matter)."""
        read_strips = self.read_strips if self.sequence_model is not None else None
        tables = reading.score_views(drafts, self.classify, read_strips)
        return [
            reading.decide(
                drafted,
                table,
                uncertain_below=self.uncertain_below,
                reject_above=self.reject_threshold,
            )
            for drafted, table in zip(drafts, tables, strict=True)
        ]

    def read(self, source: ImageSource) -> reading.Reading:
        """Every digit in ``source``, left to right, lines top to bottom.

        Raises ImageError when the image cannot be read; an image without digits is a
        reading with status ``no_digit`` or ``not_a_digit``.
        """
        if self.line_model is not None:
            return self._read_lines(source)
        return self.decide(_draft(source))

    def _read_lines(self, source: ImageSource) -> reading.Reading:
        from digitctl.linereading import read_image

        if self._line_reader is None:
            assert self.line_model is not None
            self._line_reader = LineModel(self.line_model, threads=LITERT_THREADS)
        grey, size, window = decode_page(source)
        return read_image(
            grey, size, self._line_reader, self.classify, self.uncertain_below, window
        )

    def read_many(
        self, sources: Iterable[ImageSource], workers: int = 1
    ) -> Iterator[reading.Reading | ImageError]:
        """Readings in input order; an unreadable image yields its ImageError instead.

        ``workers`` > 1 reads in that many forked processes, each with its own LiteRT
        interpreter (a Keras or ONNX model runs here, on the views of up to
        ``DECIDE_BATCH`` images at a time, the workers only decoding and laying out).
        A source of a type no image can be read from raises TypeError here, in order.
        """
        checked = (check_source(source) for source in sources)
        yield from self._answers(checked, workers, _forked_read, _draft_or_error)

    def _answers(
        self,
        items: Iterable[Any],
        workers: int,
        read_one: Callable[[Any], reading.Reading | ImageError],
        draft_one: Callable[[Any], reading.Draft | ImageError],
    ) -> Iterator[reading.Reading | ImageError]:
        """Readings of ``items`` in order: whole in forked workers when the model can be
        reopened there (``read_one``), else drafted there and decided here (``draft_one``)."""
        if self.line_model is not None:  # the line reader reads each image whole
            with self._forked(read_one, items, workers if self._forks_well() else 1) as done:
                yield from done
            return
        if workers > 1 and self._forks_well():
            with self._forked(read_one, items, workers) as readings:
                yield from readings
        else:
            with _mapped(draft_one, items, workers) as drafts:
                yield from self._decided(drafts)

    def _forks_well(self) -> bool:
        # TensorFlow and ONNX Runtime must not be used across fork(); an interpreter
        # made afresh in the child is safe.
        return isinstance(self._runner, LiteRTRunner)

    @contextlib.contextmanager
    def _forked(
        self, function: Callable[[Any], T], items: Iterable[Any], workers: int
    ) -> Iterator[Iterator[T]]:
        global _FORKED
        _FORKED = self
        try:
            with _mapped(function, items, workers, initializer=_forked_start) as results:
                yield results
        finally:
            _FORKED = None

    def _reading_or_error(self, source: ImageSource) -> reading.Reading | ImageError:
        try:
            return self.read(source)
        except ImageError as exc:
            return exc

    def _decided(
        self, drafts: Iterable[reading.Draft | ImageError]
    ) -> Iterator[reading.Reading | ImageError]:
        pending: list[reading.Draft | ImageError] = []

        def flush() -> Iterator[reading.Reading | ImageError]:
            ready = iter(self.decide_many([d for d in pending if isinstance(d, reading.Draft)]))
            for item in pending:
                yield item if isinstance(item, ImageError) else next(ready)
            pending.clear()

        for drafted in drafts:
            pending.append(drafted)
            if len(pending) >= DECIDE_BATCH:
                yield from flush()
        yield from flush()

    def predict(self, source: ImageSource) -> Prediction:
        """The one digit in ``source`` (the largest, if there are several).

        Raises NoDigitFound when the image holds no digit (or no digit but a letter,
        symbol or drawing, for models with a "not a digit" class).
        """
        answer = self.read(source)
        if not answer.digits:
            raise NoDigitFound(answer.reason or "no digit found")
        digit = max(answer.digits, key=lambda d: (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]))
        return Prediction(
            label=digit.label,
            confidence=digit.confidence,
            probabilities=digit.probabilities,
            uncertain=digit.uncertain,
            view=digit.view,
        )


def _tempered(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.maximum(probabilities, 1e-12)) / np.float32(temperature)
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


# The predictor that forked workers read with (set while a pool runs; see Predictor._forked).
_FORKED: Predictor | None = None


def _forked_start() -> None:
    assert _FORKED is not None
    _FORKED._runner = _FORKED._runner.reopened()  # type: ignore[attr-defined]
    if _FORKED._sequence_runner is not None:
        _FORKED._sequence_runner = _FORKED._sequence_runner.reopened()
    _FORKED._line_reader = None  # made afresh in the child when first needed


def _forked_read(source: ImageSource) -> reading.Reading | ImageError:
    assert _FORKED is not None
    return _FORKED._reading_or_error(source)


def _forked_read_input(item: PredictInput) -> reading.Reading | ImageError:
    if item.error is not None:
        return ImageError(item.error)
    return _forked_read(item.source)  # type: ignore[arg-type]


def _draft(source: ImageSource) -> reading.Draft:
    return reading.draft(*decode_page(source))


def _draft_or_error(source: ImageSource) -> reading.Draft | ImageError:
    try:
        return _draft(source)
    except ImageError as exc:
        return exc


@contextlib.contextmanager
def _mapped(
    function: Callable[[Any], T],
    items: Iterable[Any],
    workers: int,
    initializer: Callable[[], None] | None = None,
) -> Iterator[Any]:
    """``function`` over ``items``, in order: in ``workers`` forked processes when more
    than one (and forking is available; ``initializer`` runs first in each), else here."""
    pool = None
    if workers > 1:  # checked first: a one-image run should not pay for importing these
        import functools
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if "fork" in multiprocessing.get_all_start_methods():
            pool = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=functools.partial(_worker_start, initializer),
            )
    try:
        yield pool.map(function, items, chunksize=16) if pool else map(function, items)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _worker_start(then: Callable[[], None] | None) -> None:
    from digitctl.process import keep_freed_memory

    keep_freed_memory()  # a worker process is digitctl's own
    if then is not None:
        then()


def preprocess_workers(count: int) -> int:
    """How many processes should preprocess ``count`` images: one for small batches."""
    if count < PARALLEL_FROM:
        return 1
    return max(1, min(os.cpu_count() or 1, 4))


def _fresh_export(keras_path: Path) -> Path | None:
    lite = lite_path_for(keras_path)
    if not lite.exists():
        return None
    if keras_path.exists() and keras_path.stat().st_mtime - lite.stat().st_mtime > STALE_AFTER_S:
        return None  # the Keras file was replaced after the export: do not trust the export
    return lite


def load_predictor(settings: Settings | None = None, model: Path | None = None) -> Predictor:
    """The predictor for ``model`` (or the settings' / workspace / bundled model).

    Uses the model's LiteRT export when present and not older than the model, else Keras
    (safe_mode unless ``settings.unsafe_load``). ``.tflite`` and ``.onnx`` files are run
    directly.
    """
    if settings is None:
        from digitctl.config import Settings

        settings = Settings()
    path, origin = resolve_model(settings, model)
    suffix = path.suffix.lower()
    runner: LiteRTRunner | OnnxRunner | KerasRunner
    if suffix == ".tflite":
        runner, backend = LiteRTRunner(path, num_threads=LITERT_THREADS), "litert"
    elif suffix == ".onnx":
        runner, backend = OnnxRunner(path), "onnx"
    elif suffix in (".keras", ".h5"):
        lite = _fresh_export(path)
        if lite is not None:
            runner, backend = LiteRTRunner(lite, num_threads=LITERT_THREADS), "litert"
        else:
            runner = KerasRunner.from_file(path, unsafe=settings.unsafe_load, debug=settings.debug)
            backend = "keras"
    else:
        raise ModelError(
            f"{path} is not a model file digitctl can run (.keras, .h5, .tflite or .onnx)"
        )
    return Predictor(
        path=path,
        backend=backend,
        runner=runner,
        input_shape=runner.input_shape,
        card=read_card(path),
        uncertain_below=settings.uncertain_below,
        sequence_model=_sequence_model(settings),
        line_model=_line_model(settings),
        origin=origin,
    )


def _line_model(settings: Settings) -> Path | None:
    """The line reader when the settings ask for it (``reader = "line"``): the workspace's,
    else the bundled one; a ModelError when there is none."""
    if settings.reader != ReaderName.LINE:
        return None
    path = find_reader_model(settings.models_path)
    if path is None:
        raise ModelError(
            "the line reader is not installed: train it with "
            "`digitctl train --recipe reader`, or use --reader rules"
        )
    return path


def _sequence_model(settings: Settings) -> Path | None:
    """The sequence model readings count touching digits with: the workspace's (written by
    ``digitctl train --recipe sequence``), else the bundled one (None: neither exists)."""
    for path in (settings.models_path / f"{SEQUENCE_NAME}.tflite", bundled_sequence_path()):
        if path.exists():
            return path
    return None


# --------------------------------------------------------------------------------------
# inputs of `digitctl predict`
# --------------------------------------------------------------------------------------
@dataclass
class PredictInput:
    """One input as the user named it: a path, or ``-`` for stdin; ``error`` if unusable."""

    name: str
    source: ImageSource | None
    error: str | None = None


def collect_inputs(paths: Sequence[str], recursive: bool = False) -> list[PredictInput]:
    """Expand directories into the images inside them, in a stable order.

    Problems that concern one input (missing path, empty directory) become that input's
    ``error`` so the others are still answered.
    """
    items: list[PredictInput] = []
    for raw in paths:
        if raw == "-":
            data = sys.stdin.buffer.read()
            items.append(PredictInput("-", data, None if data else "stdin is empty (0 bytes)"))
            continue
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(
                p
                for p in (path.rglob("*") if recursive else path.iterdir())
                if p.is_file() and is_image_path(p)
            )
            if not found:
                hint = "" if recursive else " (use --recursive to look in subfolders)"
                items.append(PredictInput(raw, None, f"{raw}: no images in this directory{hint}"))
            items.extend(PredictInput(str(p), p) for p in found)
        elif path.exists():
            items.append(PredictInput(raw, path))
        else:
            items.append(PredictInput(raw, None, f"{raw} does not exist"))
    return items


@dataclass
class PredictOutcome:
    """One input's answer: its reading, or the one-line error that names it."""

    name: str
    reading: reading.Reading | None
    error: str | None
    model: dict[str, Any] | None = None  # Predictor.describe() of the model that answered

    @property
    def prediction(self) -> reading.Digit | None:
        """The digit when exactly one was read (what single-digit callers use)."""
        digits = self.reading.digits if self.reading is not None else []
        return digits[0] if len(digits) == 1 else None

    def as_dict(self) -> dict[str, Any]:
        """The JSON Lines record: the 0.1 keys keep their meaning for one-digit images."""
        r = self.reading
        one = self.prediction
        digits = r.digits if r is not None else []
        confidence = r.confidence if r is not None else None
        return {
            "path": self.name,
            "label": one.label if one else None,
            "confidence": round(confidence, 6) if confidence is not None else None,
            "probabilities": [round(v, 6) for v in one.probabilities] if one else None,
            "uncertain": r.uncertain if r is not None else False,
            "error": self.error,
            "text": r.text if r is not None else "",
            "digits": [d.as_dict() for d in digits],
            "status": r.status if r is not None else "error",
            "reason": (r.reason if r is not None else self.error),
            "separators": r.separators if r is not None else [],
            "model": self.model,
        }


def _with_name(name: str, error: ImageError | str) -> str:
    text = str(error)
    return text if name in text else f"{name}: {text}"


def _input_draft(item: PredictInput) -> reading.Draft | ImageError:
    if item.error is not None:
        return ImageError(item.error)
    return _draft_or_error(item.source)  # type: ignore[arg-type]


def predict_inputs(
    predictor: Predictor, items: Sequence[PredictInput], workers: int | None = None
) -> Iterator[PredictOutcome]:
    """One outcome per item, in order; each failure carries one line that names the input.

    ``workers``: processes to read in (default: :func:`preprocess_workers`)."""
    if workers is None:
        workers = preprocess_workers(sum(item.error is None for item in items))
    answers = predictor._answers(items, workers, _forked_read_input, _input_draft)
    model = predictor.describe()
    for item, answer in zip(items, answers, strict=True):
        if isinstance(answer, ImageError):
            yield PredictOutcome(item.name, None, _with_name(item.name, answer), model)
        elif answer.status == "no_digit":
            # As in 0.1, an image without ink is a failed input (exit status 1); a
            # letter or a drawing is an answer ("not a digit"), not a failure.
            error = _with_name(item.name, answer.reason or "")
            yield PredictOutcome(item.name, answer, error, model)
        else:
            yield PredictOutcome(item.name, answer, None, model)


def summary_line(outcomes: Sequence[PredictOutcome], seconds: float) -> str:
    """``12 images: 9 read, 2 not a digit, 1 error in 0.8 s (15.0 images/s)``."""
    count = len(outcomes)
    read = sum(
        o.error is None and o.reading is not None and o.reading.status == "ok" for o in outcomes
    )
    not_digit = sum(
        o.error is None and o.reading is not None and o.reading.status == "not_a_digit"
        for o in outcomes
    )
    errors = sum(o.error is not None for o in outcomes)
    rate = count / seconds if seconds > 0 else 0.0
    return (
        f"{count:,} image{'s' if count != 1 else ''}: {read:,} read, {not_digit:,} not a digit, "
        f"{errors:,} error{'s' if errors != 1 else ''} in {seconds:.1f} s ({rate:,.1f} images/s)"
    )


def save_views(outcomes: Sequence[PredictOutcome], directory: Path) -> list[Path]:
    """Write each digit's 28×28 view: ``<stem>.png`` for a one-digit input, else
    ``<stem>_digit<i>.png`` (i from 1, reading order)."""
    from PIL import Image

    from digitctl.atomic import write_with

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigitctlError(f"cannot create {directory} for --save-view: {exc.strerror}") from None
    written: list[Path] = []
    used: set[str] = set()
    for outcome in outcomes:
        digits = outcome.reading.digits if outcome.reading is not None else []
        stem = "stdin" if outcome.name == "-" else Path(outcome.name).stem
        for index, digit in enumerate(digits, start=1):
            base = stem if len(digits) == 1 else f"{stem}_digit{index}"
            name, n = f"{base}.png", 1
            while name in used:
                n += 1
                name = f"{base}_{n}.png"
            used.add(name)
            image = Image.fromarray(np.round(digit.view * 255).astype(np.uint8), "L")
            try:
                written.append(
                    write_with(directory / name, lambda tmp, im=image: im.save(tmp, "PNG"))
                )
            except OSError as exc:
                raise DigitctlError(f"cannot write {directory / name}: {exc.strerror}") from None
    return written


__all__ = [
    "DigitctlError",
    "Prediction",
    "Predictor",
    "load_predictor",
    "collect_inputs",
    "predict_inputs",
]
