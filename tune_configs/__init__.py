"""Ray Tune search spaces and the sweep entry point."""
