"""Everything that talks to Kaggle: its API (api.py) and kernels (kernels.py), the download
(download.py), submissions and their ledger (submission.py, ledger.py), the leaderboard
(leaderboard.py), and a run in a Kaggle kernel: pushed, waited for and resumed
(remote_run.py), its log shown (kernel_log.py), brought home (run_home.py), its finished
pairs carried to a new version (pairs_dataset.py), the script it travels in
(kernel_script.py), what runs inside it (in_kernel.py).

Imports from: base, machine, data, models, options, engine, jobs.
"""
