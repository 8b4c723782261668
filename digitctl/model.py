"""The CNN architectures and training recipes, built by name.

A recipe is the whole training plan (architecture, epochs, batch size, peak learning rate,
schedule, augmentation default); the flags of ``digitctl train`` override its parts.
:func:`build_and_compile` creates and compiles a model in one call so that a caller can
run it inside ``strategy.scope()`` for distributed training.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from digitctl.choices import RecipeName, choose
from digitctl.errors import ConfigError

NUM_CLASSES = 10
INPUT_SHAPE = (28, 28, 1)


@dataclass(frozen=True)
class Recipe:
    """A named training plan. ``blocks`` are the filter counts of the conv stages."""

    name: str
    blocks: tuple[tuple[int, ...], ...]
    dense_units: int
    dropout: float
    head_dropout: float
    epochs: int
    batch_size: int
    learning_rate: float  # peak of the one-cycle schedule
    warmup_fraction: float
    augment: bool
    patience: int  # epochs without a better validation score before stopping
    # Augmentation strength: rotation in degrees, zoom and translation as fractions.
    rotation_degrees: float = 10.0
    zoom: float = 0.10
    translation: float = 0.10
    # Batch-norm moving-average momentum: a short run needs its statistics to settle in
    # fewer steps than Keras' default 0.99 allows.
    bn_momentum: float = 0.99
    # Batch norm after the first convolution too. Off in `fast`: at full 28×28 resolution
    # it costs a third of the step time of that small network for no measurable gain.
    stem_batchnorm: bool = True
    # Keras dtype policy of the layers while training ("auto": mixed_bfloat16 where the
    # CPU computes bfloat16 natively, else float32). The saved and exported models are
    # always float32 (mixed policies keep float32 weights, so they copy over exactly).
    dtype_policy: str = "float32"
    # 11: a "not a digit" class (index 10) learned from synthetic negatives, and training
    # on digits framed the way people crop them (digitctl.robust). 10: digits only.
    num_classes: int = NUM_CLASSES
    framed: int = 0  # synthetic framed digits rendered for training (robust recipes)
    negatives: int = 0  # synthetic non-digits (letters, symbols, scribbles, photos, boxes)
    pieces: int = 0  # pieces of digits, as non-digits (wrong cuts of touching digits)
    pairs: int = 0  # touching pairs of digits, as non-digits (a number read as one glyph)
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RECIPES: dict[str, Recipe] = {
    RecipeName.BEST: Recipe(
        name="best",
        blocks=((32,), (64, 64), (128,)),
        dense_units=128,
        dropout=0.1,
        head_dropout=0.3,
        epochs=20,
        batch_size=128,
        learning_rate=3e-3,
        warmup_fraction=0.15,
        augment=True,
        patience=8,
        description="32/64-64/128 conv blocks with batch norm, mild augmentation, "
        "one-cycle (linear warm-up, cosine decay) Adam",
    ),
    RecipeName.ROBUST: Recipe(
        name="robust",
        blocks=((32,), (64, 64), (128,)),
        dense_units=128,
        dropout=0.1,
        head_dropout=0.3,
        epochs=8,
        batch_size=128,
        learning_rate=1e-3,
        warmup_fraction=0.1,
        augment=True,
        patience=3,
        num_classes=11,
        framed=14000,
        negatives=14000,
        pieces=5000,
        pairs=6000,
        description="the best recipe's network with an 11th class, 'not a digit'; MNIST plus "
        "framed digits (boxes, rules, underlines, tight crops, low resolution) and negatives "
        "(letters, symbols, scribbles, photo crops, empty boxes, pieces of digits, touching "
        "pairs); meant to fine-tune a digits model (--init-model) for 8 epochs of one-cycle Adam",
    ),
    RecipeName.FAST: Recipe(
        name="fast",
        blocks=((16,), (32,), (64,)),
        dense_units=0,
        dropout=0.0,
        head_dropout=0.0,
        epochs=2,
        batch_size=256,
        learning_rate=1.5e-2,
        warmup_fraction=0.25,
        augment=False,
        patience=2,
        bn_momentum=0.9,
        stem_batchnorm=False,
        dtype_policy="auto",
        description="16/32/64 conv blocks with batch norm (not on the stem), no augmentation, "
        "2 epochs of one-cycle Adam at batch 256, bfloat16 compute where the CPU has it: "
        ">= 99.0% test accuracy in about 16 s of training on 2 CPU cores (AMD EPYC with "
        "AVX512-BF16; docs/benchmarks.md)",
    ),
}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; a ConfigError for a name that is not a RecipeName."""
    chosen = choose(RecipeName, name, "recipe")
    if chosen not in RECIPES:
        raise ConfigError(
            f"recipe {chosen!r} trains the sequence model, not a digit CNN; "
            "use `digitctl train --recipe sequence`"
        )
    return RECIPES[chosen]


