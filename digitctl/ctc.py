"""What the two CTC models (:mod:`digitctl.sequence`, :mod:`digitctl.reader_training`)
share in training: the loss, softmax over logits, and a Rich progress callback.
TensorFlow and Keras are imported inside the functions that need them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rich.progress import Progress


@dataclass
class CtcTrainResult:
    """What training a CTC model wrote: the ``.keras``, its LiteRT export and its card."""

    model_path: Path
    lite_path: Path
    card_path: Path
    card: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.model_path),
            "lite": str(self.lite_path),
            "card": str(self.card_path),
            **self.card,
        }


def ctc_loss(blank: int) -> Callable[[Any, Any], Any]:
    """The mean CTC loss of logits (batch, steps, classes) against labels padded with -1,
    ``blank`` being the blank's class; named ``ctc_loss_<blank>`` for saved models."""

    def loss(y_true: Any, logits: Any) -> Any:
        import tensorflow as tf

        labels = tf.cast(y_true, tf.int32)
        label_length = tf.reduce_sum(tf.cast(labels >= 0, tf.int32), axis=1)
        logit_length = tf.fill([tf.shape(logits)[0]], tf.shape(logits)[1])
        per_item = tf.nn.ctc_loss(
            labels=tf.maximum(labels, 0),
            logits=logits,
            label_length=label_length,
            logit_length=logit_length,
            logits_time_major=False,
            blank_index=blank,
        )
        return tf.reduce_mean(per_item)

    loss.__name__ = f"ctc_loss_{blank}"
    return loss


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def progress_callback(progress: Progress, task: Any) -> Any:
    """A Keras callback that advances a Rich progress task by one step per batch."""
    import keras

    class Callback(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            progress.advance(task)

    return Callback()
