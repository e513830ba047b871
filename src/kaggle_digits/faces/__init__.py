"""What a person meets: the `kaggle-digits` command (cli.py, with cli_cv.py, cli_look.py and
cli_shared.py), the runs listed (runs.py), and the local page (serve.py, explore.py, page/).

Imports from: every other folder.
"""
