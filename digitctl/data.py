"""MNIST: mirrors, verified download, IDX parsing and the processed-data cache.

Raw archives are cached in ``settings.raw_data_path``; each accepted file gets a sidecar
``<file>.verified.json`` recording its SHA-256 and how it was checked, so a rerun skips it
after re-hashing. Processed data lives in ``settings.processed_path`` under a name derived
from a fingerprint of its inputs and parameters, so a rerun with the same inputs is a file
lookup and changed parameters build a new file.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitctl.atomic import atomic_path, write_json
from digitctl.errors import DataError, DownloadError

if TYPE_CHECKING:
    from rich.progress import Progress

    from digitctl.config import Settings

# SHA-256 of the official gzip archives (as served by LeCun's site and its mirrors).
OFFICIAL_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",  # noqa: E501
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",  # noqa: E501
}
MNIST_FILES = tuple(OFFICIAL_SHA256)

# Public mirrors of the official archives, tried in order.
PUBLIC_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)

# Expected content of each file: item shape (images 28×28, labels scalars).
_ITEM_SHAPE = {
    "train-images-idx3-ubyte.gz": (28, 28),
    "train-labels-idx1-ubyte.gz": (),
    "t10k-images-idx3-ubyte.gz": (28, 28),
    "t10k-labels-idx1-ubyte.gz": (),
}
# Image file -> its label file; their counts must agree.
_PAIRS = {
    "train-images-idx3-ubyte.gz": "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz": "t10k-labels-idx1-ubyte.gz",
}

CHECK_OFFICIAL = "official SHA-256"
CHECK_STRUCTURE = "IDX structure checked (not the official archive)"
PROCESSED_FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------
# IDX parsing
# --------------------------------------------------------------------------------------
def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse an (uncompressed) IDX buffer of unsigned bytes into an array, validating it."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{name} is not an IDX file (bad magic number); download it again")
    if raw[2] != 0x08:
        raise DataError(f"{name} holds IDX type 0x{raw[2]:02x}, expected unsigned bytes (0x08)")
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header_size:
        raise DataError(f"{name} has a truncated IDX header; download it again")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64))
    actual = len(raw) - header_size
    if actual != expected:
        raise DataError(
            f"{name} declares {expected} bytes of data for shape {shape} but holds {actual}; "
            "the file is truncated or corrupt, download it again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def read_idx(path: Path) -> np.ndarray:
    """Read a ``.gz`` or plain IDX file; a corrupt file is a DataError naming it."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist; run `digitctl download`") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path} is not a readable gzip file ({exc}); download it again") from None
    return parse_idx(raw, name=str(path))


def validate_mnist_file(path: Path, filename: str) -> np.ndarray:
    """Check that ``path`` holds what MNIST's ``filename`` must hold; return its array.

    Checks the magic number, the item shape, a non-zero count and the label range. The
    count is not fixed so that smaller MNIST-format sets (and test fixtures) work; image
    and label counts are checked against each other by :func:`check_pairs`.
    """
    item_shape = _ITEM_SHAPE[filename]
    array = read_idx(path)
    if array.ndim != 1 + len(item_shape) or array.shape[1:] != item_shape:
        raise DataError(
            f"{path}: expected items of shape {item_shape or 'scalar'}, got {array.shape[1:]}"
        )
    if array.shape[0] == 0:
        raise DataError(f"{path} holds no items")
    if not item_shape and int(array.max()) > 9:
        raise DataError(f"{path}: labels must be digits 0-9, found {int(array.max())}")
    return array


def check_pairs(arrays: dict[str, np.ndarray]) -> None:
    """Every image file must have exactly as many items as its label file."""
    for images, labels in _PAIRS.items():
        if arrays[images].shape[0] != arrays[labels].shape[0]:
            raise DataError(
                f"{images} holds {arrays[images].shape[0]} images but {labels} holds "
                f"{arrays[labels].shape[0]} labels; the mirror's files do not belong together"
            )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------
