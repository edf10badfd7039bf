"""``python -m components.serving``: the serving image's entry point (same flags as
`sigdeploy serve`), without the rest of the CLI and its training dependencies."""

from __future__ import annotations

import argparse
import logging
import sys

from components.core.errors import SigdeployError
from components.serving.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.serving",
        description="Serve the registry champion or the bundle at AIP_STORAGE_URI.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args)
    except SigdeployError as exc:
        print(f"sigdeploy serve: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
