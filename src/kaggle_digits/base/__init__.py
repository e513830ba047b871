"""What every layer shares: errors a user can cause (errors.py), the points where the tests
inject kills and full disks (faults.py), files written whole or not at all (files.py).

Imports from: nothing of the package's.
"""
