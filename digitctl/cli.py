"""The ``digitctl`` command line: one thin function per command.

Commands resolve the settings, call one library function and present its result. The
library never prints; errors it raises (:class:`DigitctlError`) become one red line on
stderr and a non-zero exit status here.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from digitctl import __version__, ui
from digitctl.choices import Engine, ExportFormat, ReaderName, RecipeName, SaveFormat, Strategy
from digitctl.config import Settings, describe, load_settings
from digitctl.errors import ConfigError, DigitctlError

app = typer.Typer(
    name="digitctl",
    help="Recognise handwritten digits: download MNIST, train a CNN, evaluate, predict, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    """What the top-level options tell every command."""

    config_file: Path | None = None
    debug: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)

    def settings(self, **flags: Any) -> Settings:
        return load_settings(self.config_file, {**self.overrides, **flags})


def _state(ctx: typer.Context) -> CliState:
    if not isinstance(ctx.obj, CliState):
        ctx.obj = CliState()
    return ctx.obj


def handles_errors(command: F) -> F:
    """Turn DigitctlError into one red line and its exit status (traceback with --debug).

    Every command takes ``ctx: typer.Context`` as a keyword so the wrapper can read --debug.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = kwargs.get("ctx")
        debug = isinstance(ctx, typer.Context) and _state(ctx).debug
        try:
            return command(*args, **kwargs)
        except DigitctlError as exc:
            if debug:
                raise
            ui.error_line(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            if debug:
                raise
            ui.error_line("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"digitctl {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML settings file (default: ./digitctl.toml if present, or $DIGITCTL_CONFIG).",
        ),
    ] = None,
    workspace: Annotated[
        Path | None,
        typer.Option(help="Workspace for models/ and artifacts/ (default: current directory)."),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Where downloaded and processed data is cached.")
    ] = None,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="Show full tracebacks on errors and native libraries' logs."),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Recognise handwritten digits: download MNIST, train a CNN, evaluate, predict, serve."""
    ctx.obj = CliState(
        config_file=config,
        # Read here too, not only as the `debug` setting: a traceback is wanted even when
        # the settings themselves fail to load.
        debug=debug or os.environ.get("DIGITCTL_DEBUG", "") not in ("", "0"),
        overrides={"workspace": workspace, "cache_dir": cache_dir, "debug": debug or None},
    )


# --------------------------------------------------------------------------------------
# config
# --------------------------------------------------------------------------------------
@app.command("config")
@handles_errors
def config_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the settings as JSON.")] = False,
) -> None:
    """Show the resolved settings and where each value came from."""
    settings = _state(ctx).settings()
    rows = describe(settings)
    if as_json:
        ui.print_json(
            {row["name"]: {"value": row["value"], "source": row["source"]} for row in rows}
        )
        return
    ui.out_console().print(
        ui.table(
            "digitctl settings",
            ["setting", "value", "source"],
            [(r["name"], r["value"], r["source"]) for r in rows],
        )
    )


# --------------------------------------------------------------------------------------
# download / preprocess
# --------------------------------------------------------------------------------------
UnsafeLoadOption = Annotated[
    bool | None,
    typer.Option(
        "--unsafe-load",
        help="Allow models that run Python code on load (Lambda layers); only for trusted files.",
    ),
]
MirrorOption = Annotated[
    str | None,
    typer.Option(
        "--mirror",
        help="A folder or http(s) base URL holding the four MNIST .gz files, tried first.",
    ),
]


@app.command()
@handles_errors
def download(
    ctx: typer.Context,
    mirror: MirrorOption = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds without data before a mirror is abandoned.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Download the four MNIST archives into the cache, verified."""
    from digitctl import data

    settings = _state(ctx).settings(mirror=mirror, download_timeout=timeout)
    with ui.transfer_progress() as progress:
        result = data.download_mnist(settings, progress=progress)
    if as_json:
        ui.print_json(result.as_dict())
        return
    for item in result.files:
        ui.info(f"[green]✓[/green] {item.name}  {item.status}  ({item.check})  from {item.source}")
    ui.info(f"MNIST is in {result.directory}")


