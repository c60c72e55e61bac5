"""End-to-end runs: the experiment config, training a defense on masked data, `hybridmask run` and `demo`."""
