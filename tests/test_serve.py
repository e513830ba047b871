"""`kaggle-digits serve`: its JSON endpoints called directly (Starlette's test client), on the
shared small trained run: drawings and photos through the ensemble, a bad or too large file
answered in one line while the server goes on, the mistakes against oof_probs.npy, two runs
side by side, and nothing outside the run folders reachable."""

import io
import json
import shutil
import threading

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
pytest.importorskip("httpx2")

from helpers import assert_user_error, run_cli  # noqa: E402
from synthetic import make_digits  # noqa: E402

from kaggle_digits.data.competition import load_competition  # noqa: E402
from kaggle_digits.data.dataset import load_dataset  # noqa: E402
from kaggle_digits.page.explore import Ensemble, least_sure_test_rows  # noqa: E402


@pytest.fixture(scope="module")
def site(trained, tmp_path_factory):
    """The trained run and a copy of it (a second run to compare), served."""
    from starlette.testclient import TestClient

    from kaggle_digits.page.serve import Explorer, create_app

    runs_dir = tmp_path_factory.mktemp("served") / "runs"
    first = shutil.copytree(trained.run_dir, runs_dir / trained.run_dir.name)
    second = shutil.copytree(trained.run_dir, runs_dir / "20991231-235959-copy")
    oof = np.load(second / "oof_probs.npy")
    np.save(second / "oof_probs.npy", np.roll(oof, 1, axis=1))  # a worse run: other mistakes
    competition = load_competition(trained.spec_path)
    explorer = Explorer(competition, trained.data_dir, runs_dir, runs_dir.parent / "submissions")
    with TestClient(create_app(explorer, first.name)) as client:
        client.runs = (first, second)
        client.dataset = load_dataset(competition, trained.data_dir)
        yield client


