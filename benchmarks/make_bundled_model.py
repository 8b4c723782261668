"""Make a trained workspace model the bundled one: calibrate, test once, write the assets.

    python benchmarks/make_bundled_model.py --workspace RUN --cache-dir CACHE \
        [--mnist ../shared/data/mnist] [--base "digitctl 0.1 (git 0aa2528)"]

Reads ``RUN/models/best_model.keras`` (a ``robust``-recipe model, 11 outputs) and its
training card, then:

1. calibrates the "not a digit" class on the run's validation data (MNIST's validation
   split and the synthetic validation views in the cache): temperature, and the threshold
   that falsely rejects at most 0.2% of MNIST validation digits (digitctl.robust.calibrate);
2. evaluates on the 10,000 MNIST test images, once (digitctl.evaluation);
3. writes ``digitctl/assets/model/digitctl_cnn.{keras,tflite}`` and
   ``digitctl_cnn_card.json`` (schema 2) with the calibration, the test figures, the
   training record and the commands that reproduce it.

With ``--candidate DIR`` it stops after step 1 and writes the calibrated model to ``DIR``
instead (``DIR/candidate.{keras,tflite}`` and its card, no test figures): a model to
compare with the bundled one on the validation reading sets (``choose_threshold.py
--model DIR/candidate.keras``, ``bench_framing.py --seed 1 --model ...``) before the test
set is looked at.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitctl.config import load_settings  # noqa: E402
from digitctl.modelfiles import BUNDLED_MODEL_DIR, ModelCard  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, required=True)
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--base", default=None, help="what the run started from")
    parser.add_argument("--command", default=None, help="the train command that made it")
    parser.add_argument(
        "--candidate",
        type=Path,
        default=None,
        help="calibrate only and write the model here (the test set is not looked at)",
    )
    args = parser.parse_args()

    import keras

    from digitctl.data import load_splits
    from digitctl.evaluation import compute_metrics
    from digitctl.robust import NOT_A_DIGIT_CLASS, calibrate

    settings = load_settings(
        overrides={"workspace": args.workspace, "cache_dir": args.cache_dir, "mirror": args.mnist}
    )
    model_path = settings.models_path / "best_model.keras"
    trained = json.loads((settings.models_path / "best_model_card.json").read_text())
    trained_card = ModelCard.from_json(trained, name="best_model")
    model = keras.saving.load_model(model_path, compile=False)
    splits = load_splits(settings)
    synthetic_files = sorted(settings.processed_path.glob("synthetic-*.npz"))
    if len(synthetic_files) != 1:
        raise SystemExit(f"expected one synthetic cache in {settings.processed_path}")
    with np.load(synthetic_files[0]) as synthetic:
        x_val = np.concatenate([splits.x_val, synthetic["x_val"]])
        y_val = np.concatenate([splits.y_val, synthetic["y_val"]])
    probabilities = np.asarray(model.predict(x_val, batch_size=512, verbose=0))
    clean = np.arange(len(y_val)) < len(splits.y_val)
    figures = calibrate(probabilities, y_val, clean)
    digits = probabilities[clean, :10].argmax(axis=1)
    figures["mnist_val_accuracy"] = round(float(np.mean(digits == splits.y_val)), 6)
    print("calibration", json.dumps(figures), file=sys.stderr)
    if args.candidate is not None:
        _write_candidate(args.candidate, model_path, model, trained_card, figures)
        return

    test = np.asarray(model.predict(splits.x_test, batch_size=512, verbose=0))
    metrics = compute_metrics(test, splits.y_test)
    errors = int(np.sum(metrics["predictions"] != splits.y_test))
    print(f"MNIST test accuracy {metrics['accuracy']:.4%} ({errors} errors)", file=sys.stderr)

    target = BUNDLED_MODEL_DIR / "digitctl_cnn.keras"
    _write_model(model_path, model, target)
    card = ModelCard(
        name="digitctl_cnn",
        description=trained_card.description
        or trained.get("architecture", {}).get("description", ""),
        classes=[*(str(d) for d in range(10)), NOT_A_DIGIT_CLASS],
        temperature=figures["temperature"],
        reject_threshold=figures["reject_threshold"],
        base_model=args.base or trained_card.training.get("plan", {}).get("init_model"),
        input="float32 (N, 28, 28, 1), white digit on black, values in [0, 1] "
        "(one glyph's view, digitctl.reading)",
        output="softmax probabilities over the digits 0-9 and 'not a digit'",
        files={"keras": target.name, "tflite": target.with_suffix(".tflite").name},
        metrics={
            **trained_card.metrics,
            "mnist_val_accuracy": figures["mnist_val_accuracy"],
            "test_accuracy": round(metrics["accuracy"], 6),
            "test_loss": metrics["loss"],
            "test_errors": errors,
            "test_images": len(splits.y_test),
        },
        evaluation={
            "per_class": {
                str(d): {k: round(float(v), 4) for k, v in metrics["report"][str(d)].items()}
                for d in range(10)
            },
            "confusion_matrix": metrics["confusion"].tolist(),
            "command": "python benchmarks/make_bundled_model.py (the test set, looked at once)",
        },
        training=trained_card.training,
        history=trained_card.history or _history(settings.artifacts_path / "history.json"),
        extra={
            "calibration": figures,
            "reproduce": [
                "git show 0aa2528:digitctl/assets/model/digitctl_cnn.keras > v01.keras",
                args.command
                or "digitctl train --recipe robust --init-model v01.keras --mirror MNIST_DIR",
                "python benchmarks/make_bundled_model.py --workspace . --cache-dir CACHE",
            ],
        },
    )
    card.write(BUNDLED_MODEL_DIR / "digitctl_cnn_card.json")
    print(f"wrote {target}, its .tflite and card", file=sys.stderr)


def _write_model(model_path: Path, model, target: Path) -> None:
    """The trained ``.keras`` file copied to ``target``, and its LiteRT export beside it."""
    from digitctl.export import write_lite_export

    shutil.copyfile(model_path, target)
    write_lite_export(model, target.with_suffix(".tflite"))


def _write_candidate(folder: Path, model_path: Path, model, trained_card, figures) -> None:
    """The calibrated model, to be compared on validation data before it is bundled."""
    from dataclasses import replace

    from digitctl.robust import NOT_A_DIGIT_CLASS

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "candidate.keras"
    _write_model(model_path, model, target)
    card = replace(
        trained_card,
        name="candidate",
        classes=[*(str(d) for d in range(10)), NOT_A_DIGIT_CLASS],
        temperature=figures["temperature"],
        reject_threshold=figures["reject_threshold"],
        files={"keras": target.name, "tflite": target.with_suffix(".tflite").name},
        extra={**trained_card.extra, "calibration": figures},
    )
    card.write(folder / "candidate_card.json")
    print(f"wrote {target}, its .tflite and card (no test figures)", file=sys.stderr)


def _history(path: Path) -> dict[str, list[float]]:
    """The per-epoch figures from the run's history.json (cards of 0.1 runs lack them)."""
    if not path.exists():
        return {}
    document = json.loads(path.read_text())
    keys = ("epochs", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
    return {k: document[k] for k in keys if k in document}


if __name__ == "__main__":
    main()
