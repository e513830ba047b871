"""`python -m kaggle_digits`: the `kaggle-digits` command."""

from kaggle_digits.cli.main import main

if __name__ == "__main__":  # not again where a spawned worker process imports this module
    main()
