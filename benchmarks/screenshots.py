"""The screenshots of `kaggle-digits serve` in docs/, made by the code that drives the page in
the tests (tests/page_driver.py), on your own runs: a digit drawn, a cell of the confusion
matrix opened; and the time a drawing takes to be answered, from one tab and from two at
once: in the browser, from the mouse's release to the prediction shown, and at the server
alone, from the canvas's PNG sent to the answer.

    python benchmarks/screenshots.py --runs-dir runs/digit-recognizer --out docs

Needs Debian's chromium and chromium-driver, and the [serve] extra.
"""

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from page_driver import Page, Server, start_browser  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/digit-recognizer"))
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--competition", default="digit-recognizer")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--drawings", type=int, default=20, help="timed drawings a tab")
    args = parser.parse_args()

    from kaggle_digits.data.competition import load_competition
    from kaggle_digits.machine.backend import import_keras
    from kaggle_digits.page.serve import Explorer, create_app

    import_keras()
    competition = load_competition(args.competition)
    explorer = Explorer(competition, args.data_dir, args.runs_dir, Path("submissions") / "x")
    server = Server(create_app(explorer))
    browsers = [start_browser(1280, 1000)]
    try:
        pages = [Page(browser, server.url) for browser in browsers]
        pages[0].draw(7)
        print("saved", pages[0].screenshot(args.out / "serve-draw.png"))
        pages[0].open_mistakes()
        pages[0].driver.execute_script(
            "document.getElementById('confusion').scrollIntoView({block: 'start'})"
        )
        print("saved", pages[0].screenshot(args.out / "serve-mistakes.png"))
        run = pages[0].find("run").get_attribute("value")
        browsers.append(start_browser(1280, 1000))
        pages.append(Page(browsers[1], server.url))
        time_drawn(pages[:1], args.drawings)
        time_drawn(pages, args.drawings)
        time_drawings(server.url, run, tabs=1, count=args.drawings)
        time_drawings(server.url, run, tabs=2, count=args.drawings)
    finally:
        for browser in browsers:
            browser.quit()
        server.stop()


def at_once(work, arguments: list[tuple]) -> None:
    """`work(*each)` for each of `arguments`, all in threads at once; back when all are."""
    threads = [threading.Thread(target=work, args=each) for each in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def time_drawn(pages: list[Page], count: int) -> None:
    """Milliseconds from the mouse's release on the canvas to the prediction shown, timed by
    the page's own clock, each page drawing `count` one-stroke digits, all pages at once."""
    timings: list[float] = []

    def tab(page: Page) -> None:
        for number in range(count):
            timings.append(page.timed_draw((0, 1, 7)[number % 3])[1])

    at_once(tab, [(page,) for page in pages])
    print(
        f"{len(pages)} tab(s) drawing at once, {count} drawings each, in the browser: release "
        f"to prediction shown in median {statistics.median(timings):.0f} ms, slowest "
        f"{max(timings):.0f} ms"
    )


def time_drawings(url: str, run: str, tabs: int, count: int) -> None:
    """Seconds from a drawing sent (as the page sends its canvas) to its answer, `tabs`
    clients at once, each sending `count` drawings one after another."""
    import io
    import json
    import urllib.request

    from page_driver import STROKES
    from PIL import Image, ImageDraw

    def canvas(digit: int) -> bytes:
        image = Image.new("RGB", (280, 280), "white")
        draw = ImageDraw.Draw(image)
        for stroke in STROKES[digit]:
            draw.line([(x * 280, y * 280) for x, y in stroke], fill="black", width=18)
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        return buffer.getvalue()

    drawings = [canvas(digit) for digit in STROKES]
    seconds: list[float] = []

    def tab() -> None:
        for number in range(count):
            request = urllib.request.Request(
                f"{url}/api/predict?run={run}&name=drawing.png&kind=drawing",
                data=drawings[number % len(drawings)],
                method="POST",
            )
            started = time.perf_counter()
            json.load(urllib.request.urlopen(request))
            seconds.append(time.perf_counter() - started)

    at_once(tab, [()] * tabs)
    print(
        f"{tabs} tabs at once, {count} drawings each, run {run}: a drawing answered in "
        f"median {statistics.median(seconds) * 1000:.0f} ms, slowest "
        f"{max(seconds) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
