"""The README is tested: a documented path cannot break without a red test.

- Every command shown after a ``$`` in a README code block is either run here, in order, in
  a fresh directory laid out like a checkout (``make run`` twice, then ``sigdeploy`` and
  ``curl`` against what those runs left), or listed in SKIPPED with the reason it cannot run
  here. The lines quoted under a command must appear in its output (stdout and stderr as a
  terminal shows them): a line ``...`` stands for any lines, ``...`` inside a line for any
  text, ``<time>`` for a timestamp. Durations and rates (``1.4 s``, ``74,859 rows/s``) may
  differ; other decimals may differ by 0.01 or 5%; whole numbers must match exactly.
- Every ``sigdeploy`` and ``python compile.py`` command anywhere in the README parses with the
  real argument parser, its ``--param`` settings pass the settings checks, and every ``make``
  target named exists.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent

# What cannot run here, and why; everything else shown after a `$` is run.
SKIPPED = {
    r"^python benchmarks/": "a benchmark takes minutes; tests/benchmarks runs each at a tiny size",
}
RUNNABLE = (r"^make run$", r"^sigdeploy ", r"^curl ")
TIMED = re.compile(r"^\s(?:s|ms|min|h|rows/s)\b")  # what follows a duration or a rate
NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?(?![\w])")


@dataclass
class Command:
    text: str  # the command as shown, without the "$ "
    expected: list[str] = field(default_factory=list)  # the lines quoted under it
    line: int = 0  # where it is in the README


def code_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of every fenced or indented-by-fence code block."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if current is None:
                current, start = [], number + 1
            else:
                blocks.append((start, current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def sessions(text: str) -> list[Command]:
    """Every `$` command of the README, in order, with the output quoted under it."""
    out: list[Command] = []
    for start, lines in code_blocks(text):
        current = None
        for offset, line in enumerate(lines):
            if line.startswith("$ "):
                current = Command(line[2:].split("  #")[0].strip(), [], start + offset)
                out.append(current)
            elif current is not None:
                current.expected.append(line.rstrip())
    return out


def shell_commands(text: str) -> list[tuple[int, str]]:
    """Every command line of every code block (continuations joined), `$` or not."""
    out = []
    for start, lines in code_blocks(text):
        joined, first = "", 0
        for offset, line in enumerate(lines):
            body = line[2:] if line.startswith("$ ") else line
            if not joined:
                first = start + offset
            if body.rstrip().endswith("\\"):
                joined += body.rstrip()[:-1] + " "
                continue
            out.append((first, (joined + body).split("  #")[0].strip()))
            joined = ""
    return out


def _pattern(expected: str) -> tuple[re.Pattern[str], list[str]]:
    """A regex for one quoted line, and the numbers it quotes (compared afterwards)."""
    parts, numbers, pos = [], [], 0
    tokens = [*NUMBER.finditer(expected)]
    wild = [(m.start(), m.end(), "time") for m in re.finditer(r"<time>", expected)]
    wild += [(m.start(), m.end(), "any") for m in re.finditer(r"\.\.\.", expected)]
    spans = sorted(
        [(m.start(), m.end(), "number") for m in tokens if not _inside(m.start(), wild)] + wild
    )
    for begin, end, kind in spans:
        parts.append(_literal(expected[pos:begin]))
        if kind == "number":
            parts.append(r"([-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?)")
            numbers.append(expected[begin:end])
        else:
            parts.append(".+?" if kind == "time" else ".*")
        pos = end
    parts.append(_literal(expected[pos:]))
    return re.compile("".join(parts)), numbers


def _literal(text: str) -> str:
    """``text`` as a regex; a run of 2+ spaces (column padding) matches any run of spaces,
    so a wider figure (12.4 s where 3.5 s was quoted) still lines up."""
    return "".join(
        " +" if re.fullmatch(r" {2,}", piece) else re.escape(piece)
        for piece in re.split(r"( {2,})", text)
        if piece
    )


def _inside(at: int, spans: list[tuple[int, int, str]]) -> bool:
    return any(begin <= at < end for begin, end, _ in spans)


def _close(got: str, want: str, timed: bool) -> bool:
    if timed:
        return True
    a, b = float(got.replace(",", "")), float(want.replace(",", ""))
    if "." not in want and "e" not in want:
        return a == b  # counts, versions, rows: exact
    if "e" in want:
        return (a <= 1e-10 and b <= 1e-10) or abs(a - b) <= 0.5 * abs(b)
    return abs(a - b) <= max(0.01, 0.05 * abs(b))


def output_matches(expected: list[str], actual: list[str]) -> str | None:
    """None when the quoted lines appear in order (``...`` = any lines), else what failed."""
    segments, current = [], []
    for line in expected:
        if line.strip() == "...":
            segments.append(current)
            current = []
        else:
            current.append(line)
    segments.append(current)
    pos = 0
    for segment in (s for s in segments if s):
        for k in range(pos, len(actual) - len(segment) + 1):
            if all(_timed_match(e, a) for e, a in zip(segment, actual[k:], strict=False)):
                pos = k + len(segment)
                break
        else:
            best = max(
                range(pos, len(actual) + 1),
                key=lambda k: sum(
                    1 for e, a in zip(segment, actual[k:], strict=False) if _timed_match(e, a)
                ),
            )
            pairs = zip(segment, [*actual[best:], *[""] * len(segment)], strict=False)
            want, got = next((e, a) for e, a in pairs if not _timed_match(e, a))
            return f"the quoted line\n  {want!r}\nis, where the output comes closest,\n  {got!r}"
    return None


def _timed_match(expected: str, actual: str) -> bool:
    """line_matches, with the durations and rates of ``expected`` free to differ."""
    pattern, numbers = _pattern(expected)
    m = pattern.fullmatch(actual.rstrip())
    if not m:
        return False
    ends = [n.end() for n in NUMBER.finditer(expected) if not _inside(n.start(), _wild(expected))]
    for got, want, end in zip(m.groups(), numbers, ends, strict=True):
        if not _close(got, want, timed=bool(TIMED.match(expected[end:]))):
            return False
    return True


def _wild(expected: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), "w") for m in re.finditer(r"<time>|\.\.\.", expected)]


# ----------------------------------------------------------------------------- the tests

TEXT = README.read_text()
COMMANDS = sessions(TEXT)


def test_the_matcher_frees_timings_and_holds_numbers():
    assert _timed_match("  ingest       ok         1.4 s", "  ingest       ok         0.9 s")
    assert _timed_match("  train        ok         3.5 s", "  train        ok        12.4 s")
    assert not _timed_match("  train        ok         3.5 s", "  train        okay      12.4 s")
    assert _timed_match("a 74,859 rows/s, 1 s so far", "a 70,896 rows/s, 3 s so far")
    assert _timed_match("accuracy        0.9579", "accuracy        0.9612")
    assert not _timed_match("accuracy        0.9579", "accuracy        0.8579")
    assert not _timed_match("champion: version 1 at x", "champion: version 2 at x")
    assert not _timed_match("on 380 test rows", "on 381 test rows")
    assert _timed_match("p = 6.3e-96", "p = 4.9e-96") and not _timed_match("p = 0.5", "p = 1e-3")
    assert _timed_match("at <time> UTC  v1", "at 2026-11-27 15:10 UTC  v1")
    assert _timed_match('{"0":0.99,...}}', '{"0":0.995,"1":2e-8}}')
    assert not _timed_match("field 'pixel_0_2'", "field 'pixel_0_3'")
    assert output_matches(["a", "...", "c"], ["a", "b", "c"]) is None
    assert output_matches(["a", "c"], ["a", "b", "c"]) is not None  # no gap without "..."


def test_every_command_shown_is_run_or_skipped_for_a_reason():
    assert len(COMMANDS) >= 10
    for command in COMMANDS:
        runnable = any(re.search(p, command.text) for p in RUNNABLE)
        skipped = [reason for p, reason in SKIPPED.items() if re.search(p, command.text)]
        assert runnable != bool(skipped), f"README line {command.line}: {command.text}"


def test_every_sigdeploy_and_compile_command_parses_and_its_settings_check():
    from components.core.settings import Settings
    from pipelines.cli import build_parser
    from pipelines.spec import parse_pairs

    parser = build_parser()
    seen = 0
    for line, command in shell_commands(TEXT):
        if command.startswith("python compile.py"):
            command = "sigdeploy compile" + command.removeprefix("python compile.py")
        if not command.startswith("sigdeploy ") or re.search(r"\[|\|| \.\.\.|…", command):
            continue  # not a command, or a synopsis such as "sigdeploy run [--data SOURCE]"
        argv = shlex.split(command.removesuffix("&"))[1:]
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # argparse printed why
            pytest.fail(f"README line {line}: {command} does not parse ({exc})")
        params = parse_pairs(getattr(args, "param", None))
        if params and not command.startswith("sigdeploy run --param"):  # shown to fail
            Settings.from_params(params)
        seen += 1
    assert seen >= 10


def test_every_make_target_shown_exists():
    targets = set(re.findall(r"^([a-zA-Z_-]+):", (ROOT / "Makefile").read_text(), re.M))
    shown = {
        m.group(1) for _, command in shell_commands(TEXT) if (m := re.match(r"make (\S+)", command))
    }
    assert shown and shown <= targets, shown - targets


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.e2e
@pytest.mark.slow
def test_every_runnable_readme_command_prints_what_the_readme_quotes(tmp_path):
    """The README's sessions, in order, in a directory laid out like a fresh checkout."""
    if shutil.which("make") is None or shutil.which("curl") is None:
        pytest.fail("make and curl are needed to run the README's commands")
    for name in ("Makefile", "compile.py", "pyproject.toml", "components", "pipelines"):
        (tmp_path / name).symlink_to(ROOT / name)
    (tmp_path / ".venv").symlink_to(VENV_BIN.parent)
    port = str(_free_port())
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONUNBUFFERED": "1",
        "NO_COLOR": "1",
    }
    background: list[subprocess.Popen[bytes]] = []
    failures, ran = [], 0
    try:
        for command in COMMANDS:
            if not any(re.search(p, command.text) for p in RUNNABLE):
                continue
            text = command.text.replace("8080", port)
            if text == "make run":
                # Never reinstall from here: pip would write the symlinked venv's temporary
                # path into .venv/bin/sigdeploy (make test has just installed it anyway).
                text = "make -o .venv/.installed run"
            if text.endswith("&"):
                background.append(
                    subprocess.Popen(
                        text[:-1],
                        shell=True,
                        cwd=tmp_path,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                )
                ran += 1
                continue
            result = subprocess.run(
                text,
                shell=True,
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=600,
            )
            ran += 1
            shown = result.stdout.replace(f"{tmp_path}/", "").replace(port, "8080")
            wants_error = any("sigdeploy: error:" in e for e in command.expected)
            if (result.returncode != 0) != wants_error:
                failures.append(
                    f"README line {command.line}: `{command.text}` exited {result.returncode}:\n"
                    + shown[-2000:]
                )
                continue
            problem = output_matches(command.expected, shown.splitlines())
            if problem:
                failures.append(f"README line {command.line}: `{command.text}`: {problem}")
    finally:
        for process in background:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    assert ran >= 10
    assert not failures, "\n\n".join(failures)
