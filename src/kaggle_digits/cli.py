"""The `kaggle-digits` command line: parse options, call one library function, print.

Errors a user can cause (UserError) become one line on stderr and exit code 2.
"""

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

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
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where data/<slug>/ lives.")
    ] = Path("data"),
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
        typer.Option("--output", help="PNG grid of sample digits. Default: data/<slug>/samples.png"),
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


def main() -> None:
    app()
