"""The bottom layer every package may import: the project-wide input error. Imports nothing of the project."""

__version__ = "0.1.0"
"""The one place the version lives: pyproject.toml reads it, `hybridmask --version` prints it."""
