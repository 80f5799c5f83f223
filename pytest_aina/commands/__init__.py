"""One module per ``aina`` subcommand; each defines ``register(subparsers)``."""
