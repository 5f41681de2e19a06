"""Benchmarks users can run against the service: `python -m benchmarks <command>`.

Each command is a module or package here exposing `add_parser(subparsers)` and
`run(args)`; `benchmarks/__main__.py` lists them. Shared by all: the runner
(`common`: datasets, the in-process `ServiceHarness`, timing, the machine's
description), the subprocess server (`server`, measured through `procstats`), and
report writing (`report`). Benchmarks import the service, never the reverse.

The service (torch, the stores), ranx (numba), matplotlib and the dataset tools are imported
inside `run()` and its helpers, on purpose: `python -m benchmarks --help` builds every
command's parser and must answer at once.
"""
