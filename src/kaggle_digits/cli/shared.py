"""What every command of the command line shares: the global options (Settings), the
folder options, the one-line handling of the errors a user can cause, and the terminal's
output (log lines, and a status line redrawn in place)."""

import contextlib
import errno
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from kaggle_digits.base.errors import UserError
from kaggle_digits.data.competition import Competition, load_competition

# the folders every command that reads or writes runs and submissions takes
RunsDir = Annotated[Path | None, typer.Option(help="The run folders. Default: runs/<slug>/.")]
SubmissionsDir = Annotated[
    Path | None,
    typer.Option(help="The submission files and ledger.csv. Default: submissions/<slug>/."),
]
# MLflow tracking, for the commands that make or score a run
Track = Annotated[
    bool,
    typer.Option(
        "--track/--no-track",
        envvar="KAGGLE_DIGITS_TRACK",
        help="Log to MLflow (its default store, ./mlflow.db; `mlflow ui` shows it). Needs "
        "pip install 'kaggle-digits[mlflow]'. Also KAGGLE_DIGITS_TRACK=1.",
    ),
]


class Settings:
    """The global options, shared by every command through the Typer context."""

    def __init__(self, competition_spec: str | None, data_dir: Path) -> None:
        self.competition_spec = competition_spec
        self.data_dir = data_dir

    @property
    def competition(self) -> Competition:
        return load_competition(self.competition_spec)

    def runs_dir(self, given: Path | None) -> Path:
        """runs/<slug>/ unless a folder is given: each competition's runs kept apart."""
        return given if given is not None else Path("runs") / self.competition.slug

    def submissions_dir(self, given: Path | None) -> Path:
        return given if given is not None else Path("submissions") / self.competition.slug


# what the file system answers about a path the user gave: theirs to mend, not a bug
FILE_SYSTEM_REFUSALS = {
    errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
    errno.EEXIST,
}  # fmt: skip


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except UserError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    except OSError as error:
        if error.errno not in FILE_SYSTEM_REFUSALS or error.filename is None:
            raise
        why = error.strerror.lower()
        if error.errno == errno.EEXIST:  # a folder the user named is a file
            why = "is a file, not a folder"
        typer.echo(f"error: {error.filename}: {why}", err=True)
        raise typer.Exit(code=2) from None


def given_here(ctx: typer.Context, name: str) -> bool:
    """Whether the command line gave option `name`, rather than leaving its default."""
    # by name: Typer ships click's ParameterSource in its own copy of click
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def echo(line: str) -> None:
    typer.echo(line)


class Terminal:
    """Log lines, and on a terminal (not a log file) one status line redrawn in place."""

    def __init__(self) -> None:
        self.live = sys.stdout.isatty()
        self.showing = False

    def status(self, text: str) -> None:
        width = shutil.get_terminal_size().columns - 1
        typer.echo("\r\033[K" + text[:width], nl=False)
        self.showing = True

    def log(self, line: str) -> None:
        if self.showing:
            typer.echo("\r\033[K", nl=False)
            self.showing = False
        typer.echo(line)
