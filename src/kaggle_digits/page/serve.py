"""`kaggle-digits serve`: a local web page to draw a digit, drop a photo, and see where a run
goes wrong. A Starlette app on uvicorn (the `[serve]` extra): the page (plain HTML, CSS and
JavaScript in static/, nothing fetched from elsewhere) and the JSON endpoints it calls, which
the tests call too. Runs are named by their folder's name and found only among the run
folders, so nothing a request says reaches a file outside them.

Each run's ensemble is loaded once and kept; predictions wait a few milliseconds for others
(several tabs, several strokes) and run together, in one thread that owns the models.
"""

import asyncio
import contextlib
import errno
import functools
import socket
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from kaggle_digits.base.errors import UserError
from kaggle_digits.data.competition import Competition
from kaggle_digits.store import run_files

PAGE = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 16 * 1024 * 1024  # a phone's photo is 2-8 MB
BATCH_WAIT_SECONDS = 0.01  # how long a prediction waits for others to share its call
LIST_LIMIT = 60  # images a list shows at most


class Explorer:
    """What the endpoints read: the runs, the data, the loaded ensembles."""

    def __init__(
        self, competition: Competition, data_root: Path, runs_dir: Path, submissions_dir: Path
    ) -> None:
        self.competition = competition
        self.data_root, self.runs_dir = Path(data_root), Path(runs_dir)
        self.submissions_dir = Path(submissions_dir)
        self._ensembles: dict[str, object] = {}

    def runs(self) -> list[dict]:
        from kaggle_digits.jobs.runs import list_runs

        rows = list_runs(self.runs_dir, self.submissions_dir)
        return [{"run": row.run_id} | asdict(row, dict_factory=json_fields) for row in rows]

    def run_dir(self, name: str, complete: bool = True) -> Path:
        """A run folder by its name, looked up among the run folders only."""
        from kaggle_digits.store.run_folder import find_run

        folders = {path.name: path for path in self.runs_dir.glob("*") if path.is_dir()}
        if name not in folders or name.startswith("."):
            raise NoSuchRun(f"no run named {name!r} in {self.runs_dir}")
        if not complete:
            return folders[name]
        return find_run(self.runs_dir, str(folders[name]), self.competition)

    @functools.cached_property
    def dataset(self):
        from kaggle_digits.data.dataset import load_dataset

        return load_dataset(self.competition, self.data_root)

    def ensemble(self, name: str):
        """The run's models, loaded on first use and kept (in the predicting thread), and
        warmed up: a model's first prediction compiles it."""
        from kaggle_digits.page.explore import Ensemble

        if name not in self._ensembles:
            ensemble = Ensemble(self.run_dir(name))
            for batch in (1, 2):  # one tab's drawing, two tabs' at once
                ensemble.predict(np.zeros((batch, *self.competition.image_shape), np.uint8))
            self._ensembles[name] = ensemble
        return self._ensembles[name]


def json_fields(fields: list[tuple]) -> dict:
    """A RunRow's fields as the page reads them: its folder's path left out."""
    return {name: value for name, value in fields if name not in ("run_id", "path")}


class NoSuchRun(UserError, LookupError):
    """A run name that is no run folder's: 404 for the page, one line for the command."""


class TooLarge(ValueError):
    """An upload past MAX_UPLOAD_BYTES."""


def refuse_too_large(size: int) -> None:
    if size > MAX_UPLOAD_BYTES:
        raise TooLarge(f"the file is too large: at most {MAX_UPLOAD_BYTES >> 20} MB")


