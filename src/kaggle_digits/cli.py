"""The `kaggle-digits` command line: parse options, call one library function, print.

Errors a user can cause (UserError) become one line on stderr and exit code 2.
"""

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter

from kaggle_digits.competition import Competition, load_competition
from kaggle_digits.errors import UserError

app = typer.Typer(
    help="Download Kaggle's Digit Recognizer, train a k-fold CNN ensemble, submit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class Settings:
    """The global options, shared by every command through the Typer context."""

    def __init__(self, competition_path: Path | None, data_dir: Path) -> None:
        self.competition_path = competition_path
        self.data_dir = data_dir

    @property
    def competition(self) -> Competition:
        return load_competition(self.competition_path)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None


@app.callback()
def main_options(
    ctx: typer.Context,
    competition: Annotated[
        Path | None,
        typer.Option(
            "--competition",
            help="Competition spec (TOML). Default: competition/digit-recognizer.toml.",
        ),
    ] = None,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where data/<slug>/ lives.")] = Path(
        "data"
    ),
) -> None:
    ctx.obj = Settings(competition, data_dir)


@app.command()
def download(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Download again even if present.")] = False,
) -> None:
    """Download the competition files through the Kaggle API into data/<slug>/.

    Example: kaggle-digits download --force
    """
    from kaggle_digits.download import download_competition

    with user_errors():
        result = download_competition(ctx.obj.competition, ctx.obj.data_dir, force=force)
    if result.downloaded:
        typer.echo(f"downloaded the competition files into {result.folder}")
    else:
        typer.echo(f"the data is already in {result.folder} (use --force to download again)")


@app.command()
def info(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", help="PNG grid of sample digits. Default: data/<slug>/samples.png"
        ),
    ] = None,
) -> None:
    """Print shapes, label counts and pixel statistics; save a grid of sample digits.

    Example: kaggle-digits info --output samples.png
    """
    from kaggle_digits.data import load_dataset
    from kaggle_digits.info import describe_dataset, sample_digits_figure

    with user_errors():
        competition = ctx.obj.competition
        started = time.perf_counter()
        dataset = load_dataset(competition, ctx.obj.data_dir)
        load_seconds = time.perf_counter() - started
        png = output or Path(ctx.obj.data_dir) / competition.slug / "samples.png"
        typer.echo(describe_dataset(dataset, competition))
        typer.echo(f"loaded in    {load_seconds:.2f} s")
        typer.echo(f"sample grid  {sample_digits_figure(dataset, png)}")


@app.command()
def cv(
    ctx: typer.Context,
    preset: Annotated[
        str,
        typer.Option(
            help="quick (a smoke run), default (about an hour on 2 CPU cores), strong (GPU)."
        ),
    ] = "default",
    folds: Annotated[int | None, typer.Option(help="Number of stratified folds.")] = None,
    members: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated architectures, e.g. fast-cnn,resnet (see --list-models)."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs per member.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Training batch size.")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for folds, weights and augmentation.")
    ] = None,
    tta: Annotated[
        int | None, typer.Option(help="Augmented copies averaged at prediction time (0: off).")
    ] = None,
    label_smoothing: Annotated[
        float | None, typer.Option(help="Label smoothing, e.g. 0.05.")
    ] = None,
    augment: Annotated[
        bool | None, typer.Option("--augment/--no-augment", help="Rotations, zooms, shifts.")
    ] = None,
    early_stopping: Annotated[
        int | None,
        typer.Option(help="Patience on each fold's held-out rows (makes the CV score optimistic)."),
    ] = None,
    resume: Annotated[
        str | None, typer.Option(help="Finish an interrupted run (a folder, or its name in runs/).")
    ] = None,
    runs_dir: Annotated[Path, typer.Option(help="Where run folders go.")] = Path("runs"),
    list_models: Annotated[bool, typer.Option(help="List the architectures and exit.")] = False,
) -> None:
    """Stratified k-fold training of a CNN ensemble: OOF score, test predictions, a run folder.

    Examples: kaggle-digits cv --preset quick; kaggle-digits cv --folds 5 --members fast-cnn,resnet
    --epochs 20; kaggle-digits cv --resume runs/20261123-101500-default
    """
    from kaggle_digits.config import preset_config
    from kaggle_digits.cv import resolve_resume, run_cv
    from kaggle_digits.models import describe_architectures

    if list_models:
        typer.echo(describe_architectures())
        return
    overrides = dict(
        folds=folds,
        members=tuple(members.split(",")) if members else None,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        tta=tta,
        label_smoothing=label_smoothing,
        augment=augment,
        early_stopping=early_stopping,
    )
    with user_errors():
        config = preset_config(preset, **overrides)
        resume_dir = resolve_resume(resume, runs_dir, overrides) if resume else None
        run_cv(config, ctx.obj.competition, ctx.obj.data_dir, runs_dir, resume=resume_dir, log=echo)


def echo(line: str) -> None:
    typer.echo(line)


def main() -> None:
    app()
