import os

import pytest

from kaggle_digits.machine.backend import native_stderr_hidden


def test_native_stderr_is_hidden_while_all_goes_well(capfd):
    with native_stderr_hidden():
        os.write(2, b"I0000 cudart_stub.cc:31] Could not find cuda drivers\n")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_native_stderr_is_replayed_when_the_block_fails(capfd):
    with pytest.raises(ImportError), native_stderr_hidden():
        os.write(2, b"libfoo.so: cannot open shared object file\n")
        raise ImportError("no foo")
    assert "libfoo.so: cannot open shared object file" in capfd.readouterr().err


def test_python_dash_m_runs_the_command():
    """`python -m kaggle_digits` is the `kaggle-digits` command, with the same commands."""
    import subprocess
    import sys
    from pathlib import Path

    as_module = subprocess.run(
        [sys.executable, "-m", "kaggle_digits", "--help"], capture_output=True, text=True
    )
    script = Path(sys.executable).with_name("kaggle-digits")  # the install's console script
    as_script = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert as_module.returncode == as_script.returncode == 0, as_module.stderr
    commands = ("download", "info", "cv", "submit", "leaderboard", "blend", "runs", "serve")
    assert all(f"│ {name} " in as_module.stdout for name in commands)
    words_after_usage = [
        run.stdout.split("[OPTIONS]", 1)[1].split() for run in (as_module, as_script)
    ]
    assert words_after_usage[0] == words_after_usage[1]