@app.command()
@handles_errors
def preprocess(
    ctx: typer.Context,
    mirror: MirrorOption = None,
    val_split: Annotated[
        float | None, typer.Option(help="Fraction of the training set held out for validation.")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the stratified split.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Parse the IDX files into one processed, fingerprinted .npz and plot the data."""
    from digitctl import data

    settings = _state(ctx).settings(mirror=mirror, val_split=val_split, seed=seed)
    with ui.task_progress() as progress:
        result = data.preprocess(settings, progress=progress)
    if as_json:
        ui.print_json(result.as_dict())
        return
    verb = "reused (inputs unchanged)" if result.cached else "built"
    ui.info(f"[green]✓[/green] processed data {verb}: {ui.short_path(result.path)}")
    ui.out_console().print(
        ui.table(
            None,
            ["split", "images"],
            [
                ("train", result.counts["train"]),
                ("validation", result.counts["val"]),
                ("test", result.counts["test"]),
            ],
        )
    )
    for artifact in result.artifacts:
        ui.info(f"  wrote {ui.short_path(artifact)}")


@app.command()
@handles_errors
def train(
    ctx: typer.Context,
    recipe: Annotated[
        RecipeName | None,
        typer.Option(
            help="Training recipe: best (highest MNIST accuracy), fast (>= 99% test "
            "accuracy in ~16 s of training, ~25 s in all, measured on a 2-core AMD EPYC), "
            "robust (framed digits and a 'not a digit' class, as the bundled model), "
            "sequence (the touching-digits model) or reader (the line reader; --limit is "
            "scenes per epoch)."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: the recipe's).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per step.")] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Peak learning rate of the one-cycle schedule.")
    ] = None,
    val_split: Annotated[
        float | None, typer.Option(help="Fraction of the training set held out for validation.")
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Train on the first N training images only.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of the split, weights and shuffling.")
    ] = None,
    augment: Annotated[
        bool | None,
        typer.Option(
            "--augment/--no-augment",
            help="Random rotation, zoom and translation (default: the recipe's).",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the interrupted run in this workspace, with its own settings.",
        ),
    ] = False,
    save_format: Annotated[
        SaveFormat,
        typer.Option("--format", help="keras, or h5 to write the legacy .h5 file as well."),
    ] = SaveFormat.KERAS,
    strategy: Annotated[
        Strategy | None,
        typer.Option(
            help="default, mirrored (all local GPUs) or multi-worker (machines in TF_CONFIG)."
        ),
    ] = None,
    init_model: Annotated[
        Path | None,
        typer.Option(
            "--init-model",
            help="Start from this model's weights (fine-tuning; a 10-class model can start "
            "the 11-class robust recipe).",
        ),
    ] = None,
    mirror: MirrorOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Train the CNN on MNIST and save the best model (by validation accuracy)."""
    from digitctl import training

    settings = _state(ctx).settings(
        recipe=recipe,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        val_split=val_split,
        limit=limit,
        seed=seed,
        augment=augment,
        mirror=mirror,
        strategy=strategy,
        init_model=init_model,
    )
    if settings.recipe in (RecipeName.SEQUENCE, RecipeName.READER):
        _refuse_for_sequence(
            settings.recipe,
            resume=resume and settings.recipe == RecipeName.SEQUENCE,
            h5=save_format == SaveFormat.H5,
            strategy=strategy,
            init_model=init_model,
            augment=augment,
            val_split=val_split,
        )
    with ui.task_progress() as progress:
        result = training.train_model(
            settings, progress=progress, resume=resume, save_format=save_format
        )
    if as_json:
        ui.print_json(result.as_dict())
        return
    rows = [
        (label, ui.short_path(value) if isinstance(value, Path) else value)
        for label, value in result.summary_rows()
    ]
    ui.out_console().print(ui.table("Training summary", ["", ""], rows))


def _refuse_for_sequence(recipe: str, **options: Any) -> None:
    """The CNN options that the sequence and reader recipes cannot honour: one clear
    error, not a silent run without them."""
    given = [
        name.replace("_", "-") for name, value in options.items() if value not in (None, False)
    ]
    if given:
        raise ConfigError(
            f"--{given[0]} does not apply to the {recipe} recipe; it takes --epochs, "
            "--batch-size, --learning-rate, --seed and --limit"
            + (" (and --resume)" if recipe == RecipeName.READER else "")
        )


@app.command()
@handles_errors
def evaluate(
    ctx: typer.Context,
    model: Annotated[
        Path | None,
        typer.Option(help="A .keras/.h5 model (default: the workspace's, else the bundled one)."),
    ] = None,
    unsafe_load: UnsafeLoadOption = None,
    report: Annotated[
        bool, typer.Option("--report", help="Show the per-class report and confusion matrix.")
    ] = False,
    mirror: MirrorOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
) -> None:
    """Evaluate a model on the 10,000 MNIST test images."""
    from digitctl import evaluation

    settings = _state(ctx).settings(model=model, unsafe_load=unsafe_load, mirror=mirror)
    with ui.task_progress(transient=True) as progress:
        result = evaluation.evaluate_model(settings, progress=progress)
    if as_json:
        ui.print_json(result.as_dict())
        return
    console = ui.out_console()
    console.print(f"model     {ui.short_path(result.model_path)}", soft_wrap=True)
    console.print(
        f"accuracy  {result.accuracy:.4%}  ({result.images - result.errors:,} of "
        f"{result.images:,} test images)"
    )
    console.print(f"loss      {result.loss:.4f}")
    if report:
        digits = [str(d) for d in range(10)]
        rows = [
            (
                name,
                *(f"{result.report[name][key]:.4f}" for key in ("precision", "recall", "f1-score")),
                int(result.report[name]["support"]),
            )
            for name in [*digits, "macro avg", "weighted avg"]
        ]
        console.print(
            ui.table(
                "Classification report", ["digit", "precision", "recall", "f1", "support"], rows
            )
        )
        matrix = ui.table(
            "Confusion matrix (rows: true, columns: predicted)",
            ["", *digits],
            [(d, *result.confusion[i].tolist()) for i, d in enumerate(digits)],
        )
        console.print(matrix)
    for path in [result.metrics_path, *result.artifacts, result.card_path]:
        if path is not None:
            ui.info(f"  wrote {ui.short_path(path)}")


def _prediction_table(outcomes: list[Any], predictor: Any) -> Any:
    """One row per input: the digits read, the least confidence, the top-3 of one digit.

    Errors are not in the table (a long message would squeeze every column on an 80-column
    terminal): they were printed one per line on stderr, and the row says "error". File
    names are shown relative to the current folder and keep their width while they fit:
    the top-3 goes one entry a line first; a name wider than that folds, never cut.
    """
    from rich.text import Text

    rows: list[list[Any]] = []
    tops: list[list[str]] = []
    for outcome in outcomes:
        answer = outcome.reading
        name = ui.short_path(outcome.name)
        tops.append([])
        if answer is None:
            rows.append([name, Text("error", "red"), "", Text("see the message above", "red")])
            continue
        if not answer.digits:
            note = "not a digit" if answer.status == "not_a_digit" else "no digit found"
            rows.append([name, Text("-", "yellow"), "", Text(note, "yellow")])
            continue
        one = outcome.prediction
        if one:
            tops[-1] = [f"{d}: {c:.1%}" for d, c in one.top(3)]
        confidence = answer.confidence or 0.0
        shown = (
            Text(f"{confidence:.1%} (uncertain)", "yellow")
            if answer.uncertain
            else f"{confidence:.1%}"
        )
        text = Text(answer.text.replace("\n", " / "), "bold")
        rows.append([name, text, shown, f"{len(answer.digits)} digits"])

    def widest(column: int, least: int) -> int:
        return max([least, *(len(str(row[column])) for row in rows)])

    fixed = widest(1, 4) + widest(2, 10) + 13  # 13: borders and padding
    width = ui.out_console().width
    one_line = max((len("  ".join(top)) for top in tops), default=0)
    stacked = widest(0, 4) + fixed + max(11, one_line) > width
    for row, top in zip(rows, tops, strict=True):
        if top:
            row[3] = ("\n" if stacked else "  ").join(top)
    title = f"Predictions: {predictor.name} ({predictor.origin}, {predictor.backend})"
    if predictor.line_model is not None:
        title += " + line reader"
    result = ui.table(title, ["file", "text", "confidence", "top-3"], rows)
    result.columns[3].no_wrap = True
    if widest(0, 4) + fixed + (widest(3, 11) if stacked else one_line) <= width:
        result.columns[0].no_wrap = True
    return result


BatchOutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Folder for JSON Lines shards, one line per input; rerun to finish a stopped batch.",
    ),
]
EngineOption = Annotated[
    Engine | None,
    typer.Option(help="With --out: read here (local, the default) or on a Dask cluster."),
]
AddressOption = Annotated[
    str | None,
    typer.Option(help="--engine dask: the scheduler (tcp://host:8786); none: a local cluster."),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(min=1, help="With --out: worker processes here (default: one per core)."),
]
ShardSizeOption = Annotated[
    int | None, typer.Option(min=1, help="With --out: inputs per shard file and task (500).")
]


