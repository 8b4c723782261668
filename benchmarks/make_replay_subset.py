"""Build the MNIST subsets shipped for `digitctl finetune`, reproducibly.

    python benchmarks/make_replay_subset.py --mnist /work/shared/data/mnist

writes ``digitctl/assets/replay/mnist_replay.npz`` (uint8, compressed):

- ``x_train``/``y_train``: a stratified sample of the MNIST *training* set, replayed while
  fine-tuning so the model does not forget MNIST;
- ``x_test``/``y_test``: a stratified sample of the MNIST *test* set, for the before/after
  MNIST figure when the full test set is not in the cache;
- ``x_negative``: "not a digit" views (letters, symbols, scribbles, photo crops, empty
  boxes) rendered by :func:`digitctl.synth.render_views` and passed through the product's
  preprocessing, replayed for models with an 11th output (rendering them at fine-tuning
  time took about 10 s of its minute);
- ``meta``: JSON with the seed, the counts and the SHA-256 of the source files.

and ``digitctl/assets/replay/mnist_figures.json``: the bundled model's MNIST figures on
the full test set and on the shipped test subset, measured on its LiteRT export the way
``finetune`` measures (keyed by the SHA-256 of the export and of the images), so that
fine-tuning the bundled model need not measure it again. Rebuild after the bundled model
changes: a stale record is never used (its key no longer matches), only the time is lost.

The same seed and source files give byte-identical arrays (the .npz is written with fixed
timestamps); the negatives also depend on the fonts (matplotlib's DejaVu) and the sample
photo (scikit-learn's ``china.jpg``) that :mod:`digitctl.synth` renders from. MNIST
(LeCun, Cortes, Burges) is distributed under CC BY-SA 3.0; see the README beside the asset.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from digitctl.data import read_idx

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "digitctl" / "assets" / "replay" / "mnist_replay.npz"
BUNDLED_EXPORT = ROOT / "digitctl" / "assets" / "model" / "digitctl_cnn.tflite"


def stratified(labels: np.ndarray, per_digit: int, rng: np.random.Generator) -> np.ndarray:
    picks = [rng.permutation(np.flatnonzero(labels == d))[:per_digit] for d in range(10)]
    return rng.permutation(np.concatenate(picks))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed, but with fixed zip timestamps so reruns are byte-identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def bundled_figures(arrays: dict[str, np.ndarray], replay: Path) -> dict[str, object]:
    """The bundled export's figures on the full MNIST test set and the shipped subset."""
    from digitctl import finetuning as ft

    shipped = ft.load_replay(replay)
    sets = {
        "full test set": (ft._scale(arrays["test_images"]), arrays["test_labels"]),
        "shipped subset": (shipped.x_test, shipped.y_test),
    }
    sha = hashlib.sha256(BUNDLED_EXPORT.read_bytes()).hexdigest()
    run = ft.lite_runner(BUNDLED_EXPORT)
    document: dict[str, object] = {
        "about": f"{BUNDLED_EXPORT.name} measured by benchmarks/make_replay_subset.py "
        "(argmax over all outputs, as digitctl finetune measures)"
    }
    for name, (x, y) in sets.items():
        figures = ft.figures(run, x, y)
        key = ft._figures_key(BUNDLED_EXPORT, sha, ft.test_set_digest(x, y))
        document[key] = {**figures.as_dict(), "loss": figures.loss, "set": name}
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    parser.add_argument("--train-per-digit", type=int, default=300)
    parser.add_argument("--test-per-digit", type=int, default=300)
    parser.add_argument("--negatives", type=int, default=450, help="rendered; fewer are kept")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--output", type=Path, default=TARGET)
    args = parser.parse_args()

    files = {
        "train_images": "train-images-idx3-ubyte.gz",
        "train_labels": "train-labels-idx1-ubyte.gz",
        "test_images": "t10k-images-idx3-ubyte.gz",
        "test_labels": "t10k-labels-idx1-ubyte.gz",
    }
    arrays = {key: read_idx(args.mnist / name) for key, name in files.items()}
    rng = np.random.default_rng(args.seed)
    train = stratified(arrays["train_labels"], args.train_per_digit, rng)
    test = stratified(arrays["test_labels"], args.test_per_digit, rng)
    from digitctl.synth import render_views

    # Renders that preprocessing rejects, or that reduce to a lone stroke (a "1"), are
    # left out, so fewer than --negatives are kept.
    rendered = render_views(
        np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8), 0, args.negatives, args.seed
    )
    negatives = np.round(rendered.views * 255).astype(np.uint8)
    meta = {
        "source": "MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0",
        "seed": args.seed,
        "train_per_digit": args.train_per_digit,
        "test_per_digit": args.test_per_digit,
        "negatives_rendered": args.negatives,
        "negatives_kept": len(negatives),
        "negative_kinds": {k.split(":", 1)[1]: n for k, n in rendered.rendered.items()},
        "train_indices_sha256": hashlib.sha256(train.astype("<i8").tobytes()).hexdigest(),
        "test_indices_sha256": hashlib.sha256(test.astype("<i8").tobytes()).hexdigest(),
        "files_sha256": {
            name: hashlib.sha256((args.mnist / name).read_bytes()).hexdigest()
            for name in files.values()
        },
        "command": "python benchmarks/make_replay_subset.py "
        f"--train-per-digit {args.train_per_digit} --test-per-digit {args.test_per_digit} "
        f"--negatives {args.negatives} --seed {args.seed}",
    }
    write_npz(
        args.output,
        {
            "x_train": arrays["train_images"][train],
            "y_train": arrays["train_labels"][train],
            "x_test": arrays["test_images"][test],
            "y_test": arrays["test_labels"][test],
            "train_index": train.astype(np.int32),
            "test_index": test.astype(np.int32),
            "x_negative": negatives,
            "meta": np.array(json.dumps(meta)),
        },
    )
    from digitctl.atomic import write_json

    figures_path = args.output.parent / "mnist_figures.json"
    write_json(figures_path, bundled_figures(arrays, args.output))
    print(f"wrote {figures_path}")
    print(
        f"wrote {args.output} ({args.output.stat().st_size / 1e6:.2f} MB): "
        f"{len(train)} training and {len(test)} test images, {len(negatives)} negatives"
    )


if __name__ == "__main__":
    main()
