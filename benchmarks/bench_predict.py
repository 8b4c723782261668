"""Cold start and throughput of `digitctl predict`: LiteRT export vs ONNX Runtime vs Keras.

    python benchmarks/bench_predict.py [--model PATH.keras] [--runs 5] [--images 10000]
    python benchmarks/bench_predict.py --cold-only --runs 15 --out benchmarks/results/cold.json

Each measurement is a fresh `digitctl` process, as a user runs it; the paths are run
interleaved so that load from other processes on this shared machine hits them alike.
Peak RSS comes from wait4(). Targets (issue 4): cold one-image predict <= 0.4 s and
<= 120 MB, >= 5x faster than Keras; 10,000 PNGs in one `predict --json` <= 8 s.

Throughput uses the MNIST test images written as 28x28 PNGs (../shared/data/mnist next
to the repository, or --mnist DIR), so accuracy is reported too; a second run uses
realistic canvas drawings (200-400 px RGBA) from tests/realistic_images.py.
Writes benchmarks/results/bench_predict.json.
"""

from __future__ import annotations

# Only the standard library at module level: wait4() reports the peak RSS of a child
# *including* the parent's pages it had before exec, so the parent must stay small
# (the models are prepared in a separate process for the same reason).
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "digitctl" / "assets" / "samples" / "seven_canvas.png"


