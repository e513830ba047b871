"""`kaggle-digits cv`: its options (config.CV_OPTIONS, each declared once, beside CVConfig)
and where the run trains: here, on a Ray cluster, or in a Kaggle kernel. main.py registers
it."""

import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from kaggle_digits.base.errors import UserError
from kaggle_digits.cli.shared import (
    RunsDir,
    Terminal,
    Track,
    given_here,
    user_errors,
)
from kaggle_digits.kaggle_api.kernels import DEFAULT_ACCELERATOR, QUEUED_MINUTES


def with_cv_options(command: Callable) -> Callable:
    """Give `command` a keyword parameter for each of config.CV_OPTIONS, in place of its
    **options: the options are declared there once, beside CVConfig."""
    from kaggle_digits.options.config import CV_OPTIONS

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


@with_cv_options
def cv_command(
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
    write_kernel: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="With --on kaggle: write the kernel (its script and kernel-metadata.json) "
            "into DIR for `kaggle kernels push -p DIR` instead of pushing it; `cv --resume "
            "RUN` then waits for it and brings it home.",
        ),
    ] = None,
    queued_minutes: Annotated[
        float,
        typer.Option(
            metavar="MINUTES",
            help="With --on kaggle (or --resume of a run on Kaggle): after this many minutes "
            "of the kernel queued, say what you can do about it (0: never); the kernel is "
            "left as it is.",
        ),
    ] = QUEUED_MINUTES,
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
    kaggle-digits cv --on kaggle --preset gpu; kaggle-digits cv --on kaggle --detach;
    kaggle-digits cv --on kaggle --accelerator NvidiaL4 --write-kernel kernel/
    """
    # no Keras here: with workers or Ray the pairs train in processes of their own
    from kaggle_digits.data.competition import find_spec
    from kaggle_digits.jobs.cv import run_cv
    from kaggle_digits.models.architectures import describe_architectures
    from kaggle_digits.on_kaggle.remote_run import (
        POLL_SECONDS,
        Waiting,
        resume_on_kaggle,
        run_on_kaggle,
    )
    from kaggle_digits.options.config import OPTIONS_BY_FIELD
    from kaggle_digits.options.presets import preset_config, resume_overrides
    from kaggle_digits.store.run_folder import is_on_kaggle, run_folder

    if list_models:
        typer.echo(describe_architectures())
        return
    given = {field: OPTIONS_BY_FIELD[field].parse(value) for field, value in options.items()}
    with user_errors():
        if on not in ("here", "kaggle"):
            raise UserError(f"--on must be here or kaggle, not '{on}'")
        kaggle_only = {
            "--detach": detach,
            "--accelerator": given_here(ctx, "accelerator"),
            "--write-kernel": write_kernel is not None,
            "--queued-minutes": given_here(ctx, "queued_minutes") and not resume,
        }
        for option, given_option in kaggle_only.items():
            if on != "kaggle" and given_option:
                raise UserError(
                    f"{option} works with --on kaggle only: add --on kaggle or drop {option}"
                )
        if queued_minutes < 0:
            raise UserError(f"--queued-minutes must be 0 (never) or more, not {queued_minutes:g}")
        if on == "kaggle":
            shape = kaggle_shape(accelerator)
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
            queued_minutes,
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
                shape,
                waiting,
                detach=detach,
                write_kernel=write_kernel,
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
            track=track,
        )


def kaggle_shape(accelerator: str) -> str | None:
    """--accelerator checked against Kaggle's machine shapes (None: the CPU); a retired one
    is said in a line, and pushed as asked (Kaggle runs it on another machine)."""
    from kaggle_digits.kaggle_api.kernels import RETIRED_SHAPES, machine_shape

    shape = machine_shape(accelerator)
    if shape in RETIRED_SHAPES:
        typer.echo(f"warning: {shape}: {RETIRED_SHAPES[shape]}", err=True)
    return shape
