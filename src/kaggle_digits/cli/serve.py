"""`kaggle-digits serve`: the local page that draws, drops photos and shows a run's mistakes.
main.py registers it."""

import contextlib
from typing import Annotated

import typer

from kaggle_digits.base.errors import UserError
from kaggle_digits.cli.shared import RunsDir, SubmissionsDir, user_errors
from kaggle_digits.machine.backend import import_keras


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
        from kaggle_digits.page.serve import Explorer, listening_socket, serve

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
