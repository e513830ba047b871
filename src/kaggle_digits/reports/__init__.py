"""What a finished run shows beyond its numbers: matplotlib figures (plots.py) and its
record in MLflow (tracking.py), for the jobs that make and submit runs.

Imports from: base, machine, data, kaggle_api, models, options, store.
"""