def drawing_png(digit: np.ndarray) -> bytes:
    """A synthetic digit as the page's canvas sends it: dark ink on white, 280 pixels."""
    image = Image.fromarray(255 - digit[..., 0]).resize((280, 280), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def predict(site, content: bytes, kind: str = "drawing", name: str = "drawing.png"):
    run = site.runs[0].name
    return site.post(f"/api/predict?run={run}&name={name}&kind={kind}", content=content)


def test_the_page_and_its_parts_are_served(site):
    page = site.get("/").text
    for part in ('id="canvas"', 'id="prediction"', 'id="photo-input"', 'id="message"'):
        assert part in page
    assert site.get("/static/app.js").status_code == 200
    assert "http" not in page.replace('lang="en"', "")  # nothing fetched from elsewhere


def test_the_runs_are_listed_with_the_chosen_one(site):
    answer = site.get("/api/runs").json()
    assert {row["run"] for row in answer["runs"]} == {run.name for run in site.runs}
    assert answer["default"] == site.runs[0].name and answer["classes"] == list(range(10))
    overview = site.get(f"/api/runs/{site.runs[0].name}").json()
    assert overview["config"]["members"] == ["tiny-cnn"] and overview["metrics"]["oof_accuracy"]
    assert site.get(f"/api/runs/{site.runs[0].name}/figures/mistakes.png").status_code == 200


def test_a_drawing_is_predicted_by_the_ensemble_as_predict_frames_it(site):
    digits, labels = make_digits(10, seed=3)
    answers = [predict(site, drawing_png(digit)).json() for digit in digits]
    members = answers[0]["members"]
    assert [member["name"] for member in members] == ["fold 1 tiny-cnn", "fold 2 tiny-cnn"]
    assert all(len(answer["probs"]) == 10 for answer in answers)
    predictions = [answer["prediction"] for answer in answers]
    right = sum(predicted == label for predicted, label in zip(predictions, labels, strict=True))
    assert right >= 7, predictions  # the run's OOF is about 0.9
    # the same probabilities as the run's ensemble gives the framed image the page shows
    seen = np.asarray(Image.open(io.BytesIO(_png(answers[0]["image"]))))[..., None]
    expected = Ensemble(site.runs[0]).predict(seen[None])[0][0]
    np.testing.assert_allclose(answers[0]["probs"], expected, atol=1e-4)


def _png(data_url: str) -> bytes:
    import base64

    return base64.b64decode(data_url.split(",", 1)[1])


def test_a_photo_goes_through_predicts_photo_pipeline(site):
    from photos import photo

    digits, labels = make_digits(1, seed=5)
    buffer = io.BytesIO()
    photo(digits[0], "ruled", seed=2).save(buffer, "JPEG")
    answer = predict(site, buffer.getvalue(), kind="photo", name="phone.jpg").json()
    left, top, right, bottom = answer["box"]
    assert 0 <= left < right <= 1 and 0 <= top < bottom <= 1
    assert answer["source"] == "phone.jpg" and answer["prediction"] in range(10)


def test_a_bad_file_is_one_line_and_the_server_goes_on(site):
    broken = predict(site, b"GIF89a this is not an image", kind="photo", name="broken.gif")
    assert broken.status_code == 400
    assert broken.json() == {"error": "broken.gif: cannot read the image (not an image file)"}
    empty = predict(site, drawing_png(np.zeros((28, 28, 1), dtype=np.uint8)))
    assert empty.status_code == 400 and "the drawing is empty" in empty.json()["error"]
    too_large = predict(site, b"\0" * (16 * 1024 * 1024 + 1), kind="photo")
    assert too_large.status_code == 413 and "too large" in too_large.json()["error"]
    digits, _ = make_digits(1, seed=4)
    assert predict(site, drawing_png(digits[0])).status_code == 200


def test_nothing_outside_the_run_folders_is_reached(site, tmp_path):
    for path in (
        "/api/runs/..%2F..%2Fetc/confusion",
        "/api/runs/.hidden/mistakes",
        f"/api/runs/{site.runs[0].name}/figures/config.json",
        f"/api/runs/{site.runs[0].name}/figures/..%2Fconfig.json",
        "/api/runs/no-such-run",
    ):
        answer = site.get(path)
        assert answer.status_code == 404, path
    assert predict(site, b"", name="../../x.png").status_code == 400
    outside = site.post("/api/predict?run=../runs&name=x.png&kind=drawing", content=b"x")
    assert outside.status_code == 404


def test_the_mistakes_are_those_of_the_runs_oof_probabilities(site):
    run = site.runs[0]
    oof = np.load(run / "oof_probs.npy")
    labels = site.dataset.train_labels
    counts = site.get(f"/api/runs/{run.name}/confusion").json()["counts"]
    assert np.array_equal(counts, np.histogram2d(labels, oof.argmax(1), bins=range(11))[0])
    wrong = np.flatnonzero(oof.argmax(1) != labels)
    assert wrong.size, "the small run makes some mistakes"
    true, called = int(labels[wrong[0]]), int(oof[wrong[0]].argmax())
    answer = site.get(f"/api/runs/{run.name}/mistakes?true={true}&predicted={called}").json()
    expected = wrong[(labels[wrong] == true) & (oof[wrong].argmax(1) == called)]
    assert answer["total"] == len(expected)
    assert sorted(card["row"] - 1 for card in answer["rows"]) == sorted(expected.tolist())
    confidences = [card["confidence"] for card in answer["rows"]]
    assert confidences == sorted(confidences, reverse=True)
    every = site.get(f"/api/runs/{run.name}/mistakes").json()
    assert every["total"] == len(wrong)


def test_a_bad_class_in_the_mistakes_query_names_the_parameter(site):
    run = site.runs[0].name
    for query, value in (("true=abc", "abc"), ("predicted=10", "10"), ("true=-1", "-1")):
        answer = site.get(f"/api/runs/{run}/mistakes?{query}")
        name = query.split("=")[0]
        expected = f"'{name}' must be a class index from 0 to 9, not '{value}'"
        assert answer.status_code == 400 and answer.json() == {"error": expected}, query
    assert site.get(f"/api/runs/{run}/mistakes?true=3&predicted=").status_code == 200


def test_the_least_sure_test_rows_come_first(site):
    run = site.runs[0]
    test_probs = np.load(run / "test_probs.npy")
    rows = site.get(f"/api/runs/{run.name}/unsure").json()["rows"]
    assert [card["row"] - 1 for card in rows] == least_sure_test_rows(test_probs)[:50].tolist()
    top_two = np.sort(test_probs, axis=1)[:, -2:]
    margins = (top_two[:, 1] - top_two[:, 0])[[card["row"] - 1 for card in rows]]
    assert (np.diff(margins) >= 0).all()


def test_two_runs_side_by_side(site):
    first, second = site.runs
    answer = site.get(f"/api/compare?a={first.name}&b={second.name}").json()
    labels = site.dataset.train_labels
    right = [np.load(run / "oof_probs.npy").argmax(1) == labels for run in site.runs]
    assert answer["oof_accuracy"] == pytest.approx([right[0].mean(), right[1].mean()])
    assert answer["only_first_right"]["total"] == int((right[0] & ~right[1]).sum())
    assert answer["only_second_right"]["total"] == int((~right[0] & right[1]).sum())
    assert len(answer["fold_accuracies"][0]) == 2 and len(answer["confusion"]) == 2


def test_several_tabs_at_once_are_each_answered(site):
    digits, labels = make_digits(8, seed=11)
    answers = [None] * len(digits)

    def tab(index: int) -> None:
        answers[index] = predict(site, drawing_png(digits[index])).json()

    threads = [threading.Thread(target=tab, args=(index,)) for index in range(len(digits))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    one_by_one = [predict(site, drawing_png(digit)).json()["probs"] for digit in digits]
    np.testing.assert_allclose([answer["probs"] for answer in answers], one_by_one, atol=1e-4)


def test_serve_without_a_complete_run_named_is_one_line(trained, tmp_path):
    result = run_cli(
        "--competition", trained.spec_path, "--data-dir", trained.data_dir, "serve",
        "--run", "no-such-run", "--no-open", "--runs-dir", tmp_path,
    )  # fmt: skip
    assert_user_error(result, "no run named 'no-such-run'")


def test_serve_prints_its_address_and_answers_there(trained, tmp_path):
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    runs_dir = tmp_path / "runs"
    shutil.copytree(trained.run_dir, runs_dir / trained.run_dir.name)
    command = [
        sys.executable, str(Path(__file__).parent / "kaggle_cli.py"), "-",
        "--competition", trained.spec_path, "--data-dir", trained.data_dir,
        "serve", "--port", "0", "--no-open", "--runs-dir", runs_dir,
    ]  # fmt: skip
    server = subprocess.Popen(list(map(str, command)), stdout=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith(f"serving {runs_dir} at http://127.0.0.1:"), line
        address = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(f"{address}/api/runs", timeout=30) as answer:
            assert json.load(answer)["default"] == trained.run_dir.name
    finally:
        server.terminate()
        server.wait(30)


def test_serve_on_a_taken_port_is_one_line(trained, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "--competition", trained.spec_path, "--data-dir", trained.data_dir, "serve",
            "--port", port, "--no-open", "--runs-dir", trained.run_dir.parent,
        )  # fmt: skip
    assert_user_error(result, f"port {port} on 127.0.0.1 is taken", "--port 0")
