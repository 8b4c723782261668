"""Issue 31: the line reader beside today's reader and OCR peers on real-looking sets.

For each set of benchmarks/reader_sets.py (and, with ``--with-framing``, the framing,
not-a-digit and number sets of benchmarks/framing_sets.py) every image is read by:

- ``digitctl``: today's reader, the path ``digitctl predict`` takes
  (``framing_sets.answer``); an answer whose status is not "ok" counts as "";
- ``reader``: the line model alone, ``LineModel(path).read(array)`` on the whole decoded
  image (``--reader-model``; default: the bundled ``digitctl_reader.tflite``);
- ``rapidocr``: RapidOCR's recogniser alone on the whole image (``use_det=False,
  use_cls=False``), its digits kept;
- ``tesseract``: ``--psm 7 -c tessedit_char_whitelist=0123456789``.

The OCR peers get transparent canvases flattened onto a contrasting background (as
bench_numbers.py does); digitctl and the line model read the RGBA as it is. Tools that
are not installed are skipped with a message.

A reading is right when its digits equal the label's digits (line breaks and separators
ignored); for a label "" (nothing to read) when no digit is read. Per set and tool:
accuracy, the share of negatives rejected, the share of digit images falsely read as
nothing, and milliseconds per image (decode included).

    python benchmarks/bench_reader.py [--sets all] [--count 300] [--seed 1]
        [--tools digitctl,reader,rapidocr,tesseract] [--reader-model PATH]
        [--with-framing] [--out benchmarks/results/bench_reader.json]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import framing_sets as fs  # noqa: E402
import reader_sets as rs  # noqa: E402

TOOLS = ("digitctl", "reader", "line", "rapidocr", "tesseract")
BUNDLED_READER = fs.ROOT / "digitctl" / "assets" / "model" / "digitctl_reader.tflite"
FRAMING = (*fs.FRAMING_SETS, fs.NON_DIGIT_SET, *fs.NUMBER_SETS)


def digits(text: str | None) -> str:
    return re.sub(r"\D", "", text or "")


def cpu_model() -> str:
    """lscpu's "Model name" (the /proc/cpuinfo name where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.strip().startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return fs.machine_info()["cpu_model"]


def decoded(path: Path) -> np.ndarray:
    """The image as a uint8 array (grey, RGB or RGBA), EXIF orientation applied."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(Image.open(path))
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    return np.asarray(image)


def flattened(path: Path, folder: Path) -> Path:
    """``path`` itself, or for an RGBA image a copy on a background contrasting its ink."""
    image = Image.open(path)
    if image.mode != "RGBA":
        return path
    rgba = np.asarray(image, np.float32) / 255
    alpha = rgba[..., 3:]
    ink = (rgba[..., :3] * alpha).sum((0, 1)) / max(float(alpha.sum()), 1e-6)
    background = 0.0 if ink.mean() > 0.5 else 1.0
    rgb = rgba[..., :3] * alpha + background * (1 - alpha)
    out = folder / f"{path.parent.name}_{path.stem}.png"
    Image.fromarray((rgb * 255).astype(np.uint8), "RGB").save(out)
    return out


class Tools:
    """The readers, each a function from an image path to the digits it read."""

    def __init__(self, names: list[str], reader_model: Path | None, model: Path | None):
        self.info: dict[str, str] = {}
        self.readers = {}
        for name in names:
            if name not in TOOLS:
                raise SystemExit(f"unknown tool {name!r}; choose from {', '.join(TOOLS)}")
            setup = getattr(self, f"_setup_{name}")
            reader = setup(reader_model) if name in ("reader", "line") else setup(model)
            if reader is not None:
                self.readers[name] = reader

    def _setup_digitctl(self, model):
        from digitctl.inference import load_predictor

        predictor = load_predictor(model=model)
        self.info["digitctl_model"] = str(predictor.path)
        self.info["digitctl_api"] = fs.api_mode(predictor)

        def read(path: Path) -> str:
            answer = fs.answer(predictor, path)
            return digits(answer.text) if answer.status == "ok" else ""

        return read

    def _setup_reader(self, path):
        from digitctl.linereader import LineModel

        path = Path(path) if path else BUNDLED_READER
        if not path.exists():
            raise SystemExit(f"no line model at {path}: train one or pass --reader-model PATH")
        model = LineModel(path)
        self.info["reader_model"] = str(path)
        self.reader_seconds: list[float] = []

        def read(image_path: Path) -> str:
            array = decoded(image_path)
            start = time.perf_counter()
            text = model.read(array).text
            self.reader_seconds.append(time.perf_counter() - start)
            return text

        return read

    def _setup_line(self, path):
        """``predict --reader line``: lines found, read by the line model, each digit's
        probabilities multiplied by the digit model's."""
        from digitctl.config import Settings
        from digitctl.inference import load_predictor

        path = Path(path) if path else BUNDLED_READER
        if not path.exists():
            raise SystemExit(f"no line model at {path}: train one or pass --reader-model PATH")
        predictor = load_predictor(Settings(reader="line", models_dir=path.parent))
        self.info["line_model"] = str(predictor.line_model)

        def read(image_path: Path) -> str:
            answer = fs.answer(predictor, image_path)
            return digits(answer.text) if answer.status == "ok" else ""

        return read

    def _setup_rapidocr(self, _):
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError:
            print(
                "rapidocr: not installed (pip install rapidocr_onnxruntime); skipped",
                file=sys.stderr,
            )
            return None
        from importlib.metadata import version

        engine = RapidOCR()
        self.info["rapidocr_onnxruntime"] = version("rapidocr_onnxruntime")
        self._flat = Path(tempfile.mkdtemp(prefix="bench_reader_"))

        def read(path: Path) -> str:
            result, _ = engine(str(flattened(path, self._flat)), use_det=False, use_cls=False)
            return digits("".join(r[0] for r in result)) if result else ""

        return read

    def _setup_tesseract(self, _):
        if shutil.which("tesseract") is None:
            print(
                "tesseract: not installed (apt-get install -y tesseract-ocr); skipped",
                file=sys.stderr,
            )
            return None
        version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True)
        self.info["tesseract"] = (version.stdout or version.stderr).splitlines()[0]
        self._flat_t = Path(tempfile.mkdtemp(prefix="bench_reader_t_"))

        def read(path: Path) -> str:
            done = subprocess.run(
                [
                    "tesseract",
                    str(flattened(path, self._flat_t)),
                    "stdout",
                    "--psm",
                    "7",
                    "-c",
                    "tessedit_char_whitelist=0123456789",
                ],
                capture_output=True,
                text=True,
                env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin"},
            )
            return digits(done.stdout)

        return read


