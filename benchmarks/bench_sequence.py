"""The sequence model on its own: composed strings of MNIST *test* digits, read whole.

Strings of 1-6 touching and overlapping digits are composed from MNIST test digits by
the training composer (:func:`digitctl.sequence.training_strings`, a seed the training
never uses), and read by the sequence model's LiteRT file (greedy CTC decoding). Reports
the share read exactly and the share with the right number of digits, by length, and the
time a strip takes. This is the model's test figure, for its model card: run it once per
model, after the model was chosen on validation data.

    python benchmarks/bench_sequence.py [--model PATH.tflite] [--count 5000]
        [--seed 2026] [--out benchmarks/results/bench_sequence.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import framing_sets as fs  # noqa: E402


def main() -> None:
    from digitctl import sequence
    from digitctl.modelfiles import bundled_sequence_path
    from digitctl.runners import LiteRTRunner, run_batched

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=bundled_sequence_path())
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--mnist", type=Path, default=fs.DEFAULT_MNIST)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "bench_sequence.json")
    args = parser.parse_args()

    images, labels = fs.load_mnist_test(args.mnist)
    strips, targets = sequence.training_strings(images, labels, args.count, args.seed)
    runner = LiteRTRunner(args.model, num_threads=1)
    x = strips[..., None].astype("float32") / 255.0
    started = time.perf_counter()
    probabilities = run_batched(runner, x, batch=64)
    per_strip_ms = (time.perf_counter() - started) / len(x) * 1000
    by_length: dict[int, dict[str, int]] = {}
    for row, target in zip(probabilities, targets, strict=True):
        truth = [int(t) for t in target if t >= 0]
        read = sequence.greedy_decode(row).labels
        tally = by_length.setdefault(len(truth), {"strings": 0, "exact": 0, "count_right": 0})
        tally["strings"] += 1
        tally["exact"] += read == truth
        tally["count_right"] += len(read) == len(truth)
    total = {k: sum(t[k] for t in by_length.values()) for k in ("strings", "exact", "count_right")}
    result = {
        "command": "python " + " ".join(sys.argv),
        "model": str(args.model),
        "seed": args.seed,
        "strings": total["strings"],
        "exact": total["exact"] / total["strings"],
        "count_right": total["count_right"] / total["strings"],
        "by_length": {
            str(n): {**t, "exact_share": t["exact"] / t["strings"]}
            for n, t in sorted(by_length.items())
        },
        "ms_per_strip_one_thread_batch_64": round(per_strip_ms, 3),
        "machine": fs.machine_info(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{total['strings']} strings of MNIST test digits: exact {result['exact']:.2%}, "
        f"right count {result['count_right']:.2%}; {per_strip_ms:.2f} ms a strip "
        f"(CPU {result['machine']['cpu_model']})"
    )
    for n, t in sorted(by_length.items()):
        print(f"  {n} digit(s): {t['exact'] / t['strings']:.2%} of {t['strings']}")


if __name__ == "__main__":
    main()