@dataclass
class BatchRequest:
    """The --out options of ``predict``."""

    out: Path | None
    engine: Engine | None
    address: str | None
    workers: int | None
    shard_size: int | None
    recursive: bool
    as_json: bool


@app.command()
@handles_errors
def predict(
    ctx: typer.Context,
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Image files, directories (the images inside), or - for one image on stdin.",
            metavar="PATH...",  # typer appends no "..." to an explicit metavar
            show_default=False,
        ),
    ],
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="Also look for images in subdirectories.")
    ] = False,
    model: Annotated[
        Path | None,
        typer.Option(
            help="Model (.keras, .tflite or .onnx), or 'bundled' for the shipped one; "
            "default: the workspace's, else bundled."
        ),
    ] = None,
    unsafe_load: UnsafeLoadOption = None,
    reader: Annotated[
        ReaderName | None,
        typer.Option(
            help="rules (default: layout rules and the digit model) or line (the line "
            "reader: a CTC model reads each line whole; preview, see docs/predict.md)."
        ),
    ] = None,
    save_view: Annotated[
        Path | None,
        typer.Option("--save-view", help="Folder for the 28×28 view the model saw of each input."),
    ] = None,
    plot: Annotated[
        bool,
        typer.Option("--plot", help="One image only: write artifacts/prediction_result.png."),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines on stdout, one object per input.")
    ] = False,
    out: BatchOutOption = None,
    engine: EngineOption = None,
    address: AddressOption = None,
    workers: WorkersOption = None,
    shard_size: ShardSizeOption = None,
) -> None:
    """Read the digits in each image: drawings, photos of ink on paper, scans, forms.

    Every digit is read, left to right (lines top to bottom): a number such as "2026" is one
    answer. Letters, symbols and drawings are answered "not a digit". With --out, a batch
    of any size is read into resumable JSON Lines shards, here or on a Dask cluster.
    """
    from digitctl.process import tune_process

    tune_process(predicting=True, debug=_state(ctx).debug)  # before numpy loads
    from digitctl import inference

    settings = _state(ctx).settings(model=model, unsafe_load=unsafe_load, reader=reader)
    if out is not None or engine is not None:
        batch = BatchRequest(out, engine, address, workers, shard_size, recursive, as_json)
        return _predict_batch(ctx, paths, batch, settings, bool(save_view or plot))
    items = inference.collect_inputs(paths, recursive=recursive)
    if plot and len(items) != 1:
        raise typer.BadParameter(f"draws one image, got {len(items)} inputs", param_hint="--plot")
    predictor = inference.load_predictor(settings)
    if not predictor.rejects:
        ui.warn(
            f'model {predictor.name} ({predictor.origin}) cannot say "not a digit": letters '
            "and drawings are read as digits (--model bundled: the shipped model can)"
        )
    outcomes = []
    with ui.DelayedProgress("reading", len(items)) as progress:
        for outcome in inference.predict_inputs(predictor, items):
            outcomes.append(outcome)
            if outcome.error is not None:
                ui.error_line(outcome.error)
            if as_json:
                ui.print_json(outcome.as_dict())
            progress.advance()
    if save_view is not None:
        written = inference.save_views(outcomes, save_view)
        ui.info(f"wrote {len(written)} view(s) to {save_view}")
    if plot and outcomes[0].reading is not None:
        target = settings.artifacts_path / "prediction_result.png"
        from digitctl.plots import plot_reading

        plot_reading(items[0].source, outcomes[0].reading, target)
        ui.info(f"wrote {ui.short_path(target)}")
    if not as_json:
        ui.out_console().print(_prediction_table(outcomes, predictor))
        ui.info(inference.summary_line(outcomes, progress.seconds))
    if any(outcome.error is not None for outcome in outcomes):
        raise typer.Exit(1)


