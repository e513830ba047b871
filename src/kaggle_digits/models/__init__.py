"""The nets: the custom layers saved inside a model (layers.py) and the architectures by
name (architectures.py).

Imports from: base, machine, data, kaggle_api.
"""
