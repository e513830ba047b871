"""The run folder as one store: the only place that knows its file names and how each is
read and written. Finding runs, their lock and `latest` (run_folder.py), the files of a run
and of its pairs (run_files.py), damaged files found (damage.py), the trained members of a
run or a blend and their models loaded (members.py).

Imports from: base, machine, data, kaggle_api, models, options.
"""
