"""The `kaggle-digits` command (Typer): main.py holds the app and the small commands, cv.py
the `cv` command, predict.py and serve.py theirs, runs.py the `runs` table, shared.py the
options and error handling they share. Each parses and calls one library function.

Imports from: every other folder.
"""
