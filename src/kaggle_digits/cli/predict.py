"""`kaggle-digits predict`: photos or a test-format CSV called by a run's ensemble. main.py
registers it."""

from pathlib import Path
from typing import Annotated

import typer

from kaggle_digits.cli.shared import RunsDir, user_errors
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
