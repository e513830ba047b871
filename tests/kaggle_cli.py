"""`kaggle-digits ARGS` in a process of its own (to be killed, or run beside another), its
Kaggle client pointed at the stand-in server at URL (conftest.point_client_at, for a
process); with KAGGLE_DIGITS_TEST_CLIENT=DIR, the Kaggle client installed apart in DIR
(`make kaggle-clients`) ahead of the installed one:

    python tests/kaggle_cli.py URL ARGS...     (URL "-": no server)
"""

import os
import sys


def main() -> None:
    url, *arguments = sys.argv[1:]
    if os.environ.get("KAGGLE_DIGITS_TEST_CLIENT"):
        sys.path.insert(0, os.environ["KAGGLE_DIGITS_TEST_CLIENT"])
    if url != "-":
        from kaggle.api.kaggle_api_extended import KaggleApi
        from kagglesdk import kaggle_env

        kaggle_env._env_to_endpoint[kaggle_env.KaggleEnv.LOCAL] = url
        KaggleApi.args = ["--local"]

    from kaggle_digits.cli.main import main as kaggle_digits

    sys.argv = ["kaggle-digits", *arguments]
    kaggle_digits()


if __name__ == "__main__":  # not in the worker processes, which import this file (spawn)
    main()
