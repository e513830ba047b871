"""The machine a run trains on: the Keras backend's threads, accelerators and quiet import
(backend.py), and when a run's pairs end on so many workers and cores (schedule.py).

Imports from: base.
"""
