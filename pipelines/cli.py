"""The `sigdeploy` command line: run | compile | submit | schedule | registry | predict | serve.

Each command lives in its own module that exposes ``add_parser(subparsers)``; the parser's
``func`` does the work. User errors (SigdeployError) are printed as one line on stderr, with
no traceback, and exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from components.core.errors import SigdeployError

COMMAND_MODULES = (
    "pipelines.local_run",
    "pipelines.compile_cmd",
    "pipelines.submit",
    "pipelines.registry_cmd",
    "pipelines.predict_cmd",
    "components.serving.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sigdeploy",
        description="Train, test for significance, and deploy only when the challenger is better.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that command is not part of this installation
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except SigdeployError as exc:
        print(f"sigdeploy: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sigdeploy: interrupted", file=sys.stderr)
        return 130


def compile_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of compile.py: the same as `sigdeploy compile`."""
    return main(["compile", *(sys.argv[1:] if argv is None else argv)])
