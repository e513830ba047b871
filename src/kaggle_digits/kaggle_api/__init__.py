"""Kaggle's API through its official client, for any job above: credentials, the client's
versions and its errors made one line (client.py), kernels and their output (kernels.py), a
kernel's log shown as it runs (kernel_log.py), the competition's files downloaded
(download.py). Nothing here knows of runs or folds.

Imports from: base, machine, data.
"""
