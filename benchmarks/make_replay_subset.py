"""Build the MNIST subsets shipped for `digitctl finetune`, reproducibly.

    python benchmarks/make_replay_subset.py --mnist /work/shared/data/mnist

writes ``digitctl/assets/replay/mnist_replay.npz`` (uint8, compressed):

- ``x_train``/``y_train``: a stratified sample of the MNIST *training* set, replayed while
  fine-tuning so the model does not forget MNIST;
- ``x_test``/``y_test``: a stratified sample of the MNIST *test* set, for the before/after
  MNIST figure when the full test set is not in the cache;
- ``meta``: JSON with the seed, the counts and the SHA-256 of the source files.

The same seed and source files give byte-identical arrays (the .npz is written with fixed
timestamps). MNIST (LeCun, Cortes, Burges) is distributed under CC BY-SA 3.0; see the
README beside the asset.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared" / "data" / "mnist")
    parser.add_argument("--train-per-digit", type=int, default=300)
    parser.add_argument("--test-per-digit", type=int, default=300)
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
    meta = {
        "source": "MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0",
        "seed": args.seed,
        "train_per_digit": args.train_per_digit,
        "test_per_digit": args.test_per_digit,
        "train_indices_sha256": hashlib.sha256(train.astype("<i8").tobytes()).hexdigest(),
        "test_indices_sha256": hashlib.sha256(test.astype("<i8").tobytes()).hexdigest(),
        "files_sha256": {
            name: hashlib.sha256((args.mnist / name).read_bytes()).hexdigest()
            for name in files.values()
        },
        "command": "python benchmarks/make_replay_subset.py "
        f"--train-per-digit {args.train_per_digit} --test-per-digit {args.test_per_digit} "
        f"--seed {args.seed}",
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
            "meta": np.array(json.dumps(meta)),
        },
    )
    print(
        f"wrote {args.output} ({args.output.stat().st_size / 1e6:.2f} MB): "
        f"{len(train)} training and {len(test)} test images"
    )


if __name__ == "__main__":
    main()
