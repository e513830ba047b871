"""How (fold, member) pairs train: one pair's model fitted and its predictions (fit.py, fed by
feeding.py, its epochs' rows drawn by hard_rows.py, timed by callbacks.py; forked.py: a
forked tail's branches from one trunk), the contract between a run and whatever runs its
pairs (pairs.py), the two `--engine`s that do (local_pairs.py: this process or worker
processes; ray_pairs.py: a Ray cluster), the budget's plan and the trials that measure it
(budget.py, trials.py), progress and ETA (progress.py).

Imports from: base, machine, data, kaggle_api, models, options, store, reports.
"""
