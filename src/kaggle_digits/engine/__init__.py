"""How pairs train and run: one (fold, member) pair's training (training.py), the contract
between a run and its engine (pairs.py), the engines (local_pairs.py: this process or
worker processes; ray_pairs.py: a Ray cluster), the budget's plan and the trials that
measure it (budget.py, trials.py), progress and ETA (progress.py), and the run folder the
pairs fill (run_folder.py).

Imports from: base, machine, data, models, options.
"""
