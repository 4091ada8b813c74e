"""Assignment generation and safe batch grading of the labs (instructor tooling).

``assign``: master notebooks to student notebooks and autograders (``make assign``).
``worker``: grades one submission inside an isolated process.
``batch``: grades a folder of submissions in parallel into a CSV gradebook (``make grade``).
"""
