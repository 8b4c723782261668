"""The feedback store: corrected samples that ``digitctl finetune`` learns from.

Layout of ``settings.feedback_path`` (``<workspace>/feedback`` by default)::

    samples/<id>.json        the record: true label, the model's answer, time, file names
    samples/<id>.<ext>       the original image bytes, exactly as given
    samples/<id>.view.png    the 28×28 view the model saw (digitctl.imaging.to_mnist)

``<id>`` is the start of the SHA-256 of the original bytes, so the same image is stored
once however often (and by whomever) it is added. There is no shared index file that
writers would have to agree on: each sample is its own files, written atomically, and the
record is written last, so a sample is visible only once its image and view are in place.
A new record is created with a hard link, which fails when the record exists: of several
processes adding the same image at once, exactly one reports it as added. ``clear``
renames the folder away before deleting it, so a reader sees all samples or none.

Only NumPy and Pillow: no TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitctl.atomic import write_bytes
from digitctl.errors import DigitctlError, ImageError
from digitctl.robust import NOT_A_DIGIT

if TYPE_CHECKING:
    from digitctl.config import Settings
    from digitctl.inference import Predictor
    from digitctl.reading import Reading

SAMPLES_DIR = "samples"
ID_LENGTH = 24  # hex digits of the SHA-256: 96 bits, collisions are not a concern
RECORD_VERSION = 1
LABELS = range(10)

ADDED, DUPLICATE, RELABELLED, FAILED = "added", "duplicate", "relabelled", "failed"


@dataclass(frozen=True)
class FeedbackSample:
    """One stored correction."""

    id: str
    label: int  # the true digit, as the user said
    # What the model answered when the sample was added: the digit it read, or
    # NOT_A_DIGIT (10) when its answer was not one digit ("not a digit", nothing found,
    # several digits); None when unknown.
    predicted: int | None
    created: str  # ISO 8601, UTC
    image_file: str  # the original bytes, in the samples folder
    view_file: str  # the 28×28 view, in the samples folder
    source: str = ""  # where it came from (a file name, "app")
    version: int = RECORD_VERSION

    @property
    def misread(self) -> bool:
        """Whether the model's answer was not the labelled digit ("not a digit" is wrong)."""
        return self.predicted is not None and self.predicted != self.label

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AddOutcome:
    """What happened to one input of :func:`add_images`."""

    name: str
    status: str  # added, duplicate, relabelled or failed
    sample: FeedbackSample | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": self.name,
            "status": self.status,
            "id": self.sample.id if self.sample else None,
            "label": self.sample.label if self.sample else None,
            "predicted": self.sample.predicted if self.sample else None,
            "error": self.error,
        }


@dataclass
class FeedbackSummary:
    """How many corrections are stored, per digit, and where."""

    directory: Path
    counts: dict[int, int]
    misread: dict[int, int] = field(default_factory=dict)  # of those, the model got wrong

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "total": self.total,
            "counts": {str(d): n for d, n in sorted(self.counts.items())},
            "misread": {str(d): n for d, n in sorted(self.misread.items())},
        }


def image_id(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:ID_LENGTH]


