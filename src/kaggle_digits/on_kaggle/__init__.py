"""A whole `cv` run in a Kaggle kernel: pushed, waited for and resumed (remote_run.py),
brought home as an ordinary run folder (run_home.py), its finished pairs carried to a new
version (pairs_dataset.py), the script it travels in (kernel_script.py), and what runs
inside the kernel (in_kernel.py).

Imports from: every folder below cli and page.
"""
