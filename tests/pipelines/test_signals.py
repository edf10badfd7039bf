"""`sigdeploy run` interrupted: SIGINT or SIGTERM end every task process with it.

The end-to-end tests start a real `sigdeploy run`, signal it while it trains and look in
/proc for anything of the run left behind. The others drive pipelines.local_run._Tasks with
real child processes (no kfp) for the cases whose timing a whole run cannot pin down: a
deploy is let finish, a second signal kills it, no task starts after a signal.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipelines.local_run import Interrupted, _RunnerOutput, _Tasks

SIGDEPLOY = str(Path(sys.executable).with_name("sigdeploy"))


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _processes_mentioning(text: str, but: int) -> list[int]:
    """Live processes whose command line holds ``text`` (the run's output dir: every task's
    executor input names its artifacts under it), other than ``but``."""
    found = []
    for pid in _pids():
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if pid != but and text.encode() in cmdline and _alive(pid):
            found.append(pid)
    return found


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_training_ends_every_task_and_touches_no_registry(tmp_path, signum, code):
    out = tmp_path / "runs"
    cmd = [SIGDEPLOY, "run", "--registry", str(tmp_path / "reg"), "--output-dir", str(out)]
    cmd += ["--param", "max_epochs=1000", "--param", "patience=1000"]
    run = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert run.stderr is not None
        seen = []
        for line in run.stderr:  # until the train task reports its first epoch
            seen.append(line)
            if "epoch 1/1000" in line:
                break
        else:
            pytest.fail("the run ended before training: " + "".join(seen[-20:]))
        tasks = _processes_mentioning(str(out), but=run.pid)
        assert tasks, "no task process found for the run"
        started = time.monotonic()
        run.send_signal(signum)
        _, err = run.communicate(timeout=60)
        took = time.monotonic() - started
    finally:
        if run.poll() is None:
            run.kill()
    left = [pid for pid in tasks if _alive(pid)] + _processes_mentioning(str(out), but=run.pid)
    for pid in set(left):
        os.kill(pid, signal.SIGKILL)  # only this test's own leftovers
    assert run.returncode == code, err[-2000:]
    assert took < 15
    assert not left, f"task processes left running: {left}"
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    name = signal.Signals(signum).name
    assert lines[-1].startswith(f"sigdeploy: interrupted ({name}): task 'train' was stopped; ")
    assert "nothing was deployed" in lines[-1]
    assert not (tmp_path / "reg").exists()


# ------------------------------------------------------------------ _Tasks on its own


PRINT_THEN_SLEEP = "import sys, time; print('up', flush=True); time.sleep(float(sys.argv[1]))"


def _sink(task: str) -> _RunnerOutput:
    sink = _RunnerOutput(io.StringIO(), io.StringIO())
    sink.write(f"Executing task '{task}'\n")
    return sink


def _start(seconds: float, child_too: bool = False) -> subprocess.Popen[str]:
    """A stand-in task (started through subprocess.Popen, as kfp starts them); with
    ``child_too`` it starts a grandchild of its own first, as a task's sh starts python."""
    code = PRINT_THEN_SLEEP
    if child_too:
        code = (
            "import subprocess, sys; subprocess.Popen([sys.executable, '-c', "
            f"{PRINT_THEN_SLEEP!r}, '60']); " + code
        )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "up\n"
    return process


def _signal_soon(signum: int, after: float = 0.2) -> threading.Timer:
    timer = threading.Timer(after, os.kill, (os.getpid(), signum))
    timer.start()
    return timer


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_tasks_run_in_their_own_session_and_a_signal_ends_the_whole_group(signum):
    """SIGHUP too: in sessions of their own, the tasks no longer hear the terminal close."""
    tasks = _Tasks()
    tasks.sink = _sink("train")
    with pytest.raises(Interrupted) as info:
        with tasks.stop_on_signals(), tasks.started_here():
            with _start(60, child_too=True) as process:
                assert os.getsid(process.pid) == process.pid  # a session of its own
                group = process.pid
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:  # until the grandchild is up
                    family = [pid for pid in _pids() if _alive(pid) and _group(pid) == group]
                    if len(family) == 2:
                        break
                    time.sleep(0.05)
                assert len(family) == 2
                _signal_soon(signum, 0)
                process.wait()  # interrupted by the signal
    assert info.value.exit_code == 128 + signum
    name = signal.Signals(signum).name
    assert str(info.value).startswith(f"interrupted ({name}): task 'train' was stopped;")
    time.sleep(0.2)
    assert not [pid for pid in family if _alive(pid)]
    assert subprocess.Popen.__module__ == "subprocess"  # restored
    assert signal.getsignal(signum) != tasks._on_signal


def test_a_deploy_in_progress_is_let_finish_and_no_task_starts_after_it():
    tasks = _Tasks(progress=io.StringIO())
    tasks.sink = _sink("deploy")
    with pytest.raises(Interrupted) as info:
        with tasks.stop_on_signals(), tasks.started_here():
            with _start(1.0) as deploy:
                _signal_soon(signal.SIGINT)
                deploy.wait()
            assert deploy.returncode == 0  # it ran to its end
            subprocess.Popen([sys.executable, "-c", "pass"])  # the next task: refused
    assert info.value.exit_code == 130
    assert "the deploy task had run; `sigdeploy registry show` says what it registered" in str(
        info.value
    )
    assert "letting it finish" in tasks.progress.getvalue()  # type: ignore[union-attr]


def test_a_second_signal_stops_the_deploy_at_once():
    tasks = _Tasks(progress=io.StringIO())
    tasks.sink = _sink("deploy")
    started = time.monotonic()
    with pytest.raises(Interrupted) as info:
        with tasks.stop_on_signals(), tasks.started_here():
            with _start(60) as deploy:
                _signal_soon(signal.SIGINT, 0.1)
                _signal_soon(signal.SIGINT, 0.4)
                deploy.wait()
    assert time.monotonic() - started < 10
    assert deploy.wait(timeout=5) in (-signal.SIGTERM, -signal.SIGKILL)
    assert "task 'deploy' was killed before it finished" in str(info.value)


def test_an_error_while_a_task_runs_ends_it():
    """A closed output pipe (BrokenPipeError from a progress line) ends the task too."""
    tasks = _Tasks()
    tasks.sink = _sink("train")
    with pytest.raises(BrokenPipeError):
        with tasks.started_here():
            with _start(60) as process:
                raise BrokenPipeError
    assert process.wait(timeout=5) in (-signal.SIGTERM, -signal.SIGKILL)


def test_a_signal_before_the_pipeline_starts():
    tasks = _Tasks()
    with pytest.raises(Interrupted) as info:
        with tasks.stop_on_signals():
            _signal_soon(signal.SIGINT, 0)
            time.sleep(5)
    assert str(info.value) == "interrupted (SIGINT) before the pipeline started"


def test_a_signal_the_caller_ignores_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with _Tasks().stop_on_signals():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous)
