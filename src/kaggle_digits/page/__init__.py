"""The local page of `kaggle-digits serve`: the Starlette app and its endpoints (serve.py),
what it shows of a run as plain data (explore.py), and its HTML, CSS and JavaScript
(static/).

Imports from: every folder below cli.
"""
