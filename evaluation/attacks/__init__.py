"""Attacks on the defences, each behind the `Attack` interface of `evaluation.attacks.base`."""
