"""Data preparation, end-to-end runs, the `hybridmask` CLI and the cluster files."""
