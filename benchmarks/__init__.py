"""Benchmarks users can run against the service: `python -m benchmarks <command>`.

Each command is a module here exposing `add_parser(subparsers)` and `run(args)`;
`benchmarks/__main__.py` lists them. Benchmarks import the service, never the reverse.
"""
