import subprocess
import sys

from typer.testing import CliRunner

from kaggle_digits.cli import app


def run_cli(*args: object):
    """Run `kaggle-digits ARGS` in-process; returns click's Result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(app, [str(arg) for arg in args])


def assert_user_error(result, *fragments: str) -> None:
    """A handled error: exit code 2, one line on stderr holding each fragment, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output


def modules_imported(code: str, *modules: str) -> list[bool]:
    """Which of `modules` a fresh Python has imported after running `code`."""
    check = f"{code}\nimport sys\nprint(*[name in sys.modules for name in {modules!r}])"
    answer = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert answer.returncode == 0, answer.stderr
    return [word == "True" for word in answer.stdout.split()]
