"""A second competition by spec: Kannada-MNIST's format (an id column in test.csv, ids from
0, an `id,label` submission) through every command, and specs that are refused."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from conftest import point_client_at
from helpers import assert_user_error, run_cli
from kaggle_stub import StubKaggle
from synthetic import kannada_frames, kannada_spec, write_competition, zip_frames

from kaggle_digits.data.competition import load_competition
from kaggle_digits.options.presets import preset_config

SLUG = "kannada-like"
TRAIN_ROWS, TEST_ROWS = 200, 40


@pytest.fixture
def kannada(tmp_path, monkeypatch, isolated_home):
    """A Kannada-format competition the project never saw, served by the stand-in Kaggle;
    the working folder is tmp_path, so runs/ and submissions/ land there."""
    train, test, sample, test_labels = kannada_frames(TRAIN_ROWS, TEST_ROWS)
    extra = {"Dig-MNIST.csv": train.head(20).to_csv(index=False).encode()}
    stub = StubKaggle(
        slug=SLUG,
        zip_bytes=zip_frames(train, test, sample, extra),
        hidden_labels=list(test_labels),
        submission_columns=("id", "label"),
    ).start()
    point_client_at(stub, monkeypatch)
    monkeypatch.chdir(tmp_path)
    stub.spec_path = kannada_spec(tmp_path, SLUG, TRAIN_ROWS, TEST_ROWS)
    yield stub
    stub.stop()


def cli(stub, *args):
    return run_cli("--competition", stub.spec_path, *args)


def test_kannada_format_goes_from_download_to_a_scored_upload(kannada):
    assert cli(kannada, "download").exit_code == 0
    assert (Path("data") / SLUG / "test.csv").is_file()

    info = cli(kannada, "info")
    assert info.exit_code == 0, info.output
    assert str(TEST_ROWS) in info.stdout

    trained = cli(
        kannada, "cv", "--preset", "quick", "--folds", "2", "--epochs", "2", "--workers", "1",
        "--precision", "float32",  # no precision trial: the test's time
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    [run_dir] = [path for path in (Path("runs") / SLUG).iterdir() if not path.is_symlink()]
    assert json.loads((run_dir / "config.json").read_text())["competition"] == SLUG

    submitted = cli(kannada, "submit", "--poll-every", "0.05", "--wait", "10")
    assert submitted.exit_code == 0, submitted.output
    written = Path("submissions") / SLUG / f"{run_dir.name}.csv"
    frame = pd.read_csv(written)
    assert list(frame.columns) == ["id", "label"]
    assert frame["id"].tolist() == list(range(TEST_ROWS))
    [upload] = kannada.submissions
    assert upload.content == written.read_bytes() and upload.status == "COMPLETE"
    assert "public score" in submitted.stdout

    assert cli(kannada, "submissions").exit_code == 0
    listed = cli(kannada, "runs")
    assert run_dir.name in listed.stdout, listed.output
    predicted = cli(kannada, "predict", "--csv", Path("data") / SLUG / "test.csv")
    assert predicted.exit_code == 0, predicted.output
    assert [line.split(":")[0] for line in predicted.stdout.splitlines()] == [
        str(i) for i in range(TEST_ROWS)
    ]


def test_a_run_is_never_submitted_to_another_competition(kannada, tmp_path):
    digits = write_competition(tmp_path / "digits", TRAIN_ROWS, TEST_ROWS)
    trained = run_cli(
        "--competition", digits.spec_path, "--data-dir", digits.data_dir,
        "cv", "--folds", "2", "--members", "mlp", "--epochs", "1", "--workers", "1",
        "--precision", "float32",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    [run_dir] = [p for p in (Path("runs") / "digit-recognizer").iterdir() if not p.is_symlink()]
    refused = cli(kannada, "submit", "--dry-run", run_dir)
    assert_user_error(refused, run_dir.name, "'digit-recognizer'", f"not '{SLUG}'")
    # the newest run of the right competition is chosen; another competition's never is
    assert_user_error(
        cli(kannada, "submit", "--dry-run", "--runs-dir", Path("runs") / "digit-recognizer"),
        "no complete run",
    )


def test_test_ids_must_match_the_sample_submission(kannada):
    assert cli(kannada, "download").exit_code == 0
    test_csv = Path("data") / SLUG / "test.csv"
    frame = pd.read_csv(test_csv)
    frame.loc[2, "id"] = 99
    frame.to_csv(test_csv, index=False)
    assert_user_error(cli(kannada, "info"), "test.csv: row 3, column 'id'", "id 99")


def test_a_spec_is_found_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "competition").mkdir()
    text = Path(kannada_spec(tmp_path, "mini", 10, 5)).read_text()
    (tmp_path / "competition" / "mini.toml").write_text(text)
    assert load_competition("mini").slug == "mini"
    assert load_competition("kannada-mnist").slug == "Kannada-MNIST"  # beside the source
    assert load_competition().slug == "digit-recognizer"
    assert_user_error(run_cli("--competition", "nonesuch", "info"), "'nonesuch'", "mini")


@pytest.mark.parametrize(
    "pattern, replacement, fragments",
    [
        (r'^label_column = "label"\n', "", ["missing the field 'data.label_column'"]),
        (r"^classes = .*$", "classes = [1, 1]", ["'data.classes'", "distinct"]),
        (r"^pixel_range = .*$", "pixel_range = [255, 0]", ["'data.pixel_range'"]),
        (r"^test_rows = .*$", 'test_rows = "many"', ["'data.test_rows'", "integer"]),
        (r"^image_shape = .*$", "image_shape = [28, 28]", ["'data.image_shape'", "3 integers"]),
        (r'^id_column = "id"$', 'id_column = "label"', ["'submission.label_column'"]),
        (r'^test_id_column = "id"', 'test_id_column = "pixel0"', ["'data.test_id_column'"]),
    ],
)
def test_a_wrong_spec_is_one_line_naming_the_field(tmp_path, pattern, replacement, fragments):
    spec = kannada_spec(tmp_path, SLUG, 10, 5)
    text, count = re.subn(pattern, replacement, spec.read_text(), count=1, flags=re.M)
    assert count == 1, pattern
    spec.write_text(text)
    assert_user_error(run_cli("--competition", spec, "info"), str(spec), *fragments)


# --- the images' priors: the spec's [augment] -------------------------------------------

PRIORS = "\n[augment]\n{fields}\n"


def spec_with_priors(tmp_path, fields: str) -> Path:
    """The Kannada spec with its [augment] section replaced by `fields`."""
    spec = kannada_spec(tmp_path, SLUG, 10, 5)
    text = spec.read_text()
    spec.write_text(text[: text.index("\n[augment]")] + PRIORS.format(fields=fields))
    return spec


def test_a_spec_without_priors_takes_defaults_safe_for_any_image(tmp_path):
    spec = spec_with_priors(tmp_path, "")
    config = preset_config("default", load_competition(spec).priors)
    assert (config.deskew, config.flip_horizontal, config.flip_vertical) == (False,) * 3
    assert config.tta_views == "shifts" and config.chosen_by["deskew"] == "spec default"


def test_the_spec_sets_the_priors_and_a_presets_own_table_overrides_them(tmp_path):
    fields = 'deskew = true\nflip_horizontal = true\nviews = "flips+shifts"\nrotation = 0\n'
    spec = spec_with_priors(tmp_path, fields + '[augment.quick]\nviews = "flips"\n')
    priors = load_competition(spec).priors
    default, quick = preset_config("default", priors), preset_config("quick", priors)
    assert (default.deskew, default.flip_horizontal, default.rotation_degrees) == (True, True, 0)
    assert (default.tta_views, quick.tta_views) == ("flips+shifts", "flips")
    assert quick.tta == 1  # the preset's 4 views, but a single flip is all there is
    assert default.chosen_by["rotation_degrees"] == "spec"
    assert default.chosen_by["zoom"] == "spec default"
    assert default.chosen_by["tta"] == "preset"


def test_options_override_the_spec_and_say_so(tmp_path):
    spec = spec_with_priors(tmp_path, 'deskew = true\nflip_horizontal = true\nviews = "flips"')
    priors = load_competition(spec).priors
    config = preset_config("quick", priors, deskew=False, tta=1, tta_views="shifts")
    assert (config.deskew, config.tta_views, config.flip_horizontal) == (False, "shifts", True)
    assert config.chosen_by["deskew"] == config.chosen_by["tta_views"] == "option"
    assert config.chosen_by["flip_horizontal"] == "spec"


@pytest.mark.parametrize(
    "fields, fragments",
    [
        ("flip = true", ["unknown field 'augment.flip'", "flip_horizontal"]),
        ('views = "flips"', ["'augment.views'", "the training flips none", "flip_horizontal"]),
        ('views = "shifts+turns"', ["'augment.views'", "flips, shifts, rotations"]),
        ('deskew = "yes"', ["'augment.deskew'", "true or false"]),
        ("zoom = 2.0", ["'augment.zoom'", "from 0 to 0.9"]),
        ('[augment.quick]\nviews = "flips"', ["'augment.quick.views'", "flips none"]),
    ],
)
def test_a_wrong_prior_is_one_line_naming_the_field(tmp_path, fields, fragments):
    spec = spec_with_priors(tmp_path, fields)
    assert_user_error(run_cli("--competition", spec, "info"), str(spec), *fragments)


def test_a_table_for_an_unknown_preset_is_named(tmp_path):
    spec = spec_with_priors(tmp_path, '[augment.fastest]\nviews = "rotations"')
    assert_user_error(run_cli("--competition", spec, "info"), "'augment.fastest'", "no preset")


def test_the_digit_recognizer_spec_states_the_presets_earlier_choices():
    """Its runs are unchanged: the presets' digit choices, now the spec's."""
    priors = load_competition("digit-recognizer").priors
    earlier = {"quick": "shifts", "default": "rotations", "gpu": "rotations"}
    for preset, views in earlier.items():
        config = preset_config(preset, priors)
        assert (config.deskew, config.tta_views, config.tta) == (True, views, 4)
        assert (config.rotation_degrees, config.zoom, config.shift) == (10, 0.1, 0.1)
        assert not (config.flip_horizontal or config.flip_vertical)
    assert load_competition("kannada-mnist").priors.for_preset("quick") == priors.for_preset(
        "quick"
    )


def test_info_prints_the_priors_a_run_would_take(tmp_path):
    spec = spec_with_priors(tmp_path, 'flip_horizontal = true\nviews = "flips+shifts"')
    result = run_cli("--competition", spec, "info", "--preset", "quick")
    lines = result.output.splitlines()
    assert lines[0].startswith("priors") and "quick preset" in lines[0]
    assert any(line.split()[:2] == ["flips", "horizontal"] for line in lines)
    assert any(line.split()[:5] == ["views", "4", "of", "25:", "flips+shifts"] for line in lines)


def test_cv_help_says_the_spec_sets_the_priors():
    text = " ".join(run_cli("cv", "--help").output.split())
    assert "the competition's spec sets the images' priors" in text
    for flag in ("--flip-horizontal", "--rotation", "--zoom", "--shift", "--tta-views"):
        assert flag in text
