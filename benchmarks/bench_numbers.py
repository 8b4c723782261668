"""Issue 12: whole handwritten numbers, digitctl beside Tesseract and RapidOCR.

Number sets of benchmarks/framing_sets.py (2-6 MNIST test digits: separated on a
transparent canvas, ink on paper photos, touching or overlapping, framed by a box, an
underline or rules, two lines). A number is right only when the whole string matches
(lines joined by "\\n"). The same images go through:

- digitctl: ``predictor.read(path).text`` (before issue 12, ``predict``: one digit);
- Tesseract: ``tesseract IMG stdout --psm 7 -c tessedit_char_whitelist=0123456789``
  (``--psm 6`` for the two-line set), one process per image, as a user runs it;
- RapidOCR with its defaults (detection + classifier + recogniser);
- RapidOCR's recogniser alone on each line's crop (``use_det=False, use_cls=False``),
  the crop being the line's ink box from labels.json plus a margin of 15% of its height.

The OCR tools get transparent canvases flattened onto a background that contrasts with
the ink (white ink on black, other inks on white): a user would have to do that; digitctl
reads the RGBA file as it is. Their output is reduced to its digits (line breaks kept).

    python benchmarks/bench_numbers.py [--count 500] [--compare-count 200]
        [--tools digitctl,tesseract,rapidocr,rapidocr_rec] [--sets numbers_canvas,...]

Targets (digitctl): >= 97% on separated digits (canvas, paper), >= 85% touching.
Writes benchmarks/results/bench_numbers.json.
"""

from __future__ import annotations

import argparse
import os
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

TOOLS = ("digitctl", "tesseract", "rapidocr", "rapidocr_rec")
TARGETS = {"numbers_canvas": 0.97, "numbers_paper": 0.97, "numbers_touching": 0.85}


def flattened(path: Path, folder: Path) -> Path:
    """``path`` itself, or for an RGBA image a copy flattened on a contrasting background."""
    image = Image.open(path)
    if image.mode != "RGBA":
        return path
    rgba = np.asarray(image, np.float32) / 255
    alpha = rgba[..., 3:]
    ink = (rgba[..., :3] * alpha).sum((0, 1)) / max(float(alpha.sum()), 1e-6)
    background = 0.0 if ink.mean() > 0.5 else 1.0
    rgb = rgba[..., :3] * alpha + background * (1 - alpha)
    out = folder / (path.stem + ".png")
    Image.fromarray((rgb * 255).astype(np.uint8), "RGB").save(out)
    return out


