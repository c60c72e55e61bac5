"""Measurements of the project's speed and of its defence, run by hand: `python -m benchmarks.<name> --help`."""
