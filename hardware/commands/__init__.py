"""CLI commands owned by the hardware layer: `checkpost scan`, `corpus`, `hw`."""
