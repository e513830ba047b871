import os

import pytest

from kaggle_digits.backend import native_stderr_hidden


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