# Download
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FetchedFile:
    name: str
    path: Path
    sha256: str
    check: str  # CHECK_OFFICIAL or CHECK_STRUCTURE
    source: str  # URL, folder, or "cache"
    status: str  # "downloaded", "copied" or "cached"


@dataclass(frozen=True)
class DownloadResult:
    directory: Path
    files: list[FetchedFile]

    def as_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "files": [{**asdict(f), "path": str(f.path)} for f in self.files],
        }


class _RichPoochBar:
    """The progress-bar protocol pooch's HTTPDownloader expects, drawn with Rich."""

    def __init__(self, progress: Progress, description: str) -> None:
        self._progress = progress
        # status="": the task-style bars of preprocess/train show a status field.
        self._task = progress.add_task(description, total=None, status="")

    @property
    def total(self) -> float | None:
        return self._progress.tasks[self._task_index()].total

    @total.setter
    def total(self, value: float) -> None:
        self._progress.update(self._task, total=value or None)

    def _task_index(self) -> int:
        return [t.id for t in self._progress.tasks].index(self._task)

    def update(self, amount: float) -> None:
        self._progress.advance(self._task, amount)

    def reset(self) -> None:
        self._progress.reset(self._task)

    def close(self) -> None:
        self._progress.stop_task(self._task)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _cached_file(directory: Path, name: str) -> FetchedFile | None:
    """The cached copy of ``name`` if its bytes still match what was verified."""
    path = directory / name
    sidecar = _sidecar(path)
    if not path.is_file() or not sidecar.is_file():
        return None
    try:
        record = json.loads(sidecar.read_text())
        digest = sha256_of(path)
    except (OSError, ValueError):
        return None
    if digest != record.get("sha256"):
        return None
    return FetchedFile(name, path, digest, record.get("check", "?"), "cache", "cached")


def _accept(staged: Path, name: str, official_only: bool) -> tuple[str, str]:
    """Verify a staged file; return (sha256, how it was checked) or raise DataError."""
    digest = sha256_of(staged)
    if digest == OFFICIAL_SHA256[name]:
        validate_mnist_file(staged, name)  # cheap, and guards against a wrong hash table
        return digest, CHECK_OFFICIAL
    if official_only:
        raise DataError(f"checksum mismatch for {name} (got {digest[:12]}…)")
    validate_mnist_file(staged, name)
    return digest, CHECK_STRUCTURE