def _predict_batch(
    ctx: typer.Context, paths: list[str], batch: BatchRequest, settings: Settings, views: bool
) -> None:
    """``predict --out``: shards in a folder, a progress bar, a summary (exit 1 on errors)."""
    from digitctl.batch import SHARD_SIZE, read_batch

    if batch.out is None:
        raise typer.BadParameter("needs --out FOLDER for the answers", param_hint="--engine")
    if views:
        raise typer.BadParameter("not with --out", param_hint="--save-view/--plot")
    if batch.address is not None:
        settings = settings.with_overrides(cluster_address=batch.address)
    with ui.task_progress() as progress:
        task = progress.add_task("reading", total=None, status="")

        def show(step: Any) -> None:
            for message in step.new_errors:
                progress.console.print("Error: " + message, style="bold red", markup=False)
            status = f"{step.images_per_second:.0f} img/s, {step.errors} error(s)"
            progress.update(task, completed=step.done, total=step.total, status=status)

        summary = read_batch(
            paths,
            batch.out,
            settings=settings,
            engine=batch.engine or "local",
            workers=batch.workers,
            shard_size=batch.shard_size or SHARD_SIZE,
            recursive=batch.recursive,
            on_progress=show,
        )
    if batch.as_json:
        ui.print_json(summary.as_dict())
    else:
        ui.out_console().print(_batch_table(summary))
    if summary.errors_before + summary.errors:
        raise typer.Exit(1)


