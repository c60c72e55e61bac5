"""The defence as pure functions on torch tensors: block DCT, PPFR-FD masking, keyed shuffle-and-mix, MixUp.

No Ray and no I/O here: callers pass tensors (and key bytes) in and get tensors out.
"""