def _fetch_http(url: str, staged: Path, timeout: float, progress: Progress | None) -> None:
    import pooch
    import requests

    # pooch announces every download on its own logger; Rich shows progress instead.
    pooch.get_logger().setLevel(logging.WARNING)
    bar = _RichPoochBar(progress, staged.name.split(".")[0]) if progress is not None else False
    downloader = pooch.HTTPDownloader(progressbar=bar, timeout=timeout)
    try:
        # known_hash=None: the hash policy depends on the mirror, so _accept checks it.
        pooch.retrieve(
            url, known_hash=None, fname=staged.name, path=staged.parent, downloader=downloader
        )
    except requests.exceptions.HTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise DataError(f"HTTP {status}") from None
    except requests.exceptions.Timeout:
        raise DataError(f"no data for {timeout:g} s (stalled)") from None
    except requests.exceptions.ConnectionError as exc:
        # requests reports a read timeout mid-body and a short body as connection errors.
        text = str(exc)
        if "timed out" in text:
            reason = f"no data for {timeout:g} s (stalled)"
        elif "IncompleteRead" in text or "Connection broken" in text:
            reason = "truncated response"
        else:
            reason = "cannot connect"
        raise DataError(reason) from None
    except requests.exceptions.RequestException as exc:
        raise DataError(type(exc).__name__) from None


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _source_url(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + name


def download_mnist(
    settings: Settings,
    progress: Progress | None = None,
    mirrors: Sequence[str] | None = None,
) -> DownloadResult:
    """Fetch the four MNIST archives into the cache, verified, skipping verified copies.

    Sources: ``settings.mirror`` (a folder or base URL) if set, else ``mirrors`` or the
    public mirrors, each tried in turn. Files from the public mirrors must match the
    official SHA-256; files from a user's mirror that do not are accepted only when their
    IDX structure is right, and the result says so.
    """
    directory = settings.raw_data_path
    custom = settings.mirror is not None
    sources = [settings.mirror] if custom else list(mirrors or PUBLIC_MIRRORS)
    fetched: list[FetchedFile] = []
    for name in MNIST_FILES:
        cached = _cached_file(directory, name)
        if cached is not None:
            fetched.append(cached)
            continue
        fetched.append(_fetch_one(name, sources, directory, custom, settings, progress))
    return DownloadResult(directory, fetched)


def _fetch_one(
    name: str,
    sources: Sequence[str],
    directory: Path,
    custom: bool,
    settings: Settings,
    progress: Progress | None,
) -> FetchedFile:
    directory.mkdir(parents=True, exist_ok=True)
    failures = []
    for source in sources:
        # A private staging folder per attempt: concurrent runs never see each other's
        # partial files, and a failed attempt leaves nothing behind.
        with tempfile.TemporaryDirectory(dir=directory, prefix=".staging-") as staging:
            staged = Path(staging) / name
            try:
                if _is_url(source):
                    _fetch_http(
                        _source_url(source, name), staged, settings.download_timeout, progress
                    )
                    status = "downloaded"
                else:
                    origin = Path(source).expanduser() / name
                    if not origin.is_file():
                        raise DataError(f"{origin} does not exist")
                    shutil.copyfile(origin, staged)
                    status = "copied"
                digest, check = _accept(staged, name, official_only=not custom)
            except DataError as exc:
                failures.append(f"{source} ({exc})")
                continue
            target = directory / name
            with atomic_path(target) as tmp:
                shutil.move(str(staged), tmp)
            write_json(_sidecar(target), {"sha256": digest, "check": check, "source": source})
            origin_text = _source_url(source, name) if _is_url(source) else str(source)
            return FetchedFile(name, target, digest, check, origin_text, status)
    hint = (
        "check the --mirror path or URL"
        if custom
        else "you may be offline: pass --mirror DIR|URL with the four MNIST .gz files"
    )
    raise DownloadError(f"could not fetch {name}: tried {'; '.join(failures)}; {hint}")


# --------------------------------------------------------------------------------------
# Preprocess
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreprocessResult:
    path: Path
    fingerprint: str
    cached: bool
    counts: dict[str, int]
    artifacts: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "fingerprint": self.fingerprint,
            "cached": self.cached,
            "counts": self.counts,
            "artifacts": [str(p) for p in self.artifacts],
        }


@dataclass(frozen=True)
class MnistSplits:
    """Images are float32 (N, 28, 28, 1) in [0, 1]; labels uint8."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    fingerprint: str


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val): ``fraction`` of every class goes to val, chosen with ``seed``."""
    rng = np.random.default_rng(seed)
    val_parts = []
    for digit in np.unique(labels):
        members = np.flatnonzero(labels == digit)
        take = int(round(len(members) * fraction))
        val_parts.append(rng.permutation(members)[:take])
    val = np.sort(np.concatenate(val_parts)) if val_parts else np.array([], dtype=np.int64)
    train = np.setdiff1d(np.arange(len(labels)), val, assume_unique=True)
    # Shuffle the training order once here so that a --limit subset is a fair sample.
    return rng.permutation(train), val


def processing_fingerprint(file_hashes: dict[str, str], val_split: float, seed: int) -> str:
    document = {
        "files": dict(sorted(file_hashes.items())),
        "val_split": round(val_split, 10),
        "seed": seed,
        "format": PROCESSED_FORMAT_VERSION,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def processed_file(settings: Settings, fingerprint: str) -> Path:
    return settings.processed_path / f"mnist-{fingerprint[:16]}.npz"


def _scale(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) / np.float32(255.0))[..., np.newaxis]


