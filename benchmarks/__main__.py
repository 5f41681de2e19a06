"""`python -m benchmarks <command> ...`: one subcommand per benchmark module."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each name is a module in this package with add_parser(subparsers) and run(args) -> int.
# Modules are imported lazily-ish (here, at parser build time) so `--help` stays cheap:
# the service and its models are only imported inside run().
COMMANDS = ("quality", "stale", "latency", "precision", "ingest", "incremental", "webhooks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"benchmarks.{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
