"""matplotlib artifacts, one function per figure, written atomically.

Each figure is a ``matplotlib.figure.Figure`` on its own Agg canvas: no pyplot, so no
global figure state and no backend forced on whoever imports digitctl.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from digitctl.atomic import write_with

if TYPE_CHECKING:
    from digitctl.imaging import ImageSource
    from digitctl.reading import Reading


def new_figure(**kwargs: Any) -> Any:
    """A Figure drawn by the Agg canvas (garbage-collected, never registered with pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure: Any, path: Path) -> Path:
    """Write ``figure`` to ``path`` atomically."""
    write_with(
        path,
        lambda tmp: figure.savefig(
            tmp, dpi=100, bbox_inches="tight", format=path.suffix.lstrip(".") or "png"
        ),
    )
    return path


def plot_class_distribution(counts: dict[str, np.ndarray], path: Path) -> Path:
    """Bar chart of images per digit for each split (``counts[split]`` has 10 entries)."""
    figure = new_figure(figsize=(8, 4))
    axis = figure.subplots()
    width = 0.8 / max(1, len(counts))
    digits = np.arange(10)
    for index, (split, values) in enumerate(counts.items()):
        axis.bar(digits + index * width, values, width=width, label=split)
    axis.set_xticks(digits + width * (len(counts) - 1) / 2, [str(d) for d in digits])
    axis.set_xlabel("digit")
    axis.set_ylabel("images")
    axis.set_title("MNIST class distribution")
    axis.legend()
    return save_figure(figure, path)


def plot_image_grid(
    images: np.ndarray, titles: list[str], path: Path, suptitle: str, columns: int = 10
) -> Path:
    """A grid of 28×28 images with a title under each."""
    count = len(images)
    rows = max(1, int(np.ceil(count / columns)))
    figure = new_figure(figsize=(columns * 1.2, rows * 1.4))
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(np.atleast_1d(axes).ravel()):
        axis.axis("off")
        if index < count:
            axis.imshow(np.asarray(images[index]).reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            axis.set_title(titles[index], fontsize=8)
    figure.suptitle(suptitle)
    return save_figure(figure, path)


def plot_training_history(
    history: dict[str, list[float]], path: Path, best_epoch: int | None = None
) -> Path:
    """Loss and accuracy per epoch for training and validation, the best epoch marked."""
    figure = new_figure(figsize=(11, 4))
    loss_axis, acc_axis = figure.subplots(1, 2)
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for axis, key, label in ((loss_axis, "loss", "loss"), (acc_axis, "accuracy", "accuracy")):
        if history.get(key):
            axis.plot(epochs, history[key], marker="o", label=f"training {label}")
        if history.get(f"val_{key}"):
            axis.plot(epochs, history[f"val_{key}"], marker="o", label=f"validation {label}")
        if best_epoch:
            axis.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend()
    loss_axis.set_title("Loss")
    acc_axis.set_title("Accuracy")
    return save_figure(figure, path)


def plot_confusion_matrix(matrix: np.ndarray, path: Path, title: str = "Confusion matrix") -> Path:
    """The 10×10 confusion matrix (rows: true digit, columns: predicted), counts annotated."""
    matrix = np.asarray(matrix)
    figure = new_figure(figsize=(7, 6))
    axis = figure.subplots()
    # Log-scaled colours: the diagonal dwarfs the mistakes, which are what one looks for.
    image = axis.imshow(np.log1p(matrix), cmap="Blues")
    threshold = np.log1p(matrix).max() / 2 if matrix.size else 0
    for (row, column), value in np.ndenumerate(matrix):
        axis.text(
            column,
            row,
            str(int(value)),
            ha="center",
            va="center",
            fontsize=8,
            color="white" if np.log1p(value) > threshold else "black",
        )
    axis.set_xticks(range(matrix.shape[1]))
    axis.set_yticks(range(matrix.shape[0]))
    axis.set_xlabel("predicted digit")
    axis.set_ylabel("true digit")
    axis.set_title(title)
    figure.colorbar(image, ax=axis, label="log(1 + count)")
    return save_figure(figure, path)


def plot_reading(source: ImageSource, answer: Reading, path: Path) -> Path:
    """The input with each digit's box, label and confidence, and each digit's 28×28 view."""
    from matplotlib.patches import Rectangle

    from digitctl.imaging import load_image

    image = load_image(source)
    shown = image.convert("RGBA") if "A" in image.getbands() else image.convert("RGB")
    count = max(1, len(answer.digits))
    figure = new_figure(figsize=(max(8, 1.6 * count), 6))
    grid = figure.add_gridspec(2, count, height_ratios=[3, 1.2])
    axis = figure.add_subplot(grid[0, :])
    axis.imshow(shown)
    for digit in answer.digits:
        x0, y0, x1, y1 = digit.box
        colour = "tab:orange" if digit.uncertain else "tab:green"
        axis.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color=colour, lw=2))
        axis.text(
            x0,
            y0,
            f"{digit.label} {digit.confidence:.0%}",
            color="white",
            backgroundcolor=colour,
            fontsize=10,
            va="bottom",
        )
    title = answer.text.replace("\n", " / ") if answer.text else (answer.reason or answer.status)
    axis.set_title(f"reading: {title}")
    axis.axis("off")
    for index, digit in enumerate(answer.digits):
        view_axis = figure.add_subplot(grid[1, index])
        view_axis.imshow(digit.view, cmap="gray", vmin=0, vmax=1)
        view_axis.set_title(f"{digit.label} ({digit.confidence:.0%})", fontsize=9)
        view_axis.axis("off")
    return save_figure(figure, path)