def _batch_table(summary: Any) -> Any:
    rows = [
        ("answers in", str(summary.out)),
        ("inputs", f"{summary.total:,}"),
        ("read now", f"{summary.answered:,} in {summary.shards} shard(s)"),
        ("answered before", f"{summary.answered_before:,}"),
        ("errors", f"{summary.errors_before + summary.errors:,}"),
        ("engine", f"{summary.engine}, {summary.workers} worker(s)"),
        ("start-up", f"{summary.startup_seconds:.1f} s"),
        ("time", f"{summary.seconds:.1f} s ({summary.images_per_second:.0f} images/s)"),
    ]
    return ui.table("Batch", ["", ""], rows)


@app.command()
@handles_errors
def export(
    ctx: typer.Context,
    model: Annotated[
        Path | None,
        typer.Option(help="The .keras/.h5 model to export (default: workspace, else bundled)."),
    ] = None,
    fmt: Annotated[
        ExportFormat,
        typer.Option("--format", help="tflite (LiteRT, used by predict), onnx or savedmodel."),
    ] = ExportFormat.TFLITE,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Check agreement on the first N test images only (quick)."),
    ] = None,
    unsafe_load: UnsafeLoadOption = None,
    mirror: MirrorOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Export a model for TensorFlow-free serving, checked against Keras on the test set."""
    from digitctl import export as exporting

    settings = _state(ctx).settings(model=model, unsafe_load=unsafe_load, mirror=mirror)
    with ui.task_progress(transient=True) as progress:
        progress.add_task(f"exporting to {fmt} and checking", total=None, status="")
        result = exporting.export_for_settings(settings, fmt=fmt, limit=limit)
    if as_json:
        ui.print_json(result.as_dict())
        return
    size = f"{result.size_bytes / 1e6:.1f} MB"
    ui.info(f"[green]✓[/green] wrote {ui.short_path(result.path)} ({size})")
    ui.info(
        f"agreement with Keras: {result.agreement:.2%} of {result.images:,} test images "
        f"(largest probability difference {result.max_abs_diff:.1e})"
    )


@app.command()
@handles_errors
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to bind (default 127.0.0.1; 0.0.0.0 exposes it to the network)."
        ),
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8501).")] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="Model file (.keras or .tflite); default: workspace, else bundled."),
    ] = None,
    reader: Annotated[
        ReaderName | None,
        typer.Option(help="rules (default) or line: the line reader (preview)."),
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the app in a web browser once it is up.")
    ] = False,
) -> None:
    """Launch the drawing-canvas web app (Streamlit); Ctrl-C stops it."""
    from digitctl import serve as serving

    settings = _state(ctx).settings(host=host, port=port, model=model, reader=reader)
    plan = serving.plan_serve(settings)
    for warning in plan.warnings:
        ui.warn(warning)
    ui.info(
        f"Starting the digit app at {plan.url} with model {ui.short_path(plan.model)} "
        "(Ctrl-C stops it)"
    )
    serving.run_server(
        plan,
        open_browser=open_browser,
        on_ready=lambda url: ui.info(f"[green]✓[/green] Open {url} in your browser"),
    )
    ui.info("Server stopped.")


# --------------------------------------------------------------------------------------
# feedback / finetune: corrections become training data (digitctl.feedback, .finetuning)
# --------------------------------------------------------------------------------------
feedback_app = typer.Typer(
    help="Store corrections (images the model misread, with their true digit).",
    no_args_is_help=True,
)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("add")
@handles_errors
def feedback_add(
    ctx: typer.Context,
    paths: Annotated[
        list[Path],
        typer.Argument(help="Image files of that digit.", metavar="IMAGE...", show_default=False),
    ],
    label: Annotated[int, typer.Option("--label", "-l", min=0, max=9, help="The true digit.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="JSON Lines on stdout, one object per image.")
    ] = False,
) -> None:
    """Add images of one digit to the feedback store (exit 1 if any could not be read)."""
    from digitctl import feedback

    settings = _state(ctx).settings()
    outcomes = feedback.add_images(settings, paths, label)
    for outcome in outcomes:
        if outcome.error is not None:
            ui.error_line(outcome.error)
        if as_json:
            ui.print_json(outcome.as_dict())
    stored = [o for o in outcomes if o.sample is not None]
    if not as_json:
        by_status = {
            s: sum(o.status == s for o in outcomes) for s in ("added", "duplicate", "relabelled")
        }
        wrong = sum(o.sample.misread for o in stored if o.sample is not None)
        ui.info(
            f"[green]✓[/green] digit {label}: {by_status['added']} added, "
            f"{by_status['duplicate']} already stored, {by_status['relabelled']} relabelled "
            f"(the model read {wrong} of {len(stored)} wrong) in "
            f"{ui.short_path(settings.feedback_path)}"
        )
    if len(stored) < len(outcomes):
        raise typer.Exit(1)


@feedback_app.command("list")
@handles_errors
def feedback_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Show how many corrections are stored per digit, and where."""
    from digitctl import feedback

    settings = _state(ctx).settings()
    summary = feedback.summarize(settings)
    if as_json:
        ui.print_json(summary.as_dict())
        return
    rows = [(d, summary.counts[d], summary.misread[d]) for d in sorted(summary.counts)]
    ui.out_console().print(
        ui.table(
            f"Feedback: {summary.total} sample(s)", ["digit", "samples", "model read wrong"], rows
        )
    )
    ui.info(f"stored in {ui.short_path(summary.directory)}")
    if summary.total:
        ui.info("learn them with `digitctl finetune`")