def cpu_model() -> str:
    """The CPU's model name: speeds differ between machines (AMX or not)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from framing_sets import machine_info

    return machine_info()["cpu_model"]


def digitctl_command() -> list[str]:
    script = Path(sys.executable).with_name("digitctl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "digitctl"]


# A pip install compiles every module to bytecode; an editable install on a machine with
# PYTHONDONTWRITEBYTECODE set (this one) would recompile digitctl on each start (~30 ms).
# The children may write bytecode, and a warm-up run per path writes it before timing.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(
    args: list[str], stdout: int | None = subprocess.DEVNULL
) -> tuple[float, float, int, float]:
    """(wall seconds, peak RSS MiB, exit status, CPU seconds) of one fresh process.

    CPU seconds (user + system, worker processes included) barely depend on what else
    runs on the machine; wall time on an idle machine is close to it for the one-image
    case (one thread does nearly all the work).
    """
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=stdout, stderr=subprocess.DEVNULL, env=CHILD_ENV)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, process.returncode, usage.ru_utime + usage.ru_stime


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("digitctl", "typer", "numpy", "pillow", "ai-edge-litert", "onnxruntime"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def prepare_models(source: Path, folder: Path) -> dict[str, Path]:
    """lite/ (.keras + .tflite), keras/ (.keras only), onnx/ (.onnx) copies of ``source``."""
    import numpy as np

    from digitctl.export import export_model, write_lite_export
    from digitctl.modelfiles import lite_path_for, load_keras_model

    paths = {}
    for name in ("litert", "keras"):
        (folder / name).mkdir(parents=True)
        paths[name] = Path(shutil.copy(source, folder / name / "model.keras"))
    lite = lite_path_for(source)
    if lite.exists():
        shutil.copy(lite, lite_path_for(paths["litert"]))
    else:
        write_lite_export(load_keras_model(source), lite_path_for(paths["litert"]))
    try:
        (folder / "onnx").mkdir()
        onnx_source = Path(shutil.copy(source, folder / "onnx" / "model.keras"))
        sample = np.zeros((1, 28, 28, 1), np.float32)
        paths["onnx"] = export_model(onnx_source, "onnx", x_test=sample).path
    except Exception as exc:  # tf2onnx missing: measure the other two
        print(f"(skipping ONNX Runtime: {exc})", file=sys.stderr)
    # Both copies were just written: make the export look as fresh as in a real install.
    now = time.time()
    os.utime(lite_path_for(paths["litert"]), (now, now))
    return paths


def cold_start(models: dict[str, Path], image: Path, runs: int) -> dict[str, dict[str, float]]:
    command = digitctl_command()
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in models}
    for model in models.values():  # warm-up, not timed: bytecode, file cache
        run_once([*command, "predict", "--model", str(model), str(image)])
    for _ in range(runs):
        for name, model in models.items():
            wall, rss, status, cpu = run_once(
                [*command, "predict", "--model", str(model), str(image)]
            )
            if status != 0:
                raise SystemExit(f"{name}: digitctl predict exited {status}")
            samples[name].append((wall, rss, cpu))
    return {
        name: {
            "wall_s_median": round(statistics.median(v[0] for v in values), 3),
            "wall_s_min": round(min(v[0] for v in values), 3),
            "cpu_s_median": round(statistics.median(v[2] for v in values), 3),
            "peak_rss_mib_median": round(statistics.median(v[1] for v in values), 1),
        }
        for name, values in samples.items()
    }


def write_mnist_pngs(folder: Path, mnist: Path, count: int) -> np.ndarray:
    import numpy as np
    from PIL import Image

    from digitctl.data import read_idx

    images = read_idx(mnist / "t10k-images-idx3-ubyte.gz")[:count]
    labels = read_idx(mnist / "t10k-labels-idx1-ubyte.gz")[:count]
    folder.mkdir(parents=True)
    for index, image in enumerate(images):
        Image.fromarray(image, "L").save(folder / f"{index:05d}.png")
    return labels.astype(np.int64)


def write_canvas_pngs(folder: Path, mnist: Path, count: int) -> np.ndarray:
    import numpy as np
    import realistic_images

    from digitctl.data import read_idx

    images = read_idx(mnist / "t10k-images-idx3-ubyte.gz")[:count].astype(np.float32) / 255
    labels = read_idx(mnist / "t10k-labels-idx1-ubyte.gz")[:count]
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index, image in enumerate(images):
        (folder / f"{index:05d}.png").write_bytes(realistic_images.canvas(image, rng))
    return labels.astype(np.int64)


def throughput(model: Path, folder: Path, labels: np.ndarray) -> dict[str, float]:
    import numpy as np

    out = folder.parent / (folder.name + ".jsonl")
    with open(out, "wb") as handle:
        wall, rss, status, cpu = run_once(
            [*digitctl_command(), "predict", "--json", "--model", str(model), str(folder)],
            stdout=handle.fileno(),
        )
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    predicted = np.array([-1 if d["label"] is None else d["label"] for d in lines])
    return {
        "images": len(lines),
        "wall_s": round(wall, 2),
        "images_per_s": round(len(lines) / wall),
        "cpu_s": round(cpu, 2),
        "peak_rss_mib": round(rss, 1),
        "exit_status": status,
        "accuracy": round(float(np.mean(predicted == labels[: len(predicted)])), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a .keras (default: bundled)")
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--canvas-images", type=int, default=1_000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/bench_predict.json")
    parser.add_argument(
        "--cold-only", action="store_true", help="measure cold start only (no throughput runs)"
    )
    parser.add_argument("--prepare", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        models = prepare_models(*args.prepare)
        print(json.dumps({k: str(v) for k, v in models.items()}))
        return

    source = args.model or ROOT / "digitctl" / "assets" / "model" / "digitctl_cnn.keras"
    report: dict[str, object] = {
        "model": str(source.resolve().relative_to(ROOT))
        if source.resolve().is_relative_to(ROOT)
        else str(source),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "load_average_start": load_average(),
        "python": sys.version.split()[0],
        "versions": package_versions(),
    }
    with tempfile.TemporaryDirectory(prefix="bench_predict_") as tmp:
        folder = Path(tmp)
        prepared = subprocess.run(
            [sys.executable, __file__, "--prepare", str(source), str(folder / "models")],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        if prepared.returncode != 0:
            raise SystemExit(f"preparing the models failed:\n{prepared.stderr}")
        models = {k: Path(v) for k, v in json.loads(prepared.stdout.splitlines()[-1]).items()}
        print("cold start: digitctl predict one.png", file=sys.stderr)
        cold = cold_start(models, SAMPLE, args.runs)
        keras_wall = cold["keras"]["wall_s_median"]
        keras_cpu = cold["keras"]["cpu_s_median"]
        for name, row in cold.items():
            row["speedup_vs_keras"] = round(keras_wall / row["wall_s_median"], 1)
            row["cpu_speedup_vs_keras"] = round(keras_cpu / row["cpu_s_median"], 1)
            print(f"  {name:7s} {row}", file=sys.stderr)
        report["cold_start"] = cold
        report["cold_start_runs"] = args.runs
        if args.cold_only:
            return finish(report, args.out)
        print(f"throughput: {args.images} MNIST PNGs in one predict --json", file=sys.stderr)
        labels = write_mnist_pngs(folder / "mnist_png", args.mnist, args.images)
        report["throughput_mnist_png"] = throughput(models["litert"], folder / "mnist_png", labels)
        print(f"  {report['throughput_mnist_png']}", file=sys.stderr)
        print(f"throughput: {args.canvas_images} canvas drawings", file=sys.stderr)
        labels = write_canvas_pngs(folder / "canvas_png", args.mnist, args.canvas_images)
        report["throughput_canvas_png"] = throughput(
            models["litert"], folder / "canvas_png", labels
        )
        print(f"  {report['throughput_canvas_png']}", file=sys.stderr)
    finish(report, args.out)


def finish(report: dict[str, object], out: Path) -> None:
    report["load_average_end"] = load_average()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
