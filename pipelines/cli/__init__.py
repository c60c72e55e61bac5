"""The `hybridmask` command line: `main.py` builds the parser, `commands/` holds one module per verb."""
