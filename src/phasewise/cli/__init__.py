"""The ``phasewise`` command line (``phasewise.cli.main:main``).

Only the console script imports this package; ``import phasewise`` never does.
"""
