"""Everything that talks to Kaggle: its API (api.py) and kernels (kernels.py), the download
(download.py), submissions and their ledger (submission.py, ledger.py), the leaderboard
(leaderboard.py), and a run in a Kaggle kernel: pushed and brought home (remote_run.py),
the script it travels in (kernel_script.py), what runs inside it (in_kernel.py).

Imports from: base, machine, data, models, options, engine, jobs.
"""
