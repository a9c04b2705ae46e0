"""The Dagster code location and the `pyramid` command line. Pure transforms live in `assets/`."""