@feedback_app.command("clear")
@handles_errors
def feedback_clear(
    ctx: typer.Context,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete every stored correction."""
    from digitctl import feedback

    settings = _state(ctx).settings()
    total = feedback.summarize(settings).total
    if total == 0:
        ui.info(f"no feedback stored in {settings.feedback_path}")
        return
    if not yes and not typer.confirm(
        f"Delete all {total} feedback sample(s) in {settings.feedback_path}?", err=True
    ):
        ui.info("nothing deleted")
        raise typer.Exit(1)
    removed = feedback.clear(settings)
    ui.info(f"[green]✓[/green] deleted {removed} sample(s) from {settings.feedback_path}")


@app.command()
@handles_errors
def finetune(
    ctx: typer.Context,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Install the new model even if it is not better, or MNIST suffers."
        ),
    ] = False,
    epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Rounds of 100 batches of 64, half corrections (2)."),
    ] = None,
    holdout: Annotated[
        float | None,
        typer.Option(min=0.05, max=0.5, help="Share of each digit's corrections held out (0.2)."),
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Starting learning rate, cosine-decayed (2e-3).")
    ] = None,
    train_layers: Annotated[
        str | None,
        typer.Option(
            "--train",
            help="Layers trained: all (default; batch-norm statistics kept), top (the later half "
            "of the convolutions and the head) or head.",
        ),
    ] = None,
    unsafe_load: UnsafeLoadOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Learn the stored corrections (with an MNIST replay) and install the result if better."""
    from digitctl import finetuning as tuning

    settings = _state(ctx).settings(unsafe_load=unsafe_load)
    with ui.task_progress(transient=True) as progress:
        result = tuning.finetune_model(
            settings,
            force=force,
            epochs=epochs,
            holdout=holdout,
            learning_rate=learning_rate,
            train=train_layers,
            progress=progress,
        )
    for warning in result.warnings:
        ui.warn(warning)
    if as_json:
        ui.print_json(result.as_dict())
    else:
        ui.out_console().print(_finetune_table(result))
    if result.refused is not None and not result.installed:
        ui.error_line(
            f"not installed: {result.refused}; the model in use is unchanged "
            "(--force installs it anyway)"
        )
        raise typer.Exit(1)
    if result.forced:
        ui.warn(f"installed although {result.refused} (--force)")
    if not as_json:
        ui.info(
            f"[green]✓[/green] installed {ui.short_path(result.model_path)}: predict and serve "
            "use it now"
        )


def _finetune_table(result: Any) -> Any:
    def pct(value: float) -> str:
        return f"{value:.2%}"

    held = sum(result.holdout_counts.values())
    rows = [
        ("base model", ui.short_path(result.base_model)),
        (
            "corrections",
            f"{sum(result.feedback_counts.values())} "
            f"({sum(result.train_counts.values())} learnt, {held} held out)",
        ),
        ("MNIST replay", f"{result.replay_images:,} images"),
        (
            "held-out corrections",
            f"{pct(result.holdout_before.accuracy)} → {pct(result.holdout_after.accuracy)}",
        ),
        (
            "MNIST test",
            f"{pct(result.mnist_before.accuracy)} → {pct(result.mnist_after.accuracy)} "
            f"({result.mnist_source}, {result.mnist_after.images:,})",
        ),
        ("time", f"{result.seconds.get('total', 0):.1f} s"),
        ("installed", "yes" if result.installed else "no"),
    ]
    return ui.table("Fine-tuning", ["", ""], rows)


# Top-level options that take a value (the word after them is not a command's name).
_VALUED_OPTIONS = frozenset({"--config", "--workspace", "--cache-dir"})


def _invoked_command(argv: list[str]) -> str | None:
    """The name of the command ``argv`` runs, read past the top-level options."""
    words = iter(argv)
    for word in words:
        if word in _VALUED_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def _app_for(argv: list[str]) -> typer.Typer:
    """The app, with only the invoked command when it is a plain one.

    Typer builds the Click command of every registered command on each start (~35 ms
    here, most of ``predict``'s budget beyond importing NumPy and OpenCV); one command
    behaves the same alone, with the same top-level options. A group (``feedback``), a
    name no command has, or no command at all gets the whole app, so that help and
    "No such command" read as always.
    """
    name = _invoked_command(argv)
    chosen = [
        command
        for command in app.registered_commands
        if (command.name or command.callback.__name__.replace("_", "-")) == name
    ]
    if len(chosen) != 1:
        return app
    import copy

    alone = copy.copy(app)  # the same settings and top-level callback; lists replaced
    alone.registered_commands = chosen
    alone.registered_groups = []
    return alone


def main() -> None:
    """Console-script entry point."""
    import sys

    _app_for(sys.argv[1:])()
