"""The `kaggle-digits` command line: parse options, call one library function, print.

Errors a user can cause (UserError, and a folder they named that cannot be written: no
permission, a read-only or full file system, a file where a folder should be) become one
line on stderr and exit code 2.
"""

import inspect
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter

from kaggle_digits.backend import import_keras
from kaggle_digits.cli_look import predict_command, serve_command
from kaggle_digits.cli_shared import (
    RunsDir,
    Settings,
    SubmissionsDir,
    Terminal,
    Track,
    echo,
    given_here,
    user_errors,
)
from kaggle_digits.errors import UserError
from kaggle_digits.kaggle_kernels import DEFAULT_ACCELERATOR

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
    from kaggle_digits.data import load_dataset, writable_folder
    from kaggle_digits.info import describe_dataset, sample_digits_figure
    from kaggle_digits.presets import describe_priors, preset_config

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


def with_cv_options(command: Callable) -> Callable:
    """Give `command` a keyword parameter for each of config.CV_OPTIONS, in place of its
    **options: the options are declared there once, beside CVConfig."""
    from kaggle_digits.config import CV_OPTIONS

    def parameter(option) -> inspect.Parameter:
        if option.type is bool:
            declared = typer.Option(f"{option.name}/{option.negative_name}")
        else:
            declared = typer.Option(option.name, metavar=option.metavar)
        declared.help = option.help
        value_type = str if option.type is tuple else option.type
        return inspect.Parameter(
            option.field,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[value_type | None, declared],
        )

    signature = inspect.signature(command)
    own = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
    command.__signature__ = signature.replace(
        parameters=[*own, *(parameter(option) for option in CV_OPTIONS)]
    )
    return command


@app.command()
@with_cv_options
def cv(
    ctx: typer.Context,
    preset: Annotated[
        str,
        typer.Option(
            help="quick (under 5 minutes on 2 CPU cores), default (under an hour), gpu (one "
            "GPU, 15 minutes)."
        ),
    ] = "default",
    ray: Annotated[
        str | None,
        typer.Option(
            metavar="ADDRESS",
            help="Train the pairs on this running Ray cluster (host:port of `ray start "
            "--head`, ray://host:port, or auto); with --workers, that many at once.",
        ),
    ] = None,
    resume: Annotated[
        str | None, typer.Option(help="Finish an interrupted run (a folder, or its name in runs/).")
    ] = None,
    runs_dir: RunsDir = None,
    track: Track = False,
    on: Annotated[
        str,
        typer.Option(
            "--on",
            metavar="WHERE",
            help="Where the run trains: here (this machine), or kaggle (a private Kaggle "
            "kernel on its free GPU; the run comes home to runs/<slug>/). Needs the Kaggle "
            "credentials of `download`.",
        ),
    ] = "here",
    accelerator: Annotated[
        str,
        typer.Option(
            metavar="SHAPE",
            help="With --on kaggle: the kernel's machine, NvidiaTeslaT4 (two T4s), another "
            "of Kaggle's machine shapes, or none (CPU only).",
        ),
    ] = DEFAULT_ACCELERATOR,
    detach: Annotated[
        bool,
        typer.Option(
            help="With --on kaggle: return once the kernel is pushed; `cv --resume RUN` "
            "brings it home."
        ),
    ] = False,
    list_models: Annotated[bool, typer.Option(help="List the architectures and exit.")] = False,
    **options,
) -> None:
    """Stratified k-fold training of a CNN ensemble: OOF score, test predictions, a run folder.

    The preset sets the recipe; the competition's spec sets the images' priors (deskew, turns,
    zooms, shifts, flips, the kinds of test-time view: its augment section, shown by
    `info`); an option given here overrides either, and config.json records which did.

    Examples: kaggle-digits cv --preset quick; kaggle-digits cv --budget 10;
    KERAS_BACKEND=jax kaggle-digits cv --preset gpu;
    kaggle-digits cv --preset quick --no-deskew --tta 8; kaggle-digits cv --select-hard 0;
    kaggle-digits cv --tta-views shifts; kaggle-digits cv --precision float32;
    kaggle-digits --competition fashion-mnist cv --preset quick;
    kaggle-digits cv --flip-horizontal --tta-views flips+shifts --rotation 0 --no-deskew;
    kaggle-digits cv --folds 5 --members fast-cnn,resnet --epochs 20 --workers 2 --ema 0.999;
    kaggle-digits cv --engine ray --workers 2; kaggle-digits cv --ray 10.0.0.5:6379;
    kaggle-digits cv --resume 20261123-101500-default;
    kaggle-digits cv --on kaggle --preset gpu; kaggle-digits cv --on kaggle --detach
    """
    # no Keras here: with workers or Ray the pairs train in processes of their own
    from kaggle_digits.competition import find_spec
    from kaggle_digits.config import OPTIONS_BY_FIELD
    from kaggle_digits.cv import run_cv
    from kaggle_digits.kaggle_run import (
        POLL_SECONDS,
        Waiting,
        is_on_kaggle,
        resume_on_kaggle,
        run_on_kaggle,
    )
    from kaggle_digits.models import describe_architectures
    from kaggle_digits.presets import preset_config, resume_overrides
    from kaggle_digits.run_folder import run_folder

    if list_models:
        typer.echo(describe_architectures())
        return
    given = {field: OPTIONS_BY_FIELD[field].parse(value) for field, value in options.items()}
    with user_errors():
        if on not in ("here", "kaggle"):
            raise UserError(f"--on must be here or kaggle, not '{on}'")
        if on != "kaggle" and (detach or given_here(ctx, "accelerator")):
            option = "--detach" if detach else "--accelerator"
            raise UserError(
                f"{option} works with --on kaggle only: add --on kaggle or drop {option}"
            )
        runs_dir = ctx.obj.runs_dir(runs_dir)
        resume_dir = None
        if resume:
            given = resume_overrides(given)
            resume_dir = run_folder(resume, runs_dir)
        config = preset_config(preset, ctx.obj.competition.priors, **given)
        terminal = Terminal()
        waiting = Waiting(
            terminal.log,
            terminal.status if terminal.live else None,
            float(os.environ.get("KAGGLE_DIGITS_POLL_SECONDS", POLL_SECONDS)),
            track,
        )
        if resume_dir is not None and is_on_kaggle(resume_dir):
            resume_on_kaggle(resume_dir, waiting)
            return
        if on == "kaggle":
            if resume_dir is not None or ray is not None:
                raise UserError("--on kaggle starts a new run: drop --resume and --ray")
            run_on_kaggle(
                config,
                ctx.obj.competition,
                ctx.obj.data_dir,
                runs_dir,
                find_spec(ctx.obj.competition_spec),
                None if accelerator.lower() in ("none", "cpu", "") else accelerator,
                waiting,
                detach=detach,
                keep_folds=given.get("folds") is not None,
            )
            return
        run_cv(
            config,
            ctx.obj.competition,
            ctx.obj.data_dir,
            runs_dir,
            resume=resume_dir,
            log=terminal.log,
            status=terminal.status if terminal.live else None,
            ray_address=ray,
            keep_folds=given.get("folds") is not None,
            track=track,
        )


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
    from kaggle_digits.submission import submit as submit_run

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
    from kaggle_digits.submission import show_submissions

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
    from kaggle_digits.leaderboard import leaderboard_report, leaderboard_table

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
    from kaggle_digits.blend import blend_runs

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
    from kaggle_digits.runs import list_runs, runs_table

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