class Batcher:
    """Predictions asked for at about the same time, made in one call of each model."""

    def __init__(self, predict: Callable[[str, np.ndarray], tuple], thread: Executor) -> None:
        self.predict = predict  # (run, images) -> (probs, member_probs), in `thread`
        self.thread = thread
        self.waiting: list[tuple[str, np.ndarray, asyncio.Future]] = []
        self.lock = asyncio.Lock()

    async def __call__(self, run: str, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((run, image, future))
        await asyncio.sleep(BATCH_WAIT_SECONDS)
        async with self.lock:  # one batch at a time: the models live in one thread
            if not future.done():
                await self._flush()
        return await future

    async def _flush(self) -> None:
        batch, self.waiting = self.waiting, []
        for run in dict.fromkeys(item[0] for item in batch):
            mine = [item for item in batch if item[0] == run]
            images = np.stack([image for _, image, _ in mine])
            try:
                loop = asyncio.get_running_loop()
                probs, member_probs = await loop.run_in_executor(
                    self.thread, self.predict, run, images
                )
            except Exception as error:  # each waiting request answers with it
                for *_, future in mine:
                    future.set_exception(error)
                continue
            for index, (*_, future) in enumerate(mine):
                future.set_result((probs[index], member_probs[:, index]))


def create_app(explorer: Explorer, default_run: str | None = None):
    """The Starlette app: the page, and its JSON endpoints under /api/."""
    from concurrent.futures import ThreadPoolExecutor

    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from kaggle_digits.page import explore

    models_thread = ThreadPoolExecutor(1, thread_name_prefix="models")
    batcher = Batcher(lambda run, images: explorer.ensemble(run).predict(images), models_thread)

    def answers(handler):
        """A handler whose user errors are JSON `{"error": ...}` with a 4xx status."""

        @functools.wraps(handler)
        async def endpoint(request):
            try:
                return JSONResponse(await handler(request))
            except LookupError as error:
                return JSONResponse({"error": str(error)}, 404)
            except TooLarge as error:
                return JSONResponse({"error": str(error)}, 413)
            except (UserError, ValueError) as error:
                return JSONResponse({"error": str(error)}, 400)

        return endpoint

    def class_index(request, name: str) -> int | None:
        """A query parameter naming a class by its index; None where it is not given."""
        value = request.query_params.get(name, "").strip()
        count = len(explorer.competition.classes)
        if not value:
            return None
        if not (value.isdecimal() and int(value) < count):
            raise UserError(f"'{name}' must be a class index from 0 to {count - 1}, not {value!r}")
        return int(value)

    async def page(request):
        return FileResponse(PAGE / "index.html")

    def chosen_run(listed: list[dict]) -> str | None:
        """The run the page opens with: the one asked for, else the newest complete."""
        complete = [row["run"] for row in listed if row["complete"]]
        return default_run if default_run in complete else (complete[0] if complete else None)

    @answers
    async def runs(request):
        listed = explorer.runs()
        classes = list(explorer.competition.classes)
        return {"runs": listed, "default": chosen_run(listed), "classes": classes}

    @answers
    async def run(request):
        run_dir = explorer.run_dir(request.path_params["run"], complete=False)
        return explore.run_overview(run_dir)

    async def figure(request):
        name = request.path_params["name"]
        try:
            run_dir = explorer.run_dir(request.path_params["run"], complete=False)
        except (LookupError, UserError) as error:
            return JSONResponse({"error": str(error)}, 404)
        figure = run_files.figure_file(run_dir, name)
        if figure is None:
            return JSONResponse({"error": f"no figure {name!r}"}, 404)
        return FileResponse(figure)

    @answers
    async def predict(request):
        run_name = request.query_params.get("run", "")
        explorer.run_dir(run_name)  # a complete, undamaged run, or why not
        refuse_too_large(int(request.headers.get("content-length") or 0))  # before reading
        content = await request.body()
        refuse_too_large(len(content))
        name = request.query_params.get("name") or "upload"
        drawing = request.query_params.get("kind") == "drawing"  # the page's canvas
        prepared = explore.prepare_upload(content, name, explorer.competition, drawing)
        probs, member_probs = await batcher(run_name, prepared.image)
        members = explorer.ensemble(run_name).members
        return {
            "source": name,
            "prediction": explorer.competition.classes[int(probs.argmax())],
            "probs": [round(float(p), 5) for p in probs],
            "members": [
                {
                    "name": member.name,
                    "vote": explorer.competition.classes[int(p.argmax())],
                    "confidence": round(float(p.max()), 4),
                }
                for member, p in zip(members, member_probs, strict=True)
            ],  # fmt: skip
            "image": explore.png_data_url(prepared.image),
            "box": [round(value, 4) for value in prepared.box],
        }

    @answers
    async def confusion(request):
        run_dir = explorer.run_dir(request.path_params["run"])
        errors = explore.RunErrors.of(run_dir, explorer.dataset)
        return {"classes": list(explorer.competition.classes), "counts": errors.confusion()}

    @answers
    async def mistakes(request):
        run_dir = explorer.run_dir(request.path_params["run"])
        errors = explore.RunErrors.of(run_dir, explorer.dataset)
        rows = errors.mistakes(class_index(request, "true"), class_index(request, "predicted"))
        cards = explore.row_cards(
            rows[:LIST_LIMIT], explorer.dataset.train_images, errors.oof_probs, errors.labels
        )
        return {"total": len(rows), "rows": cards}

    @answers
    async def unsure(request):
        run_dir = explorer.run_dir(request.path_params["run"])
        test_probs = run_files.read_test_probs(run_dir)
        rows = explore.least_sure_test_rows(test_probs)[:LIST_LIMIT]
        return {"rows": explore.row_cards(rows, explorer.dataset.test_images, test_probs)}

    @answers
    async def compare(request):
        first, second = request.query_params.get("a", ""), request.query_params.get("b", "")
        errors = [explore.RunErrors.of(explorer.run_dir(name), explorer.dataset)
                  for name in (first, second)]  # fmt: skip
        if not np.array_equal(errors[0].fold_of_row, errors[1].fold_of_row):
            raise ValueError(f"{first} and {second} were made on different folds")
        compared = explore.compare(*errors)
        images, labels = explorer.dataset.train_images, errors[0].labels
        # each row with the prediction of the run that gets it wrong
        for key, wrong in (("only_first_right", errors[1]), ("only_second_right", errors[0])):
            rows = compared[key]
            cards = explore.row_cards(rows[:LIST_LIMIT], images, wrong.oof_probs, labels)
            compared[key] = {"total": len(rows), "rows": cards}
        return {"runs": [first, second], **compared}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        first = chosen_run(explorer.runs())
        if first is not None:  # loaded while the page opens: the first drawing is quick
            models_thread.submit(explorer.ensemble, first)
        yield
        models_thread.shutdown(wait=False, cancel_futures=True)

    return Starlette(
        routes=[
            Route("/", page),
            Route("/api/runs", runs),
            Route("/api/runs/{run}", run),
            Route("/api/runs/{run}/figures/{name}", figure),
            Route("/api/runs/{run}/confusion", confusion),
            Route("/api/runs/{run}/mistakes", mistakes),
            Route("/api/runs/{run}/unsure", unsure),
            Route("/api/compare", compare),
            Route("/api/predict", predict, methods=["POST"]),
            Mount("/static", StaticFiles(directory=PAGE), name="static"),
        ],
        lifespan=lifespan,
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: a free one), or one line saying why it cannot be:
    bound here, before the models load, rather than by uvicorn, which answers a taken port
    with tracebacks."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        if error.errno == errno.EADDRINUSE:
            raise UserError(
                f"port {port} on {host} is taken (another server is listening there): "
                "choose another with --port N, or --port 0 for a free one"
            ) from None
        reason = error.strerror or str(error)
        hint = " (ports below 1024 need root)" if error.errno == errno.EACCES else ""
        raise UserError(f"cannot listen on {host} port {port}: {reason}{hint}") from None
    return listener


def serve(explorer: Explorer, run: str | None, listener: socket.socket, on_start: Callable) -> None:
    """Serve the page on `listener` (listening_socket) until Ctrl-C; `on_start(address)`
    once it listens."""
    import uvicorn

    host, port = listener.getsockname()[:2]
    app = create_app(explorer, run)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    shown_host = f"[{host}]" if listener.family == socket.AF_INET6 else host
    address = f"http://{shown_host}:{port}"

    async def main() -> None:
        task = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            on_start(address)
        await task

    asyncio.run(main())
