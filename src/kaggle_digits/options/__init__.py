"""A run's options: CVConfig with every cv option declared once, checked, and what a result
depends on (config.py); the presets and the competition's priors made one config
(presets.py).

Imports from: base, machine, data, kaggle_api, models.
"""
