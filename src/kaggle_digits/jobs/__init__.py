"""The jobs on this machine: cross-validation (cv.py starts a run, cv_folds.py trains, saves
and finishes it), blending runs (blend.py), predictions for photos and CSVs (predict.py),
a look at the data (info.py).

Imports from: base, machine, data, models, options, engine.
"""
