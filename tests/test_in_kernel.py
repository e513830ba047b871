"""What the script pushed to Kaggle does inside the kernel (on_kaggle/in_kernel.py): find the
competition's files and an earlier run's pairs by their content wherever Kaggle mounts them,
say what it lacks in one line and end cleanly; and a kernel's log read as text."""

import json

import pytest

from kaggle_digits.base.errors import UserError


@pytest.mark.parametrize(
    "mount",
    [
        "competitions/digit-recognizer",  # 2026
        "digit-recognizer",  # older kernels
        "datasets/someone/digit-recognizer",
        "datasets/someone/mnist-csv-copy/files",  # a copy under another name, deeper
    ],
)
def test_the_kernel_finds_the_competition_by_its_files_at_any_depth(small, tmp_path, mount):
    from kaggle_digits.data.competition import load_competition
    from kaggle_digits.data.dataset import load_dataset
    from kaggle_digits.on_kaggle.in_kernel import find_competition_files

    inputs = tmp_path / "input"
    (inputs / "datasets/other/unrelated").mkdir(parents=True)
    (inputs / mount).parent.mkdir(parents=True, exist_ok=True)
    (small.data_dir / "digit-recognizer").rename(inputs / mount)
    competition = load_competition(small.spec_path)
    data_root = find_competition_files(competition, inputs)
    assert (data_root / competition.slug).resolve() == (inputs / mount).resolve()
    assert len(load_dataset(competition, data_root).train_labels) > 0


@pytest.mark.parametrize(
    "mount", ["datasets/tester/kaggle-digits-r-pairs/r", "notebooks/tester/other-kernel/r", "r"]
)
def test_the_kernel_finds_an_earlier_run_by_its_request_at_any_depth(tmp_path, mount):
    from kaggle_digits.on_kaggle.in_kernel import take_earlier_pairs

    request = {"run": "r", "request": {"folds": 2}, "earlier": {"dataset": "d", "pairs": 1}}
    inputs = tmp_path / "input"
    decoy = inputs / "datasets/tester/another-run/r"  # same name, another run's request
    (decoy / "fold0/member0-a").mkdir(parents=True)
    (decoy / "request.json").write_text(json.dumps({"folds": 5}))
    (inputs / mount / "fold0/member0-a").mkdir(parents=True)
    (inputs / mount / "request.json").write_text(json.dumps({"folds": 2}))
    (inputs / mount / "fold0/member0-a/result.json").write_text("{}")
    take_earlier_pairs(request, inputs, tmp_path / "working" / "r")
    assert (tmp_path / "working/r/fold0/member0-a/result.json").read_text() == "{}"


def test_a_kernel_missing_the_pairs_it_was_given_stops_in_one_line(small, tmp_path, capsys):
    from kaggle_digits.on_kaggle import in_kernel

    request = {"run": "r", "request": {}, "earlier": {"dataset": "tester/d", "pairs": 3}}
    with pytest.raises(UserError, match=r"the 3 finished pair\(s\) of run r \(dataset tester/d\)"):
        in_kernel.take_earlier_pairs(request, tmp_path / "input", tmp_path / "working" / "r")


def test_the_kernel_says_in_one_line_what_it_lacks_and_ends_cleanly(
    small, tmp_path, monkeypatch, capsys
):
    import keras

    from kaggle_digits.on_kaggle import in_kernel

    request = {"run": "r", "request": {}, "spec": small.spec_path.read_text()}
    inputs, working = tmp_path / "input", tmp_path / "working"
    inputs.mkdir(), working.mkdir()
    # exit 0 all the same: Kaggle keeps a completed version's output
    assert in_kernel.main(request, inputs, working) == 0  # nothing attached under /kaggle/input
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(in_kernel.ERROR_PREFIX + "the competition's files")
    outcome = json.loads((working / in_kernel.OUTCOME).read_text())
    assert outcome["status"] == "failed" and outcome["error"] == last.removeprefix(
        in_kernel.ERROR_PREFIX
    )
    monkeypatch.setattr(keras, "__version__", "2.15.0")
    assert in_kernel.main(request, inputs, working) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        in_kernel.ERROR_PREFIX + "Kaggle's image has Keras 2.15.0; kaggle-digits needs 3.3 or newer"
    )


def test_a_kernel_log_is_read_from_kaggles_records():
    from kaggle_digits.kaggle_api.kernels import log_text

    records = [{"stream_name": "stdout", "time": 0.5, "data": "fold 1\n"},
               {"stream_name": "stderr", "time": 0.7, "data": "done\n"}]  # fmt: skip
    lines = "\n".join(json.dumps(record) for record in records)
    assert log_text(lines) == "fold 1\ndone\n"
    as_list = "[" + ",\n".join(json.dumps(record) for record in records) + "]"
    assert log_text(as_list) == "fold 1\ndone\n"
    assert log_text(json.dumps(records)) == "fold 1\ndone\n"  # the array on one line
    assert log_text(lines.replace("\n", ",\n")) == "fold 1\ndone\n"  # commas, no brackets
    assert log_text("plain text") == "plain text\n"
    assert log_text("[not json] fold 2") == "[not json] fold 2\n"
