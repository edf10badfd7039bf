"""Crash consistency: a real deploy (and a rollback, a reservation in the ledger, a kept
decision, a writer's own recovery) killed with SIGKILL at every step leaves a local registry
that every reader sees whole, and that the next writer cleans up and keeps using.

A child process runs the operation with ``os``'s writing calls (replace, rename, mkdir,
unlink, fsync, write, ftruncate, chmod, ...) counted; at call number k it kills itself with
SIGKILL before the call runs, or, for a write, after writing half of it (a torn line).
The parent first counts the calls of an uninterrupted run, then kills one child at each k
and checks every invariant on what is left. Production code has no hook for this.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from components.core.bundle_format import missing_files
from components.core.errors import RegistryError
from components.core.registry import LocalRegistry
from components.core.registry import ledger as ledger_mod

REPO = Path(__file__).resolve().parents[2]
NAME = "m"

WORKER = textwrap.dedent(
    """
    import json, os, signal, sys, time

    import numpy as np

    from components.core import steps
    from components.core.platforms.deploy_config import DeployConfig
    from components.core.registry import LocalRegistry, RegistryConfig
    from components.core.registry import ledger as ledger_mod

    operation, root, bundle, decision, kill_at, how = sys.argv[1:7]
    kill_at = int(kill_at)
    calls = []
    TRAPPED = (
        "replace", "rename", "mkdir", "rmdir", "unlink", "fsync", "write", "ftruncate",
        "truncate", "chmod", "fchmod",
    )

    def trap(name, real):
        def wrapped(*args, **kwargs):
            calls.append(name)
            if len(calls) == kill_at:
                if how == "outside":  # stop here, say so, and wait for the parent's SIGKILL
                    sys.stdout.write("stopped\\n")
                    sys.stdout.flush()
                    time.sleep(600)
                if name == "write" and how == "torn":
                    data = bytes(args[1])
                    real(args[0], data[: max(1, len(data) // 2)])
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args, **kwargs)
        return wrapped

    registry = LocalRegistry(root, "m")
    for name in TRAPPED:  # after the imports: only the operation's own calls count
        setattr(os, name, trap(name, getattr(os, name)))

    def reserve(ledger):
        record = ledger_mod.decision_record(
            id="reserved-in-the-child", champion="1", accounting="per_champion", alpha=0.05,
            level=0.025 / 2, attempt=2, rows={"which": "all"},
        )
        return record, np.arange(100, 150, dtype=np.uint64)

    if operation == "deploy":  # the pipeline's deploy step, local target
        steps.deploy(bundle, decision, RegistryConfig(root, "m"), DeployConfig())
    elif operation == "rollback":
        registry.rollback(reason="crash test")
    elif operation == "reserve":  # what evaluate does before it decides
        registry.append_ledger(reserve)
    elif operation == "record":  # a decision that did not deploy
        registry.record({"deploy": False, "reason": "kept in the child"})
    print(json.dumps(calls))
    """
)


def _reserve(reg: LocalRegistry, champion: str, decided: str, keys: np.ndarray) -> None:
    """A decision and its outcome in the ledger, as evaluate writes them."""

    def make(ledger):
        record = ledger_mod.decision_record(
            id=decided, champion=champion, accounting="per_champion", alpha=0.05,
            level=0.025, attempt=1, rows={"which": "all"},
        )  # fmt: skip
        return record, keys

    reg.append_ledger(make)
    reg.append_ledger(ledger_mod.outcome_record(decided, 0.001, True))


def _decision(decided: str, against: str | None) -> dict:
    return {
        "deploy": True,
        "p_value": 0.001,
        "champion_version": against,
        "ledger": {"id": decided},
        "reason": f"decision {decided}",
    }


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, trained_bundle):
    """A registry with history: v1 and v2 deployed through the ledger, a rollback to v1
    (so v2 is the pointer's 'previous'), a kept decision, and a reserved deploy decision
    against v1 waiting to be deployed (decision.json)."""
    work = tmp_path_factory.mktemp("crash")
    reg = LocalRegistry(work / "registry", NAME)
    for n, against in ((1, None), (2, "1")):
        _reserve(reg, against or ledger_mod.BASELINE, f"d{n}", np.arange(n * 10, dtype=np.uint64))
        reg.register(trained_bundle, _decision(f"d{n}", against), expected=against)
    reg.rollback("1", reason="v2 misbehaves")
    reg.record({"deploy": False, "reason": "kept"})
    _reserve(reg, "1", "d3", np.arange(5, 40, dtype=np.uint64))
    (work / "decision.json").write_text(json.dumps(_decision("d3", "1")))
    (work / "worker.py").write_text(WORKER)
    return work


def _command(work: Path, operation: str, root: Path, kill_at: int, how: str) -> list[str]:
    return [sys.executable, str(work / "worker.py"), operation, str(root), str(work / "bundle"),
            str(work / "decision.json"), str(kill_at), how]  # fmt: skip


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path)


def _run(work: Path, operation: str, root: Path, kill_at: int = 0, how: str = "before"):
    command = _command(work, operation, root, kill_at, how)
    return subprocess.run(
        command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120
    )


class Before:
    """What the prepared registry holds, to compare a crashed copy with."""

    def __init__(self, root: Path) -> None:
        reg = LocalRegistry(root, NAME)
        self.history = reg.history()
        self.ledger = reg.ledger()
        self.lines = reg.history_path.read_bytes().splitlines(keepends=True)
        self.ledger_bytes = reg.ledger_path.read_bytes()
        self.champion = reg.champion().version
        self.previous = json.loads(reg.pointer.read_bytes())["previous"]
        self.promotions = sum(h["event"] in ("deployed", "rolled_back") for h in self.history)


def _copy(work: Path, name: str, source: str = "registry") -> Path:
    root = work / "runs" / name
    shutil.copytree(work / source, root, symlinks=True)
    return root


def check_reader_view(root: Path, before: Before, operation: str) -> str:
    """The invariants every reader relies on, read before any writer touches the registry;
    returns whether the operation happened ("done") or left no trace ("not done")."""
    reg = LocalRegistry(root, NAME)
    versions_dir = (reg.model_dir / "versions").resolve()
    # the champion pointer parses and names a complete version inside the registry
    champion = reg.champion()
    assert champion is not None
    assert champion.path.resolve().parent == versions_dir
    assert missing_files(champion.path) == []
    # the history reads back whole: every line but a torn last one parses, and nothing that
    # was there before is lost
    raw = reg.history_path.read_bytes()
    *whole, last = raw.split(b"\n")
    assert all(json.loads(line) for line in whole)
    if last:
        with pytest.raises(ValueError):
            json.loads(last)  # a torn line: the only kind of line a crash may leave
    history = reg.history()
    assert history[: len(before.history)] == before.history
    # every version has its record, is complete and inside the registry; the champion's
    # record is the last promotion
    recorded = {h["version"] for h in history if h["event"] == "deployed"}
    assert {str(v) for v in reg.versions()} <= recorded
    for v in reg.versions():
        assert missing_files(reg.version_bundle(str(v)).path) == []
    promotions = [h for h in history if h["event"] in ("deployed", "rolled_back")]
    assert promotions[-1]["version"] == champion.version
    # a folder without a record is offered to nobody
    folders = [p.name for p in versions_dir.iterdir() if p.name.isdigit()]
    for name in set(folders) - recorded:
        with pytest.raises(RegistryError, match="has no record"):
            reg.version_bundle(name)
    assert [v.version for v in reg.version_infos()] == [str(v) for v in reg.versions()]
    # the ledger reads back whole, keys files included, and loses nothing
    ledger = reg.ledger()
    assert reg.ledger_path.read_bytes().startswith(before.ledger_bytes)
    assert [d.id for d in ledger.decisions][: len(before.ledger.decisions)] == [
        d.id for d in before.ledger.decisions
    ]
    for d in ledger.decisions:
        assert d.keys.dtype == np.uint64 and len(d.keys) == d.rows["count"]
    # all or nothing
    if operation == "deploy":
        done = champion.version == "3"
        assert reg.versions() == ([1, 2, 3] if done else [1, 2])
        if not done:
            assert champion.version == before.champion
        assert len(promotions) == before.promotions + done
    elif operation == "rollback":
        done = champion.version == before.previous
        assert len(promotions) == before.promotions + done
        assert reg.versions() == [1, 2]
    elif operation == "reserve":
        done = len(ledger.decisions) == len(before.ledger.decisions) + 1
        assert champion.version == before.champion and history == before.history
    else:
        done = len(history) == len(before.history) + 1
        assert champion.version == before.champion
    return "done" if done else "not done"


def check_after_a_writer(root: Path, trained_bundle: Path, operation: str, state: str) -> None:
    """The next writer recovers: no temporaries, no folder without a record above the
    versions, whole lines only, the deploy's ledger record in place, shared modes; then a
    fresh deploy works."""
    reg = LocalRegistry(root, NAME)
    seen = reg.history()
    champion = reg.champion().version
    reg.record({"deploy": False, "reason": "the writer after the crash"})
    assert reg.history()[:-1] == seen  # what readers saw is what the disk now says
    assert reg.champion().version == champion
    on_disk = [json.loads(line) for line in reg.history_path.read_text().splitlines()]
    assert on_disk == reg.history() and reg.history_path.read_bytes().endswith(b"\n")
    for folder in (reg.model_dir, reg.model_dir / "versions", reg.keys_dir):
        assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    folders = sorted(int(p.name) for p in (reg.model_dir / "versions").iterdir())
    assert folders == reg.versions()
    ledger = {d.id: d for d in reg.ledger().decisions}
    if operation == "deploy":
        assert ledger["d3"].version == ("3" if state == "done" else None)
    elif operation == "recover":  # the crashed deploy's promotion, written down
        assert ledger["d3"].version == "3"
        assert [h["version"] for h in on_disk if h["event"] == "deployed"] == ["1", "2", "3"]
    for path in [reg.model_dir, *reg.model_dir.rglob("*")]:
        assert not path.stat().st_mode & stat.S_IWOTH, path
    # and the registry keeps working
    against = reg.champion().version
    fresh = reg.register(trained_bundle, {"deploy": True}, expected=against)
    assert fresh.version == str(max(folders) + 1)
    assert reg.champion().version == fresh.version
    assert reg.rollback(reason="back").version == against


def _sweep(
    work: Path, operation: str, trained_bundle: Path, source: str = "registry"
) -> list[tuple[int, str, str, str]]:
    """Kill ``operation`` on a copy of ``source`` at every step and check what each kill
    left; returns (k, how, the call it was killed at, "done" or "not done") for each.
    ``operation`` "recover" is a kept decision written on a registry that a crash left."""
    label, operation = operation, "record" if operation == "recover" else operation
    root = _copy(work, f"{label}-uninterrupted", source)
    counted = _run(work, operation, root)
    assert counted.returncode == 0, counted.stderr
    calls = json.loads(counted.stdout)
    before = Before(work / source)
    assert check_reader_view(root, before, operation) == "done"
    kills = [(k, "before") for k in range(1, len(calls) + 1)]
    kills += [(k, "torn") for k, name in enumerate(calls, 1) if name == "write"]

    def one(kill: tuple[int, str]) -> tuple[int, str, str, str]:
        k, how = kill
        root = _copy(work, f"{label}-{k}-{how}", source)
        result = _run(work, operation, root, k, how)
        where = f"{label} killed {how} call {k} of {len(calls)} ({calls[k - 1]})"
        assert result.returncode == -signal.SIGKILL, f"{where}: {result.stderr}"
        try:
            state = check_reader_view(root, before, operation)
            check_after_a_writer(root, trained_bundle, label, state)
        except (AssertionError, RegistryError) as exc:
            raise AssertionError(f"{where}: {exc}") from exc
        return k, how, calls[k - 1], state

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        return list(pool.map(one, kills))


@pytest.fixture(scope="module")
def work(prepared, trained_bundle):
    shutil.copytree(trained_bundle, prepared / "bundle", dirs_exist_ok=True)
    return prepared


@pytest.fixture(scope="module")
def crashed(work):
    """``work`` with ``crashed/``: the prepared registry after a real deploy killed halfway
    through appending its history record (the pointer already moved to version 3, the
    history ends in a torn line, the ledger lacks the promotion), and the leftovers of
    earlier crashes: a pointer's temporary, a bundle's staging folder, a keys file's
    temporary."""
    counted = _run(work, "deploy", _copy(work, "crashed-count"))
    assert counted.returncode == 0, counted.stderr
    calls = json.loads(counted.stdout)
    k = calls.index("write", calls.index("replace")) + 1  # the history append
    root = _copy(work, "crashed-registry")
    assert _run(work, "deploy", root, k, "torn").returncode == -signal.SIGKILL
    model = root / NAME
    assert not model.joinpath("history.jsonl").read_bytes().endswith(b"\n")
    (model / ".champion.0badf00d.tmp").write_text('{"version": "9"')
    (model / "versions" / ".4.deadbeef.tmp").mkdir()
    (model / "versions" / ".4.deadbeef.tmp" / "bundle.json").write_text("{")
    (model / "ledger" / ".feed.npy.12345678.tmp").write_bytes(b"half")
    shutil.move(root, work / "crashed")
    return work


# the call whose completion is the operation: the pointer's (or the ledger's) os.replace,
# or the history line's write for a kept decision
MOMENT = {
    "deploy": "replace",
    "rollback": "replace",
    "reserve": "replace",
    "record": "write",
    "recover": "write",
}


@pytest.mark.parametrize(
    "operation",
    [
        # a few seconds each beyond the fixtures: make test-fast keeps the cheapest
        pytest.param("deploy", marks=pytest.mark.slow),
        pytest.param("rollback", marks=pytest.mark.slow),
        pytest.param("reserve", marks=pytest.mark.slow),
        "record",
        pytest.param("recover", marks=pytest.mark.slow),
    ],
)
def test_a_write_killed_at_every_step_leaves_a_consistent_registry(
    crashed, trained_bundle, operation
):
    source = "crashed" if operation == "recover" else "registry"
    states = _sweep(crashed, operation, trained_bundle, source)
    steps = [(call, state) for _, how, call, state in states if how == "before"]
    # all or nothing, with one moment: killed before it nothing happened, after it all did
    first = next(n for n, (_, state) in enumerate(steps) if state == "done")
    assert {state for _, state in steps[:first]} == {"not done"}
    assert {state for _, state in steps[first:]} == {"done"}
    assert steps[first - 1][0] == MOMENT[operation]
    torn = [state for _, how, _, state in states if how == "torn"]
    assert torn or operation == "reserve"  # the rest append to the history


def test_a_deploy_killed_from_outside_leaves_a_consistent_registry(work, trained_bundle):
    """As the training resume test does it: the parent sends the SIGKILL to a deploy that
    stands still at a moment of its own, here the ones that change what readers see (the
    staging folder's rename, the pointer's replace, the history's append) and the ledger's."""
    counted = _run(work, "deploy", _copy(work, "outside-count"))
    assert counted.returncode == 0, counted.stderr
    calls = json.loads(counted.stdout)
    moments = [k for k, name in enumerate(calls, 1) if name in ("rename", "replace", "write")]
    before = Before(work / "registry")
    states = []
    for k in moments:
        root = _copy(work, f"outside-{k}")
        deploy = subprocess.Popen(
            _command(work, "deploy", root, k, "outside"), cwd=REPO, env=_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert deploy.stdout is not None
            assert deploy.stdout.readline() == "stopped\n", deploy.stderr
            deploy.send_signal(signal.SIGKILL)  # no handler, no cleanup
            deploy.wait(timeout=30)
        finally:
            if deploy.poll() is None:
                deploy.kill()
        assert deploy.returncode == -signal.SIGKILL
        where = f"deploy killed from outside at call {k} of {len(calls)} ({calls[k - 1]})"
        try:
            state = check_reader_view(root, before, "deploy")
            check_after_a_writer(root, trained_bundle, "deploy", state)
        except (AssertionError, RegistryError) as exc:
            raise AssertionError(f"{where}: {exc}") from exc
        states.append((calls[k - 1], state))
    # before the pointer's replace nothing happened; from it on, all of it
    first = next(n for n, (_, state) in enumerate(states) if state == "done")
    assert states[first - 1][0] == "replace"
    assert {state for _, state in states[:first]} == {"not done"}
    assert {state for _, state in states[first:]} == {"done"}
