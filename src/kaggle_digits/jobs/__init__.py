"""The jobs on this machine: cross-validation (cv.py assigns the folds and starts or resumes
a run, cv_pairs.py trains its pairs, saves each and pools them), blending runs (blend.py),
predictions for photos and CSVs (predict.py), a look at the data (info.py), and a run's
submission: written, checked and uploaded (submit.py), its ledger (ledger.py), the
leaderboard (leaderboard.py).

Imports from: base, machine, data, kaggle_api, models, options, store, reports, training.
"""