def score(truth: list[str], read: list[str], seconds: list[float]) -> dict:
    """Accuracy, rejection of negatives, false rejection of digits, speed."""
    truth = [digits(t) for t in truth]
    right = np.array([t == r for t, r in zip(truth, read, strict=True)])
    negative = np.array([t == "" for t in truth])
    out = {
        "images": len(truth),
        "accuracy": round(float(right.mean()), 4),
        "ms_per_image": round(1000 * float(np.mean(seconds)), 1),
    }
    if negative.any():
        out["negatives"] = int(negative.sum())
        out["rejected"] = round(float(right[negative].mean()), 4)
    if (~negative).any():
        empty = np.array([r == "" for r in read])
        out["digit_images"] = int((~negative).sum())
        out["falsely_rejected"] = round(float(empty[~negative].mean()), 4)
    out["examples_wrong"] = [
        {"index": int(i), "truth": truth[i], "read": read[i]} for i in np.flatnonzero(~right)[:8]
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sets", default="all", help=f"comma-separated, or all: {','.join(rs.SETS)}"
    )
    parser.add_argument("--with-framing", action="store_true", help="add framing_sets.py's sets")
    parser.add_argument("--count", type=int, default=300, help="images per set")
    parser.add_argument("--seed", type=int, default=1, help="0 is held out; 1 is validation")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--reader-model", type=Path, default=None, help="the line model (.tflite)")
    parser.add_argument("--model", type=Path, default=None, help="today's model (default: bundled)")
    parser.add_argument("--root", type=Path, default=rs.DEFAULT_ROOT)
    parser.add_argument("--mnist", type=Path, default=rs.DEFAULT_MNIST)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_reader.json")
    args = parser.parse_args()

    tools = Tools(args.tools.split(","), args.reader_model, args.model)
    machine = fs.machine_info()
    machine["cpu_model"] = cpu_model()
    print(f"CPU {machine['cpu_model']} ({machine['cpus']} cores)", file=sys.stderr)
    data = fs.load_mnist_test(args.mnist)
    names = list(rs.SETS if args.sets == "all" else args.sets.split(","))
    if args.with_framing:
        names += list(FRAMING)

    rows: dict[str, dict] = {}
    for name in names:
        if name in rs.SETS:
            folder = rs.write_set(name, args.count, args.seed, args.root, data=data)
        else:
            folder = fs.write_set(name, args.count, args.seed, args.root, data=data)
        if folder is None:
            continue
        items = fs.read_labels(folder)["items"]
        truth = [item["label"] or "" for item in items]
        row = {}
        for tool, read in tools.readers.items():
            texts, seconds = [], []
            for item in items:
                start = time.perf_counter()
                texts.append(read(folder / item["file"]))
                seconds.append(time.perf_counter() - start)
            row[tool] = score(truth, texts, seconds)
            for example in row[tool]["examples_wrong"]:
                example["file"] = items[example.pop("index")]["file"]
            print(
                f"{name:18s} {tool:10s} {row[tool]['accuracy']:7.1%} "
                f"{row[tool]['ms_per_image']:7.1f} ms/img",
                file=sys.stderr,
            )
        rows[name] = {"folder": str(folder), "images": len(items), "tools": row}

    names_done = list(rows)
    header = f"{'set':18s}" + "".join(f"{t:>12s}" for t in tools.readers)
    print(header + "   (whole-string accuracy; negatives: rejected; digits: falsely rejected)")
    for name in names_done:
        cells = []
        for tool in tools.readers:
            r = rows[name]["tools"][tool]
            cells.append(f"{r['accuracy']:12.1%}")
        extra = []
        for tool in tools.readers:
            r = rows[name]["tools"][tool]
            if "falsely_rejected" in r:
                extra.append(f"{tool} {r['falsely_rejected']:.0%} empty")
        print(f"{name:18s}" + "".join(cells) + "   " + ", ".join(extra))
    if "reader" in tools.readers and tools.reader_seconds:
        ms = 1000 * np.asarray(tools.reader_seconds)
        print(f"line model: {ms.mean():.1f} ms per image (median {np.median(ms):.1f}), read only")

    document = {
        "command": machine["command"],
        "seed": args.seed,
        "count": args.count,
        "sets_version": rs.VERSION,
        "machine": machine,
        "tools": tools.info,
        "line_model_ms_per_image": round(float(1000 * np.mean(tools.reader_seconds)), 2)
        if "reader" in tools.readers and tools.reader_seconds
        else None,
        "sets": rows,
    }
    fs.write_results(document, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
