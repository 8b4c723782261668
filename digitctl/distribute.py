"""tf.distribute strategies for ``digitctl train --strategy``.

- ``default``: one device, TensorFlow's default strategy.
- ``mirrored``: :class:`tf.distribute.MirroredStrategy`, synchronous data parallelism over
  every local GPU (or the CPU when there is none).
- ``multi-worker``: :class:`tf.distribute.MultiWorkerMirroredStrategy` over several
  machines (or processes) described by the ``TF_CONFIG`` environment variable, e.g.::

      TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
                  "task": {"type": "worker", "index": 0}}'

  Every worker runs the same ``digitctl train --strategy multi-worker`` command with its
  own ``task.index``. The chief (a ``chief`` task, else worker 0) writes the model and
  the artifacts; the other workers write nothing.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from digitctl.errors import ConfigError


@dataclass(frozen=True)
class Distribution:
    """A strategy with the facts training needs about it."""

    name: str
    strategy: Any
    replicas: int
    is_chief: bool
    worker: str  # e.g. "worker 1 of 2", for messages


def cluster_from_environment(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Parse and check ``TF_CONFIG`` for multi-worker training."""
    environ = dict(os.environ) if environ is None else environ
    raw = environ.get("TF_CONFIG", "")
    if not raw.strip():
        raise ConfigError(
            "--strategy multi-worker needs TF_CONFIG describing the cluster, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}'
        )
    try:
        config = json.loads(raw)
        cluster = config["cluster"]
        task = config["task"]
        task_type, index = str(task["type"]), int(task["index"])
        members = cluster[task_type]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"TF_CONFIG is not a valid cluster description ({exc}); it needs "
            '"cluster" with a list of addresses per task type and "task" with "type" and "index"'
        ) from None
    if not isinstance(members, list) or not 0 <= index < len(members):
        raise ConfigError(f"TF_CONFIG task index {index} is not in the {task_type} list")
    return config


def is_chief_task(config: dict[str, Any]) -> bool:
    task_type, index = config["task"]["type"], int(config["task"]["index"])
    if "chief" in config["cluster"]:
        return task_type == "chief"
    return task_type == "worker" and index == 0


def make_distribution(name: str) -> Distribution:
    """Create the strategy called ``name``; call before building any model."""
    import tensorflow as tf

    if name == "default":
        strategy = tf.distribute.get_strategy()
        return Distribution(name, strategy, 1, True, "single process")
    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        return Distribution(name, strategy, strategy.num_replicas_in_sync, True, "single process")
    if name == "multi-worker":
        config = cluster_from_environment()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        workers = sum(len(v) for k, v in config["cluster"].items() if k in ("chief", "worker"))
        task = config["task"]
        return Distribution(
            name,
            strategy,
            strategy.num_replicas_in_sync,
            is_chief_task(config),
            f"{task['type']} {task['index']} of {workers}",
        )
    raise ConfigError(f"unknown strategy {name!r}; choose default, mirrored or multi-worker")


def fit_multi_worker(
    model: Any,
    dataset: Any,
    *,
    distribution: Distribution,
    epochs: int,
    initial_epoch: int,
    steps_per_epoch: int,
    global_batch: int,
    validation_data: tuple[Any, Any],
    callbacks: list[Any],
) -> None:
    """``model.fit`` for MultiWorkerMirroredStrategy, as a custom training loop.

    Keras 3's ``fit`` fails under this strategy on TensorFlow 2.16+ (it all-reduces a tuple
    of per-replica batches while building, then reduces scalar metrics along axis 0:
    keras-team/keras#20585, tensorflow/tensorflow#72388). This loop uses only public
    tf.distribute APIs: the Keras optimizer all-reduces the gradients itself, the loss is
    averaged over the global batch, and every worker evaluates the (small) validation
    set locally on its synchronised weights, so all workers take the same decisions.
    Keras callbacks are driven as ``fit`` would drive them.
    """
    import keras
    import tensorflow as tf

    strategy = distribution.strategy
    train_step = _train_step(model, strategy, dataset, global_batch)
    validate = _validation(model, *validation_data)

    callback_list = keras.callbacks.CallbackList(
        callbacks, model=model, epochs=epochs, steps=steps_per_epoch, verbose=0
    )
    model.stop_training = False
    callback_list.on_train_begin()
    for epoch in range(initial_epoch, epochs):
        callback_list.on_epoch_begin(epoch)
        loss_sum = correct_sum = 0.0
        for step in range(steps_per_epoch):
            callback_list.on_train_batch_begin(step)
            loss, correct = train_step()
            loss_sum += float(loss)
            correct_sum += float(correct)
            callback_list.on_train_batch_end(
                step,
                {
                    "loss": loss_sum / (step + 1),
                    "accuracy": correct_sum / ((step + 1) * global_batch),
                },
            )
        # Batch-norm statistics are per worker, so validation figures can differ in the
        # last digits; averaging them keeps every worker's best-epoch and early-stopping
        # decisions identical (a worker that stopped alone would hang the others).
        local = tf.constant(validate(), dtype="float32")
        val_loss, val_accuracy = (
            float(v) for v in strategy.reduce(tf.distribute.ReduceOp.MEAN, local, axis=None)
        )
        logs = {
            "loss": loss_sum / steps_per_epoch,
            "accuracy": correct_sum / (steps_per_epoch * global_batch),
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end()


def _train_step(model: Any, strategy: Any, dataset: Any, global_batch: int) -> Any:
    """One synchronous step on every replica: (summed loss, summed correct answers)."""
    import keras
    import tensorflow as tf

    optimizer = model.optimizer
    per_example_loss = keras.losses.SparseCategoricalCrossentropy(reduction=None)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    def replica_step(images: Any, labels: Any) -> tuple[Any, Any]:
        with tf.GradientTape() as tape:
            probabilities = model(images, training=True)
            loss = tf.nn.compute_average_loss(
                per_example_loss(labels, probabilities), global_batch_size=global_batch
            )
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
        predicted = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
        correct = tf.reduce_sum(tf.cast(tf.equal(predicted, tf.cast(labels, tf.int64)), "float32"))
        return loss, correct

    @tf.function
    def train_step() -> tuple[Any, Any]:
        images, labels = next(iterator)
        loss, correct = strategy.run(replica_step, args=(images, labels))
        return (
            strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
            strategy.reduce(tf.distribute.ReduceOp.SUM, correct, axis=None),
        )

    return train_step


def _validation(model: Any, x_val: Any, y_val: Any) -> Any:
    """A function computing (mean loss, accuracy) on the validation set, on this worker."""
    import keras
    import numpy as np
    import tensorflow as tf

    per_example_loss = keras.losses.SparseCategoricalCrossentropy(reduction=None)

    @tf.function
    def predict_batch(images: Any) -> Any:
        return model(images, training=False)

    def validate() -> tuple[float, float]:
        losses, correct = [], 0
        for start in range(0, len(x_val), 512):
            probabilities = predict_batch(x_val[start : start + 512]).numpy()
            labels = y_val[start : start + 512]
            losses.append(per_example_loss(labels, probabilities).numpy())
            correct += int(np.sum(np.argmax(probabilities, axis=-1) == labels))
        return float(np.concatenate(losses).mean()), correct / len(x_val)

    return validate
