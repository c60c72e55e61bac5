"""One module per `hybridmask` verb; each exposes `register(subparsers)`."""
