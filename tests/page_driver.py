"""The page of `kaggle-digits serve` driven in headless Chromium (Debian's chromium and
chromedriver, through Selenium), as a person uses it: strokes drawn with the mouse on the
canvas, a photo picked, a cell of the confusion matrix clicked. Used by tests/test_page.py
and by benchmarks/screenshots.py, which makes the screenshots in docs/."""

import threading
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_SECONDS = 60

# strokes of digits as a hand draws them, in a 0..1 square: a list of strokes, each a list
# of points
STROKES = {
    0: [[(0.5, 0.15), (0.3, 0.25), (0.25, 0.5), (0.3, 0.75), (0.5, 0.85), (0.7, 0.75),
         (0.75, 0.5), (0.7, 0.25), (0.5, 0.15)]],
    1: [[(0.35, 0.3), (0.55, 0.15), (0.55, 0.85)]],
    4: [[(0.6, 0.15), (0.25, 0.6), (0.75, 0.6)], [(0.6, 0.35), (0.6, 0.85)]],
    7: [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]],
}  # fmt: skip


# In the page: the time from the mouse's release on the canvas to a prediction in
# #prediction, by the page's own clock (performance.now), for the next drawing
RELEASE_TO_ANSWER = """
const timer = window.releaseToAnswer ||= {};
Object.assign(timer, {released: null, ms: null});
if (!timer.watching) {
  timer.watching = true;
  document.getElementById("canvas").addEventListener("pointerup", () => {
    timer.released = performance.now();
  }, true);
  const shown = document.getElementById("prediction");
  new MutationObserver(() => {
    if (timer.released === null || shown.textContent === "–") return;
    timer.ms = performance.now() - timer.released;
    timer.released = null;
  }).observe(shown, {childList: true, characterData: true, subtree: true});
}
"""


def why_no_browser() -> str:
    """Why Chromium cannot be driven here ('' where it can)."""
    for program in (CHROMIUM, CHROMEDRIVER):
        if not Path(program).exists():
            return f"{program} is missing (Debian's chromium and chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return ""


def start_browser(width: int = 1280, height: int = 1800):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", f"--window-size={width},{height}",
    ):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(CHROMEDRIVER))


class Server:
    """An app served by uvicorn in a thread of this process, on a free loopback port."""

    def __init__(self, app) -> None:
        import socket

        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + WAIT_SECONDS
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "no server"
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(WAIT_SECONDS)


class Page:
    def __init__(self, driver, url: str) -> None:
        self.driver = driver
        driver.get(url)
        self.wait_for(lambda: self.find("run").get_attribute("value"))

    def find(self, element_id: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, element_id)

    def wait_for(self, condition, timeout: float = WAIT_SECONDS):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout).until(lambda _: condition())

    def text(self, element_id: str) -> str:
        return self.find(element_id).text.strip()

    def draw(self, digit: int) -> str:
        """Draw STROKES[digit] with the mouse; the prediction shown once the page has it."""
        from selenium.webdriver.common.action_chains import ActionChains

        self.find("clear").click()
        self.wait_for(lambda: self.text("prediction") == "–")
        canvas = self.find("canvas")
        side = canvas.size["width"]
        for stroke in STROKES[digit]:
            # offsets from the canvas's centre, in steps short enough to be a stroke
            points = [(round((x - 0.5) * side), round((y - 0.5) * side)) for x, y in stroke]
            actions = ActionChains(self.driver, duration=20)
            actions.move_to_element_with_offset(canvas, *points[0]).click_and_hold()
            for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
                for step in range(1, 6):
                    actions.move_to_element_with_offset(
                        canvas, round(x0 + (x1 - x0) * step / 5), round(y0 + (y1 - y0) * step / 5)
                    )
            actions.release().perform()
            self.wait_for(lambda: self.text("prediction") != "–")
        return self.text("prediction")

    def timed_draw(self, digit: int) -> tuple[str, float]:
        """Draw STROKES[digit] (one stroke); the prediction, and the milliseconds from the
        mouse's release to the prediction shown, timed inside the page."""
        assert len(STROKES[digit]) == 1, "a digit of one stroke: one release, one answer"
        self.driver.execute_script(RELEASE_TO_ANSWER)
        prediction = self.draw(digit)
        self.wait_for(
            lambda: self.driver.execute_script("return window.releaseToAnswer.ms !== null")
        )
        return prediction, self.driver.execute_script("return window.releaseToAnswer.ms")

    def upload(self, path: Path) -> str:
        """Pick a photo; the prediction, or the message the page shows."""
        before = self.find("seen").get_attribute("src")
        self.find("photo-input").send_keys(str(path))
        self.wait_for(
            lambda: (
                self.find("seen").get_attribute("src") not in ("", before)
                or self.find("message").is_displayed()
            )
        )
        if self.find("message").is_displayed():
            return self.text("message")
        return self.text("prediction")

    def open_mistakes(self) -> tuple[str, int]:
        """Click the confusion matrix's first cell of mistakes; its title and cards."""
        from selenium.webdriver.common.by import By

        self.wait_for(lambda: self.driver.find_elements(By.CSS_SELECTOR, "#confusion td.wrong"))
        self.driver.find_elements(By.CSS_SELECTOR, "#confusion td.wrong")[0].click()
        self.wait_for(lambda: self.driver.find_elements(By.CSS_SELECTOR, "#mistakes .card"))
        cards = self.driver.find_elements(By.CSS_SELECTOR, "#mistakes .card")
        return self.text("mistakes-title"), len(cards)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path
