"""The bottom layer every package may import: the project-wide input error. Imports nothing of the project."""
