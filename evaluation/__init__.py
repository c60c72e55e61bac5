"""Attacks, evaluator models, the measures S1-S4 and scores, and the reports."""