def digits_only(text: str) -> str:
    lines = [re.sub(r"\D", "", line) for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def tesseract(path: Path, two_lines: bool) -> str:
    psm = "6" if two_lines else "7"
    done = subprocess.run(
        [
            "tesseract",
            str(path),
            "stdout",
            "--psm",
            psm,
            "-c",
            "tessedit_char_whitelist=0123456789",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_THREAD_LIMIT": "1"},
    )
    return digits_only(done.stdout)


def rapid_lines(result) -> str:
    """RapidOCR's boxes grouped into lines (by centre height), each read left to right."""
    if not result:
        return ""
    boxes = []
    for box, text, _score in result:
        points = np.asarray(box, np.float32)
        boxes.append((points[:, 1].mean(), points[:, 0].min(), np.ptp(points[:, 1]), text))
    boxes.sort()
    tall = float(np.median([b[2] for b in boxes]))
    lines: list[list] = []
    for box in boxes:
        if lines and box[0] - np.mean([b[0] for b in lines[-1]]) < 0.5 * tall:
            lines[-1].append(box)
        else:
            lines.append([box])
    return digits_only(
        "\n".join("".join(b[3] for b in sorted(line, key=lambda b: b[1])) for line in lines)
    )


def crops(path: Path, item: dict) -> list[np.ndarray]:
    image = np.asarray(Image.open(path).convert("RGB"))
    out = []
    for x0, y0, x1, y1 in item["line_boxes"]:
        m = int(0.15 * (y1 - y0)) + 2
        out.append(image[max(0, y0 - m) : y1 + m, max(0, x0 - m) : x1 + m])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="model (default: bundled)")
    parser.add_argument("--mnist", type=Path, default=fs.DEFAULT_MNIST)
    parser.add_argument("--root", type=Path, default=fs.DEFAULT_ROOT, help="where sets live")
    parser.add_argument("--count", type=int, default=500, help="images per set (digitctl)")
    parser.add_argument(
        "--compare-count", type=int, default=200, help="the first N images go to every tool"
    )
    parser.add_argument(
        "--rapidocr-count",
        type=int,
        default=40,
        help="images per set for RapidOCR's default pipeline (seconds per image: its detector "
        "scales the short side up to 736 px)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sets", default=",".join(fs.NUMBER_SETS))
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_numbers.json")
    args = parser.parse_args()
    tools = args.tools.split(",")
    info = fs.machine_info()
    data = fs.load_mnist_test(args.mnist)

    predictor = engine = None
    if "digitctl" in tools:
        from digitctl.inference import load_predictor

        predictor = load_predictor(model=args.model)
        info["digitctl_api"] = fs.api_mode(predictor)
        info["model"] = str(predictor.path)
        info["sequence_model"] = str(predictor.sequence_model or "")
        print(f"digitctl: {predictor.path}, API {info['digitctl_api']}", file=sys.stderr)
    if "tesseract" in tools:
        if shutil.which("tesseract") is None:
            raise SystemExit("tesseract is not installed (apt-get install -y tesseract-ocr)")
        version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True)
        info["tesseract"] = (version.stdout or version.stderr).splitlines()[0]
    if {"rapidocr", "rapidocr_rec"} & set(tools):
        from importlib.metadata import version

        from rapidocr_onnxruntime import RapidOCR

        engine = RapidOCR()
        info["rapidocr_onnxruntime"] = version("rapidocr_onnxruntime")
        info["onnxruntime"] = version("onnxruntime")
    print(f"CPU {info['cpu_model']} ({info['cpus']} cores)", file=sys.stderr)

    rows: dict[str, dict] = {}
    digitctl_right = np.zeros(0, bool)
    with tempfile.TemporaryDirectory(prefix="bench_numbers_") as tmp:
        for name in args.sets.split(","):
            folder = fs.write_set(name, args.count, args.seed, args.root, data=data)
            items = fs.read_labels(folder)["items"]
            paths = [folder / item["file"] for item in items]
            truth = [item["label"] for item in items]
            compare = min(args.compare_count, len(items))
            row: dict[str, dict] = {}
            flat_dir = Path(tmp) / name
            flat_dir.mkdir()
            flat = [flattened(p, flat_dir) for p in paths[:compare]]
            if engine is not None:  # first-call model set-up is not an image's cost
                engine(str(flat[0]))
            for tool in tools:
                texts, seconds = [], []
                n = {"digitctl": len(items), "rapidocr": min(compare, args.rapidocr_count)}.get(
                    tool, compare
                )
                for i in range(n):
                    start = time.perf_counter()
                    if tool == "digitctl":
                        texts.append(fs.answer(predictor, paths[i]).text)
                    elif tool == "tesseract":
                        texts.append(tesseract(flat[i], name == "numbers_two_lines"))
                    elif tool == "rapidocr":
                        texts.append(rapid_lines(engine(str(flat[i]))[0]))
                    else:
                        lines = []
                        for crop in crops(flat[i], items[i]):
                            result, _ = engine(crop, use_det=False, use_cls=False)
                            lines.append(result[0][0] if result else "")
                        texts.append(digits_only("\n".join(lines)))
                    seconds.append(time.perf_counter() - start)
                right = np.array([t == truth[i] for i, t in enumerate(texts)])
                if tool == "digitctl":
                    digitctl_right = right
                row[tool] = {
                    "images": n,
                    "accuracy": float(right.mean()),
                    f"accuracy_first_{compare}": float(right[:compare].mean()),
                    "digitctl_accuracy_same_images": float(digitctl_right[:n].mean())
                    if "digitctl" in tools
                    else None,
                    "ms_per_image_mean": round(1000 * float(np.mean(seconds)), 1),
                    "ms_per_image_median": round(1000 * float(np.median(seconds)), 1),
                    "examples_wrong": [
                        {"file": items[i]["file"], "truth": truth[i], "read": texts[i]}
                        for i in np.where(~right)[0][:5]
                    ],
                }
                if name in TARGETS and tool == "digitctl":
                    row[tool]["target"] = TARGETS[name]
                    row[tool]["target_met"] = bool(right.mean() >= TARGETS[name])
                print(
                    f"{name:18s} {tool:13s} {n:5d} images  {right.mean():7.2%} "
                    f"(digitctl on the same images {row[tool]['digitctl_accuracy_same_images']}) "
                    f"{row[tool]['ms_per_image_mean']:7.1f} ms/img",
                    file=sys.stderr,
                )
            rows[name] = {
                "folder": str(folder.relative_to(fs.ROOT))
                if folder.is_relative_to(fs.ROOT)
                else str(folder),
                "compared_images": compare,
                "tools": row,
            }

    header = f"{'set':18s} " + " ".join(f"{t:>22s}" for t in tools)
    print("\n" + header + "   (accuracy (images), ms per image)", file=sys.stderr)
    for name, row in rows.items():
        cells = []
        for tool in tools:
            r = row["tools"][tool]
            cells.append(f"{r['accuracy']:7.2%} ({r['images']}) {r['ms_per_image_mean']:6.0f} ms")
        print(f"{name:18s} " + " ".join(f"{c:>22s}" for c in cells), file=sys.stderr)
    document = {"machine": info, "seed": args.seed, "sets": rows}
    fs.write_results(document, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
