"""The `kaggle-digits` command line: parse options, call one library function, print.

Errors a user can cause (UserError, and a folder they named that cannot be written: no
permission, a read-only or full file system, a file where a folder should be) become one
line on stderr and exit code 2.
"""

import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter

from kaggle_digits.cli.cv import cv_command
from kaggle_digits.cli.predict import predict_command
from kaggle_digits.cli.serve import serve_command
from kaggle_digits.cli.shared import (
    RunsDir,
    Settings,
    SubmissionsDir,
    Track,
    echo,
    user_errors,
)
from kaggle_digits.machine.backend import import_keras

app = typer.Typer(
    help="Download a Kaggle pixel-CSV competition (Digit Recognizer by default), train a "
    "k-fold CNN ensemble, submit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main_options(
    ctx: typer.Context,
    competition: Annotated[
        str | None,
        typer.Option(
            "--competition",
            help="A spec's name in competition/ (digit-recognizer, kannada-mnist) or a TOML "
            "file's path. Default: digit-recognizer.",
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
    from kaggle_digits.kaggle_api.download import download_competition

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
            "--output",
            help="PNG grid of sample digits. Default: data/<slug>/samples.png "
            "(~/.cache/kaggle-digits/<slug>/ when the data folder is read-only)",
        ),
    ] = None,
    preset: Annotated[
        str, typer.Option(help="Show the priors a cv run of this preset would take.")
    ] = "default",
) -> None:
    """Print the images' priors a cv run would take (the spec's augment section), then shapes,
    label counts and pixel statistics; save a grid of sample digits.

    Example: kaggle-digits info --output samples.png; kaggle-digits info --preset quick
    """
    from kaggle_digits.data.dataset import load_dataset, writable_folder
    from kaggle_digits.jobs.info import describe_dataset, sample_digits_figure
    from kaggle_digits.options.presets import describe_priors, preset_config

    with user_errors():
        competition = ctx.obj.competition
        config = preset_config(preset, competition.priors)
        typer.echo(f"priors        {preset} preset, from {competition.priors.path or 'defaults'}")
        typer.echo("\n".join(describe_priors(config)))
        started = time.perf_counter()
        dataset = load_dataset(competition, ctx.obj.data_dir)
        load_seconds = time.perf_counter() - started
        folder = writable_folder(Path(ctx.obj.data_dir) / competition.slug, competition.slug)
        png = output or folder / "samples.png"
        typer.echo(describe_dataset(dataset, competition))
        typer.echo(f"loaded in    {load_seconds:.2f} s")
        typer.echo(f"sample grid  {sample_digits_figure(dataset, png)}")


app.command("cv")(cv_command)


@app.command()
def submit(
    ctx: typer.Context,
    run: Annotated[
        str | None, typer.Argument(help="Run folder or name in runs/. Default: newest complete.")
    ] = None,
    message: Annotated[str, typer.Option(help="Added to the run id and CV score.")] = "",
    dry_run: Annotated[bool, typer.Option(help="Write and validate only; upload nothing.")] = False,
    file: Annotated[
        Path | None, typer.Option(help="Submit this existing CSV (after the same checks).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Submit a file already submitted.")] = False,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the public score.")] = 300,
    poll_every: Annotated[float, typer.Option(help="Seconds between score checks.")] = 10,
    runs_dir: RunsDir = None,
    submissions_dir: SubmissionsDir = None,
    track: Track = False,
) -> None:
    """Write submissions/<run-id>.csv, validate it, upload it, print the public score.

    Examples: kaggle-digits submit; kaggle-digits submit --dry-run;
    kaggle-digits submit --file my.csv --message "hand-made"
    """
    import_keras()
    from kaggle_digits.jobs.submit import submit as submit_run

    with user_errors():
        submit_run(
            ctx.obj.competition,
            ctx.obj.data_dir,
            ctx.obj.runs_dir(runs_dir),
            ctx.obj.submissions_dir(submissions_dir),
            run=run,
            file=file,
            message=message,
            dry_run=dry_run,
            force=force,
            wait_seconds=wait,
            poll_seconds=poll_every,
            log=echo,
            track=track,
        )


@app.command()
def submissions(
    ctx: typer.Context,
    submissions_dir: SubmissionsDir = None,
) -> None:
    """The submissions ledger with each one's latest Kaggle status, CV and LB side by side.

    Example: kaggle-digits submissions
    """
    import_keras()
    from kaggle_digits.jobs.submit import show_submissions

    with user_errors():
        show_submissions(ctx.obj.competition, ctx.obj.submissions_dir(submissions_dir), log=echo)


@app.command()
def leaderboard(
    ctx: typer.Context,
    top: Annotated[int, typer.Option(min=1, help="How many of the top teams to show.")] = 10,
    runs_dir: RunsDir = None,
    submissions_dir: SubmissionsDir = None,
) -> None:
    """The public leaderboard: the top teams, your best public score and its rank, and the
    rank each complete run not yet submitted would take with its OOF accuracy (an estimate).

    Examples: kaggle-digits leaderboard; kaggle-digits leaderboard --top 25
    """
    from kaggle_digits.jobs.leaderboard import leaderboard_report, leaderboard_table

    with user_errors():
        settings = ctx.obj
        report = leaderboard_report(
            settings.competition,
            settings.runs_dir(runs_dir),
            settings.submissions_dir(submissions_dir),
            top,
        )
    echo(leaderboard_table(report))


@app.command()
def blend(
    ctx: typer.Context,
    run_names: Annotated[list[str], typer.Argument(help="Complete runs (folders or names).")],
    method: Annotated[
        str, typer.Option(help="greedy (ensemble selection by log loss) or mean.")
    ] = "greedy",
    runs_dir: RunsDir = None,
    track: Track = False,
) -> None:
    """Blend complete runs made on the same folds into a new run that submit and predict use.

    Example: kaggle-digits blend 20261124-101500-quick 20261124-121000-default
    """
    from kaggle_digits.jobs.blend import blend_runs

    with user_errors():
        blend_runs(
            run_names,
            ctx.obj.competition,
            ctx.obj.data_dir,
            ctx.obj.runs_dir(runs_dir),
            method,
            log=echo,
            track=track,
        )


@app.command()
def runs(
    ctx: typer.Context,
    runs_dir: RunsDir = None,
    submissions_dir: SubmissionsDir = None,
) -> None:
    """Every run, newest first: preset, members, epochs, OOF, minutes, best public score, and
    how to finish an incomplete one.

    Example: kaggle-digits runs
    """
    from kaggle_digits.jobs.runs import list_runs, runs_table

    with user_errors():
        settings = ctx.obj
        listed = list_runs(settings.runs_dir(runs_dir), settings.submissions_dir(submissions_dir))
    echo(runs_table(listed))


app.command("predict")(predict_command)
app.command("serve")(serve_command)


def main() -> None:
    signal.signal(signal.SIGTERM, stop_as_ctrl_c)
    app()


def stop_as_ctrl_c(signum: int, frame: object) -> None:
    """SIGTERM (a notebook's stop button, a cluster's scheduler, `kill`) stops a command as
    Ctrl-C does: what is finished is kept, and `cv --resume` goes on from there."""
    raise KeyboardInterrupt