def preprocess(
    settings: Settings, progress: Progress | None = None, plots: bool = True
) -> PreprocessResult:
    """Build (or reuse) the processed, split dataset and the data plots.

    Downloads first when the raw files are not cached.
    """
    raw = download_mnist(settings, progress=progress)
    hashes = {f.name: f.sha256 for f in raw.files}
    fingerprint = processing_fingerprint(hashes, settings.val_split, settings.seed)
    target = processed_file(settings, fingerprint)
    artifacts: list[Path] = []
    if target.is_file():
        try:
            with np.load(target) as stored:
                counts = {k: int(stored[f"y_{k}"].shape[0]) for k in ("train", "val", "test")}
                stored_fingerprint = str(stored["fingerprint"])
            if stored_fingerprint == fingerprint:
                if plots:
                    artifacts = _data_plots(settings, target, missing_only=True)
                return PreprocessResult(target, fingerprint, True, counts, artifacts)
        except (OSError, ValueError, KeyError):
            pass  # unreadable or foreign: rebuild it below
    task = progress.add_task("preprocess", total=4, status="") if progress is not None else None

    def step(status: str) -> None:
        if progress is not None and task is not None:
            progress.update(task, advance=1, status=status)

    arrays = {name: validate_mnist_file(raw.directory / name, name) for name in MNIST_FILES}
    check_pairs(arrays)
    step("parsed")
    train_images = arrays["train-images-idx3-ubyte.gz"]
    train_labels = arrays["train-labels-idx1-ubyte.gz"]
    train_idx, val_idx = stratified_split(train_labels, settings.val_split, settings.seed)
    step("split")
    payload = {
        "x_train": _scale(train_images[train_idx]),
        "y_train": train_labels[train_idx],
        "x_val": _scale(train_images[val_idx]),
        "y_val": train_labels[val_idx],
        "x_test": _scale(arrays["t10k-images-idx3-ubyte.gz"]),
        "y_test": arrays["t10k-labels-idx1-ubyte.gz"].copy(),
        "fingerprint": np.array(fingerprint),
        "parameters": np.array(
            json.dumps({"val_split": settings.val_split, "seed": settings.seed, "files": hashes})
        ),
    }
    step("scaled")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **payload)
    step("saved")
    counts = {k: int(payload[f"y_{k}"].shape[0]) for k in ("train", "val", "test")}
    if plots:
        artifacts = _data_plots(settings, target, missing_only=False)
    return PreprocessResult(target, fingerprint, False, counts, artifacts)


def _data_plots(settings: Settings, processed: Path, missing_only: bool) -> list[Path]:
    from digitctl import plots

    out = settings.artifacts_path
    distribution = out / "class_distribution.png"
    samples = out / "sample_images.png"
    if missing_only and distribution.is_file() and samples.is_file():
        return []
    with np.load(processed) as stored:
        counts = {
            name: np.bincount(stored[f"y_{key}"], minlength=10)
            for key, name in (("train", "train"), ("val", "validation"), ("test", "test"))
        }
        y_train = stored["y_train"]
        picks = [
            int(np.flatnonzero(y_train == d)[i])
            for i in range(2)
            for d in range(10)
            if np.count_nonzero(y_train == d) > i
        ]
        images = stored["x_train"][picks]
        titles = [str(int(y_train[i])) for i in picks]
    plots.plot_class_distribution(counts, distribution)
    plots.plot_image_grid(images, titles, samples, "MNIST training samples")
    return [distribution, samples]


def load_splits(settings: Settings, progress: Progress | None = None) -> MnistSplits:
    """The processed dataset, downloading and preprocessing first if needed."""
    result = preprocess(settings, progress=progress, plots=False)
    try:
        with np.load(result.path) as stored:
            return MnistSplits(
                x_train=stored["x_train"],
                y_train=stored["y_train"],
                x_val=stored["x_val"],
                y_val=stored["y_val"],
                x_test=stored["x_test"],
                y_test=stored["y_test"],
                fingerprint=result.fingerprint,
            )
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(
            f"processed data {result.path} is unreadable ({exc}); delete it and rerun"
        ) from None
