"""The competition: its spec and priors (competition.py), its CSVs read, checked and cached
as image tensors (dataset.py), the test-time views (views.py) and a photo turned into one
of its images (photo.py).

Imports from: base, machine.
"""
