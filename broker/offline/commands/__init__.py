"""CLI commands of the offline tooling (each exposes `add_arguments(parser)` and `main(args)`)."""
