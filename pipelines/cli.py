"""The `sigdeploy` command line: run | compile | submit | schedule | registry | predict | serve.

Each command lives in its own module that exposes ``add_parser(subparsers)``; the parser's
``func`` does the work. User errors (SigdeployError) are printed as one line on stderr, with
no traceback, and exit non-zero. An interrupted command (Ctrl-C; `run` also SIGTERM) prints
one line and exits 128 + the signal's number; output to a pipe whose reader has gone
(`sigdeploy registry show | head -1`) ends the command quietly, as SIGPIPE ends a Unix tool.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import select
import signal
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


# The exit status of a command whose output pipe was closed: what a shell reports for a
# process ended by SIGPIPE, so `set -o pipefail` scripts see it as they see `yes | head`.
BROKEN_PIPE_EXIT = 128 + signal.SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        if not any(map(_reader_gone, (sys.stdout, sys.stderr))):
            raise  # a pipe of the work itself broke: that is a failure to show
        return _quiet_after_broken_pipe()


def _main(argv: Sequence[str] | None) -> int:
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
    except KeyboardInterrupt as exc:  # also `run`'s Interrupted (SIGINT, SIGTERM)
        print(f"sigdeploy: {str(exc) or 'interrupted'}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 130))


def _reader_gone(stream: object) -> bool:
    """Whether ``stream`` is a pipe or socket whose reading end has been closed."""
    try:
        fd = stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
    if not hasattr(select, "poll"):
        return True  # cannot tell: assume it was this stream
    poller = select.poll()
    poller.register(fd, select.POLLOUT)  # POLLERR and POLLHUP are always reported
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _quiet_after_broken_pipe() -> int:
    """The reader of stdout (or stderr) has gone: point both at /dev/null so that nothing
    more is written, not even the interpreter's flush at exit, and end quietly."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):  # no real file behind it (e.g. captured in a test)
            pass
    os.close(devnull)
    return BROKEN_PIPE_EXIT


def compile_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of compile.py: the same as `sigdeploy compile`."""
    return main(["compile", *(sys.argv[1:] if argv is None else argv)])
