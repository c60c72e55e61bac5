"""Running hybridmask on Ray clusters: the cluster launcher's example config and the `ray submit` entry script."""