def _check_label(label: int) -> int:
    if isinstance(label, bool) or int(label) != label or int(label) not in LABELS:
        raise DigitctlError(f"the label must be a digit 0-9, got {label!r}")
    return int(label)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FeedbackStore:
    """The corrections in one folder; safe to use from several processes at once."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    @classmethod
    def for_settings(cls, settings: Settings) -> FeedbackStore:
        return cls(settings.feedback_path)

    @property
    def samples_path(self) -> Path:
        return self.directory / SAMPLES_DIR

    def __repr__(self) -> str:
        return f"FeedbackStore({str(self.directory)!r})"

    # ---- writing -----------------------------------------------------------------------
    def add(
        self,
        data: bytes,
        label: int,
        predicted: int | None = None,
        view: np.ndarray | None = None,
        source: str = "",
    ) -> AddOutcome:
        """Store ``data`` (an encoded image) as a sample of ``label``.

        ``view`` is the 28×28 view in [0, 1]; computed with ``to_mnist`` when not given.
        Raises ImageError for bytes that are not a readable digit image. The same bytes
        again are a duplicate (or, with another label, relabelled: the latest word wins).
        """
        label = _check_label(label)
        if not data:
            raise ImageError(f"{source or 'the image'} is empty (0 bytes)")
        if view is None:
            from digitctl.imaging import to_mnist

            view = to_mnist(data)
        ext = _extension(data)
        sample_id = image_id(data)
        sample = FeedbackSample(
            id=sample_id,
            label=label,
            predicted=None if predicted is None else int(predicted),
            created=_now(),
            image_file=f"{sample_id}{ext}",
            view_file=f"{sample_id}.view.png",
            source=source,
        )
        folder = self.samples_path
        try:
            folder.mkdir(parents=True, exist_ok=True)
            existing = self._read_record(folder / f"{sample_id}.json")
            if existing is not None and existing.label == label:
                return AddOutcome(source, DUPLICATE, existing)
            # Bytes first, record last: a record never points at files that are not there.
            # Rewriting identical bytes over a concurrent writer's copy is harmless.
            write_bytes(folder / sample.image_file, data)
            write_bytes(folder / sample.view_file, view_png(view))
            record = (json.dumps(sample.as_dict(), indent=1) + "\n").encode("utf-8")
            if existing is None:
                if _create_exclusive(folder / f"{sample_id}.json", record):
                    return AddOutcome(source, ADDED, sample)
                existing = self._read_record(folder / f"{sample_id}.json")
                if existing is not None and existing.label == label:
                    return AddOutcome(source, DUPLICATE, existing)
            write_bytes(folder / f"{sample_id}.json", record)
            return AddOutcome(source, RELABELLED, sample)
        except OSError as exc:
            raise DigitctlError(
                f"cannot write to the feedback folder {self.directory}: {exc.strerror or exc}; "
                "check its permissions or set feedback_dir"
            ) from None

    def clear(self) -> int:
        """Delete every sample; return how many there were."""
        count = len(self.samples())
        folder = self.samples_path
        if not folder.exists():
            return count
        # Renamed away first: readers never see a half-deleted store.
        trash = self.directory / f".deleted-{uuid.uuid4().hex}"
        try:
            os.replace(folder, trash)
        except FileNotFoundError:  # cleared by someone else meanwhile
            return count
        except OSError as exc:
            raise DigitctlError(f"cannot clear {folder}: {exc.strerror or exc}") from None
        shutil.rmtree(trash, ignore_errors=True)
        return count

    # ---- reading -----------------------------------------------------------------------
    def _read_record(self, path: Path) -> FeedbackSample | None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            names = {f for f in FeedbackSample.__dataclass_fields__}
            sample = FeedbackSample(**{k: v for k, v in document.items() if k in names})
            _check_label(sample.label)
            return sample
        except (OSError, ValueError, TypeError, DigitctlError):
            return None

    def samples(self) -> list[FeedbackSample]:
        """Every complete sample, in the order of their ids (stable from run to run, so a
        seeded hold-out picks the same samples); records that cannot be read are skipped."""
        folder = self.samples_path
        try:
            records = sorted(folder.glob("*.json"))
        except OSError:
            return []
        found = [self._read_record(path) for path in records]
        samples = [s for s in found if s is not None and (folder / s.view_file).is_file()]
        return sorted(samples, key=lambda s: s.id)

    def summary(self) -> FeedbackSummary:
        counts = dict.fromkeys(LABELS, 0)
        misread = dict.fromkeys(LABELS, 0)
        for sample in self.samples():
            counts[sample.label] += 1
            if sample.misread:
                misread[sample.label] += 1
        return FeedbackSummary(self.directory.absolute(), counts, misread)

    def views(self) -> tuple[np.ndarray, np.ndarray, list[FeedbackSample]]:
        """(N, 28, 28) float32 views in [0, 1], their labels (uint8) and the samples."""
        from PIL import Image

        samples, views = [], []
        for sample in self.samples():
            try:
                with Image.open(self.samples_path / sample.view_file) as image:
                    pixels = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
            except OSError:
                continue  # deleted by a concurrent clear
            if pixels.shape != (28, 28):
                continue
            samples.append(sample)
            views.append(pixels)
        x = np.stack(views) if views else np.zeros((0, 28, 28), dtype=np.float32)
        y = np.array([s.label for s in samples], dtype=np.uint8)
        return x, y, samples


def view_png(view: np.ndarray) -> bytes:
    """A 28×28 view in [0, 1] as an 8-bit greyscale PNG (what MNIST itself stores)."""
    from PIL import Image

    pixels = np.asarray(view, dtype=np.float32).reshape(28, 28)
    encoded = io.BytesIO()
    Image.fromarray(np.round(np.clip(pixels, 0, 1) * 255).astype(np.uint8), "L").save(
        encoded, format="PNG"
    )
    return encoded.getvalue()


def _extension(data: bytes) -> str:
    """The usual suffix of the image format of ``data`` (``.img`` if Pillow cannot tell)."""
    from PIL import Image

    with contextlib.suppress(Exception), Image.open(io.BytesIO(data)) as image:
        fmt = (image.format or "").lower()
        return {"jpeg": ".jpg", "mpo": ".jpg", "tiff": ".tif"}.get(
            fmt, f".{fmt}" if fmt else ".img"
        )
    return ".img"


def _create_exclusive(target: Path, data: bytes) -> bool:
    """Create ``target`` holding ``data`` unless it exists; True when this call created it.

    Written to a temporary file and hard-linked into place: the link is atomic and fails
    if the target exists, so the record appears complete or not at all.
    """
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp_name, target)
            return True
        except FileExistsError:
            return False
        except OSError:
            # No hard links on this file system: exclusive creation, then the contents.
            try:
                created = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            os.close(created)
            os.replace(tmp_name, target)
            return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


# --------------------------------------------------------------------------------------
# what the CLI and the app call
# --------------------------------------------------------------------------------------
def add_images(
    settings: Settings,
    paths: Sequence[str | os.PathLike[str]],
    label: int,
    predictor: Predictor | None = None,
) -> list[AddOutcome]:
    """Add image files as samples of ``label``; one outcome per path, in order.

    An unreadable image becomes a ``failed`` outcome whose error names it; the others are
    still added. ``predictor`` (default: the model in use) records the model's answer.
    """
    label = _check_label(label)
    store = FeedbackStore.for_settings(settings)
    if predictor is None:
        from digitctl.inference import load_predictor

        predictor = load_predictor(settings)
    outcomes = []
    for raw in paths:
        name = str(raw)
        try:
            data = _read(Path(raw).expanduser(), name)
            from digitctl.imaging import to_mnist

            view = to_mnist(data)
            # The answer `predict` gives (the whole reading, its not-a-digit verdict
            # included), not the likeliest of the ten digits on the view.
            predicted = answer_of(predictor.read(data))
        except ImageError as exc:
            text = str(exc).replace("the image data", name)
            outcomes.append(
                AddOutcome(name, FAILED, error=text if name in text else f"{name}: {text}")
            )
            continue
        outcomes.append(store.add(data, label, predicted=predicted, view=view, source=name))
    return outcomes


def answer_of(reading: Reading) -> int:
    """The digit a reading answers for a one-digit sample, or NOT_A_DIGIT when it is not
    one digit (not a digit, no digit found, or several digits)."""
    return reading.label if reading.label is not None else NOT_A_DIGIT


def _read(path: Path, name: str) -> bytes:
    try:
        if path.is_dir():
            raise ImageError(f"{name} is a directory, not an image")
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{name} does not exist") from None
    except PermissionError:
        raise ImageError(f"{name} cannot be read (permission denied)") from None
    except OSError as exc:
        raise ImageError(f"cannot read {name}: {exc.strerror or exc}") from None
    if not data:
        raise ImageError(f"{name} is empty (0 bytes)")
    return data


def summarize(settings: Settings) -> FeedbackSummary:
    return FeedbackStore.for_settings(settings).summary()


def clear(settings: Settings) -> int:
    return FeedbackStore.for_settings(settings).clear()


def counts_text(counts: Iterable[tuple[int, int]]) -> str:
    """``3: 20  7: 18`` for the digits that have samples."""
    return "  ".join(f"{digit}: {n}" for digit, n in counts if n)
