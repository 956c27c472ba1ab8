"""Command-line subcommands of the shared core; each module has ``register(subparsers)``."""
