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