def build_model(recipe: Recipe, seed: int | None = None, for_training: bool = False) -> Any:
    """The CNN of ``recipe``: Conv-BN-ReLU stages, each closed by max pooling and dropout,
    then an optional dense layer and a softmax over the 10 digits (and "not a digit" for
    11-class recipes).

    ``for_training`` applies the recipe's dtype policy; otherwise the model is float32.
    """
    import keras
    from keras import layers

    policy = resolve_dtype_policy(recipe.dtype_policy) if for_training else "float32"

    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=INPUT_SHAPE, name="image")
    x = inputs
    for stage, filters_list in enumerate(recipe.blocks, start=1):
        for index, filters in enumerate(filters_list, start=1):
            if stage == 1 and index == 1 and not recipe.stem_batchnorm:
                x = layers.Conv2D(
                    filters,
                    3,
                    padding="same",
                    activation="relu",
                    name=f"conv{stage}_{index}",
                    dtype=policy,
                )(x)
                continue
            # No bias: batch normalization right after makes it redundant.
            x = layers.Conv2D(
                filters,
                3,
                padding="same",
                use_bias=False,
                name=f"conv{stage}_{index}",
                dtype=policy,
            )(x)
            x = layers.BatchNormalization(
                momentum=recipe.bn_momentum, name=f"bn{stage}_{index}", dtype=policy
            )(x)
            x = layers.ReLU(name=f"relu{stage}_{index}", dtype=policy)(x)
        x = layers.MaxPooling2D(2, name=f"pool{stage}", dtype=policy)(x)
        if recipe.dropout:
            x = layers.Dropout(recipe.dropout, name=f"drop{stage}", dtype=policy)(x)
    x = layers.Flatten(name="flatten", dtype=policy)(x)
    if recipe.dense_units:
        x = layers.Dense(recipe.dense_units, use_bias=False, name="dense", dtype=policy)(x)
        x = layers.BatchNormalization(momentum=recipe.bn_momentum, name="bn_dense", dtype=policy)(x)
        x = layers.ReLU(name="relu_dense", dtype=policy)(x)
    if recipe.head_dropout:
        x = layers.Dropout(recipe.head_dropout, name="drop_head", dtype=policy)(x)
    # The softmax stays float32 whatever the policy: bfloat16 probabilities are too coarse.
    outputs = layers.Dense(recipe.num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"digitctl_cnn_{recipe.name}")


def resolve_dtype_policy(policy: str) -> str:
    """``auto`` → ``mixed_bfloat16`` on CPUs with native bfloat16 (AVX512-BF16 or AMX),
    else ``float32``: emulated bfloat16 would be slower than float32."""
    if policy != "auto":
        return policy
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = handle.read()
    except OSError:  # not Linux: stay with the safe choice
        return "float32"
    return "mixed_bfloat16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "float32"


def one_cycle_schedule(peak: float, total_steps: int, warmup_fraction: float) -> Any:
    """Linear warm-up from peak/25 to ``peak``, then cosine decay to peak/1000.

    Keras' own CosineDecay (with warm-up) so that a saved model reloads without custom
    objects.
    """
    import keras

    total_steps = max(2, int(total_steps))
    warmup = max(1, int(math.ceil(total_steps * warmup_fraction)))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 25.0,
        decay_steps=max(1, total_steps - warmup),
        alpha=1e-3,
        warmup_target=peak,
        warmup_steps=warmup,
        name="one_cycle",
    )


def build_and_compile(
    recipe: Recipe | str,
    *,
    learning_rate: float | None = None,
    total_steps: int,
    seed: int | None = None,
) -> Any:
    """Build and compile ``recipe``'s model with Adam on a one-cycle schedule.

    Call inside ``strategy.scope()`` to place the variables for distributed training.
    ``total_steps`` is the number of optimizer steps the schedule spans.
    """
    import keras

    if isinstance(recipe, str):
        recipe = get_recipe(recipe)
    model = build_model(recipe, seed=seed, for_training=True)
    schedule = one_cycle_schedule(
        learning_rate or recipe.learning_rate, total_steps, recipe.warmup_fraction
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def build_augmenter(recipe: Recipe, seed: int) -> Any:
    """Keras preprocessing layers for on-the-fly augmentation: small rotation, zoom and
    translation, filled with black (the MNIST background).

    Only the rotation interpolates bilinearly: three bilinear resamplings in a row blur
    the strokes visibly, and a network trained on blurred digits is tested on sharp ones.
    """
    import keras
    from keras import layers

    return keras.Sequential(
        [
            layers.RandomRotation(recipe.rotation_degrees / 360.0, fill_mode="constant", seed=seed),
            layers.RandomZoom(
                recipe.zoom,
                recipe.zoom,
                fill_mode="constant",
                interpolation="nearest",
                seed=seed + 1,
            ),
            layers.RandomTranslation(
                recipe.translation,
                recipe.translation,
                fill_mode="constant",
                interpolation="nearest",
                seed=seed + 2,
            ),
        ],
        name="augmentation",
    )
