import json
import shutil
import time

from helpers import run_cli

from kaggle_digits.jobs.ledger import Ledger


def test_runs_lists_complete_and_incomplete_runs_newest_first(trained, tmp_path):
    runs_dir = tmp_path / "runs"
    complete = runs_dir / trained.run_dir.name
    shutil.copytree(trained.run_dir, complete)
    time.sleep(0.01)
    unfinished = runs_dir / "20991231-235959-default"
    unfinished.mkdir()
    shutil.copy(trained.run_dir / "config.json", unfinished / "config.json")
    (runs_dir / "latest").symlink_to(complete.name)
    ledger = Ledger(tmp_path / "submissions" / "ledger.csv")
    for score in ("0.98100", "0.99200", ""):
        ledger.append({"run_id": complete.name, "status": "complete", "public_score": score})

    result = run_cli("runs", "--runs-dir", runs_dir, "--submissions-dir", tmp_path / "submissions")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3  # header, two runs; runs/latest is not a run of its own
    assert lines[1].startswith(unfinished.name)
    assert f"incomplete: kaggle-digits cv --resume {unfinished}" in lines[1]
    assert lines[2].startswith(complete.name) and lines[2].endswith("complete")
    assert f"{trained.oof_accuracy:.5f}" in lines[2]
    assert "0.99200" in lines[2] and "tiny-cnn" in lines[2]
    wall = json.loads((complete / "metrics.json").read_text())["wall_minutes"]
    assert lines[0].split()[5] == "wall" and lines[2].split()[5] == f"{wall:.1f}"


def test_runs_says_how_to_start(tmp_path):
    result = run_cli("runs", "--runs-dir", tmp_path / "none")
    assert result.exit_code == 0
    assert "no runs yet" in result.stdout
