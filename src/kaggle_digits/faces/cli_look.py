"""The commands that look at what a run learned: `predict` (photos, a CSV) and `serve` (the
local page). cli.py registers them."""

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from kaggle_digits.base.errors import UserError
from kaggle_digits.faces.cli_shared import RunsDir, SubmissionsDir, user_errors
from kaggle_digits.machine.backend import import_keras


def predict_command(
    ctx: typer.Context,
    images: Annotated[
        list[Path] | None,
        typer.Argument(help="Photos or images of digits (PNG, JPEG, ...), or folders of them."),
    ] = None,
    run: Annotated[
        str | None, typer.Option(help="Run folder or name in runs/. Default: newest complete.")
    ] = None,
    csv: Annotated[
        Path | None, typer.Option(help="Predict every row of a CSV in test.csv's format.")
    ] = None,
    show: Annotated[
        bool,
        typer.Option(
            help="Save a figure: each photo, the digit the models saw, the probabilities."
        ),
    ] = False,
    figure: Annotated[Path, typer.Option(help="Where --show saves.")] = Path("predictions.png"),
    runs_dir: RunsDir = None,
) -> None:
    """Predict photos of handwritten digits (or a test-format CSV) with a run's ensemble.

    Examples: kaggle-digits predict my_seven.jpg --show; kaggle-digits predict photos/;
    kaggle-digits predict --csv data/digit-recognizer/test.csv > predictions.txt
    """
    import_keras()
    from kaggle_digits.jobs.predict import describe, predict, save_figure

    with user_errors():
        competition = ctx.obj.competition
        predictions = predict(competition, ctx.obj.runs_dir(runs_dir), run, images or [], csv)
        for prediction in predictions:
            typer.echo(describe(prediction, competition.classes))
        if show:
            typer.echo(f"saved {save_figure(predictions, competition.classes, figure)}")


def serve_command(
    ctx: typer.Context,
    run: Annotated[
        str | None, typer.Option(help="The run the page opens with. Default: newest complete.")
    ] = None,
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="The port to listen on (0: any free one).")
    ] = 8000,
    host: Annotated[
        str,
        typer.Option(
            help="The address to listen on: 127.0.0.1, this machine only; 0.0.0.0 shares the "
            "page with your network, on purpose."
        ),
    ] = "127.0.0.1",
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the page in a browser.")
    ] = True,
    runs_dir: RunsDir = None,
    submissions_dir: SubmissionsDir = None,
) -> None:
    """A local web page: draw a digit or drop a photo and watch a run's ensemble call it;
    the runs side by side, with their figures; each run's out-of-fold mistakes by class.
    Needs pip install 'kaggle-digits[serve]'.

    Examples: kaggle-digits serve; kaggle-digits serve --run 20261203-062238-quick --no-open;
    kaggle-digits serve --host 0.0.0.0 --port 8080; kaggle-digits serve --port 0 (any free port)
    """
    import webbrowser
    from importlib.util import find_spec

    with user_errors():
        if find_spec("starlette") is None or find_spec("uvicorn") is None:
            raise UserError("serve needs Starlette and uvicorn: pip install 'kaggle-digits[serve]'")
        from kaggle_digits.faces.serve import Explorer, listening_socket, serve

        listener = listening_socket(host, port)  # a taken port said before the models load
        import_keras()

        settings = ctx.obj
        explorer = Explorer(
            settings.competition,
            settings.data_dir,
            settings.runs_dir(runs_dir),
            settings.submissions_dir(submissions_dir),
        )
        if run is not None:
            explorer.run_dir(run)  # a complete run, or one line why not

        def started(address: str) -> None:
            typer.echo(f"serving {explorer.runs_dir} at {address}  (Ctrl-C stops)")
            if open_browser:
                webbrowser.open(address)

        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the way to stop it
            serve(explorer, run, listener, started)
