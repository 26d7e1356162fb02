"""The `robotlearn` command. Each subcommand is a module exposing `add_arguments(parser)` and `run(args)`."""
