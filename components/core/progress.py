"""Progress lines of the pipeline steps: one format for the terminal and the task logs.

A step reports with ``report(step, message)``, an INFO record of this module's logger that
starts with MARKER. A task process makes INFO records visible by calling ``task_logging()``
first (every component body does): they go to stderr, which Vertex AI and KFP keep as the
task's log, and which the KFP local runner passes on line by line while the task runs, so
``sigdeploy run`` picks the progress lines out by MARKER and shows them as they come.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

MARKER = "[sigdeploy]"
LINE = re.compile(re.escape(MARKER) + r" ([\w-]+): (.*)$")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def report(step: str, message: str) -> None:
    """One progress line of ``step`` (ingest, preprocess, train, evaluate, deploy)."""
    log.info("%s %s: %s", MARKER, step, message)


def parse(line: str) -> tuple[str, str] | None:
    """(step, message) of a progress line found anywhere in ``line``, else None."""
    m = LINE.search(line.rstrip())
    return (m.group(1), m.group(2)) if m else None


def task_logging(level: int = logging.INFO) -> None:
    """Send this package's log records at ``level`` and above to stderr, once per process.

    Called at the start of a component body: the task's log is then what the step says,
    progress lines included, on every runner.
    """
    logger = logging.getLogger("components")
    if not any(getattr(h, "sigdeploy_task", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.sigdeploy_task = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(FORMAT))
        logger.addHandler(handler)
        logger.propagate = False  # a runner's own root handler would print it twice
    logger.setLevel(level)


def duration(seconds: float) -> str:
    """Seconds for people: '42 s', '3 min 05 s', '2 h 10 min'."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


class Throttle:
    """True at the first call, then at most once every ``seconds`` (or when forced)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds = seconds
        self.clock = clock
        self.last: float | None = None

    def __call__(self, force: bool = False) -> bool:
        now = self.clock()
        if force or self.last is None or now - self.last >= self.seconds:
            self.last = now
            return True
        return False
