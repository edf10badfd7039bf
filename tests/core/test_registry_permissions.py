"""Permissions across uids: a registry written by one user is read by another through its
group, and nobody outside the group can change it.

The test switches users for real (it runs as root and forks children that drop to another
uid, gid and groups with a strict umask, as the pods on kind do): the pipeline writes as
1000:1000 (the component image), the server reads as 10001 (the serving image), which joins
the registry's group through its pod's fsGroup (platforms/kube.py). The interpreter cannot be
started again as another uid (it may live under a private home), so each child is a fork of
this process with everything it needs already imported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from components.core.errors import ConfigError, RegistryError
from components.core.io import SHARED_DIR_MODE, SHARED_FILE_MODE
from components.core.platforms import kube
from components.core.registry import LocalRegistry
from components.core.registry import ledger as ledger_mod
from components.serving.model import load_serving_model, probe_rows

ROOT = Path(__file__).resolve().parents[2]
NAME = "m"
PIPELINE = 1000  # the component image's USER 1000:1000, and so the registry's group
SERVING = 10001  # the serving image's user
COLLEAGUE = 1001  # another user in the registry's group
STRANGER = 10002  # neither the owner nor in the group
DENIED = "denied"


def _drop_and_run(uid: int, gid: int, groups: list[int], fn: Callable[..., Any], args) -> Any:
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)
    os.umask(0o077)  # the strictest umask: the registry's modes must not depend on it
    return fn(*args)


def as_user(uid: int, fn: Callable[..., Any], *args: Any, gid: int | None = None,
            groups: tuple[int, ...] = ()) -> Any:  # fmt: skip
    """``fn(*args)`` in a forked child running as ``uid`` (primary group ``gid``, default
    ``uid``; supplementary ``groups``); its JSON-able result, or an AssertionError with the
    child's traceback. PermissionError and RegistryError come back as ("error", message)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 0
        try:
            os.close(read)
            try:
                out: Any = ["ok", _drop_and_run(uid, uid if gid is None else gid,
                                                list(groups), fn, args)]  # fmt: skip
            except (PermissionError, RegistryError) as exc:
                out = ["error", f"{type(exc).__name__}: {exc}"]
            except BaseException:
                out = ["crash", traceback.format_exc()]
            data = json.dumps(out).encode()
            while data:
                data = data[os.write(write, data) :]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, f"child as uid {uid} failed"
    kind, value = json.loads(data)
    if kind == "crash":
        raise AssertionError(f"as uid {uid}:\n{value}")
    return value if kind == "ok" else (DENIED, value)


def _can_switch_users() -> bool:
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    try:
        return as_user(SERVING, os.geteuid) == SERVING
    except AssertionError:
        return False


pytestmark = pytest.mark.skipif(
    not _can_switch_users(), reason="switches uids: needs root (CAP_SETUID) on Linux"
)


# ------------------------------------------------------------------ what each user does


def deploy(root: str, bundle: str, n: int) -> str:
    """The pipeline: a reservation in the ledger (evaluate), then a deploy."""
    reg = LocalRegistry(root, NAME)
    champion = reg.champion()
    against = champion.version if champion else None
    decided = f"d{n}"

    def make(ledger):
        record = ledger_mod.decision_record(
            id=decided, champion=against or ledger_mod.BASELINE, accounting="per_champion",
            alpha=0.05, level=0.025, attempt=n, rows={"which": "all"},
        )  # fmt: skip
        import numpy as np

        return record, np.arange(n * 10, n * 10 + 7, dtype=np.uint64)

    reg.append_ledger(make)
    decision = {"deploy": True, "p_value": 0.001, "ledger": {"id": decided}}
    return reg.register(bundle, decision, expected=against).version


def serve(root: str) -> list[Any]:
    """The server: the champion, loaded as serving loads it and asked for a prediction, and
    what `sigdeploy registry show` reads."""
    reg = LocalRegistry(root, NAME)
    champion = reg.champion()
    assert champion is not None
    model = load_serving_model(champion.path, champion.version)
    scores = model.predict_proba(probe_rows(model.preprocessor, 3))
    reg.ledger()
    return [champion.version, list(scores.shape), [v.version for v in reg.version_infos()]]


def roll_back(root: str) -> str:
    return LocalRegistry(root, NAME).rollback(reason="as another user").version


def vandalise(root: str, bundle: str) -> dict[str, Any]:
    """Every way to change the registry: through sigdeploy, and by hand."""
    reg = LocalRegistry(root, NAME)
    model = reg.model_dir
    version = model / "versions" / "1"
    attempts: dict[str, Callable[[], Any]] = {
        "register": lambda: reg.register(bundle, {"deploy": True}),
        "rollback": lambda: reg.rollback(reason="x"),
        "record": lambda: reg.record({"deploy": False}),
        "new model": lambda: LocalRegistry(root, "other").record({"deploy": False}),
        "append to the history": lambda: open(reg.history_path, "a").write("{}\n"),
        "edit the weights": lambda: open(version / "model.safetensors", "r+b").write(b"x"),
        "add a file to a version": lambda: (version / "extra.json").write_text("{}"),
        "replace the pointer": lambda: os.replace(reg.history_path, reg.pointer),
        "remove a version": lambda: os.rename(version, model / "versions" / "7"),
        "chmod": lambda: os.chmod(reg.pointer, 0o666),
    }
    out = {}
    for what, attempt in attempts.items():
        try:
            attempt()
            out[what] = "done"
        except (PermissionError, RegistryError) as exc:
            out[what] = f"{type(exc).__name__}: {exc}"
    return out


def modes(root: Path) -> dict[str, tuple[str, int]]:
    """Every path under ``root``: its mode (octal) and group."""
    out = {}
    for path in [root, *sorted(root.rglob("*"))]:
        st = path.lstat()
        out[str(path.relative_to(root))] = (oct(stat.S_IMODE(st.st_mode)), st.st_gid)
    return out


# ------------------------------------------------------------------ fixtures


@pytest.fixture()
def volume(trained_bundle) -> Iterator[Path]:
    """What the kind pipeline's volume looks like: a root that every pod may write (local-path
    makes it 0777), a bundle the pipeline trained, readable by it."""
    base = Path(tempfile.mkdtemp(prefix="sigdeploy-permissions-", dir="/tmp"))
    try:
        shutil.copytree(trained_bundle, base / "bundle")
        for path in [base, *base.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (base / "shared").mkdir()
        (base / "shared").chmod(0o777)
        # everything the children call is imported now, as root (lazy imports included)
        warm = base / "warm"
        deploy(str(warm), str(base / "bundle"), 1)
        serve(str(warm))
        vandalise(str(warm), str(base / "bundle"))
        shutil.rmtree(warm)
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------ the tests


def test_the_pipeline_writes_and_the_server_reads_as_another_uid(volume):
    root = str(volume / "shared" / "registry")
    bundle = str(volume / "bundle")
    assert as_user(PIPELINE, deploy, root, bundle, 1) == "1"
    assert as_user(PIPELINE, deploy, root, bundle, 2) == "2"

    # everything is the pipeline's group, setgid folders 2775 and files 0664, whatever the
    # writer's umask (077 here): readable by the group, writable by nobody else
    found = modes(Path(root))
    assert {mode for mode, _ in found.values()} == {oct(SHARED_DIR_MODE), oct(SHARED_FILE_MODE)}
    assert {gid for _, gid in found.values()} == {PIPELINE}
    for name, (mode, _) in found.items():
        assert not int(mode, 8) & stat.S_IWOTH, name
        want = SHARED_DIR_MODE if (Path(root) / name).is_dir() else SHARED_FILE_MODE
        assert int(mode, 8) == want, name

    # the server, uid 10001 in the registry's group (the pod's fsGroup), loads and predicts
    served = as_user(SERVING, serve, root, groups=(PIPELINE,))
    assert served[0] == "2" and served[1][0] == 3 and served[2] == ["1", "2"]

    # a uid that is neither the owner nor in the group changes nothing, by any route
    before = {p: (p.stat().st_mtime_ns, p.stat().st_mode) for p in Path(root).rglob("*")}
    tried = as_user(STRANGER, vandalise, root, bundle)
    assert {what: r.split(":")[0] for what, r in tried.items()} == {
        **dict.fromkeys(("register", "rollback", "record", "new model"), "RegistryError"),
        **dict.fromkeys(
            ("append to the history", "edit the weights", "add a file to a version",
             "replace the pointer", "remove a version", "chmod"),
            "PermissionError",
        ),
    }  # fmt: skip
    for what in ("register", "rollback", "record"):
        assert re.fullmatch(
            r"RegistryError: registry '.*': Permission denied \(.*\.lock\); deploy and roll back "
            r"as the registry's owner or as a member of its group",
            tried[what],
        ), tried[what]
    assert {p: (p.stat().st_mtime_ns, p.stat().st_mode) for p in Path(root).rglob("*")} == before
    assert as_user(PIPELINE, serve, root)[0] == "2"

    # a colleague in the group rolls back; the pipeline deploys after it; the server reads
    assert as_user(COLLEAGUE, roll_back, root, groups=(PIPELINE,)) == "1"
    pointer = Path(root) / NAME / "champion"
    assert (pointer.stat().st_uid, pointer.stat().st_gid) == (COLLEAGUE, PIPELINE)
    assert oct(stat.S_IMODE(pointer.stat().st_mode)) == oct(SHARED_FILE_MODE)
    assert as_user(PIPELINE, deploy, root, bundle, 3) == "3"
    assert as_user(SERVING, serve, root, groups=(PIPELINE,))[0] == "3"
    assert {gid for _, gid in modes(Path(root)).values()} == {PIPELINE}


def test_the_group_alone_grants_access_where_others_are_locked_out(volume):
    """A registry inside a folder only its group may enter (as on a volume whose group
    Kubernetes sets from fsGroup): the server in that group reads it, the same uid outside
    the group reads nothing."""
    team = 2000
    private = volume / "team"
    private.mkdir()
    os.chown(private, 0, team)
    private.chmod(0o2770)
    root = str(private / "registry")
    bundle = str(volume / "bundle")
    assert as_user(PIPELINE, deploy, root, bundle, 1, groups=(PIPELINE, team)) == "1"
    assert {gid for _, gid in modes(Path(root)).values()} == {team}  # setgid hands it down

    assert as_user(SERVING, serve, root, groups=(team,))[0] == "1"
    denied, message = as_user(SERVING, serve, root)
    assert denied == DENIED and "Permission denied" in message
    assert as_user(COLLEAGUE, deploy, root, bundle, 2, groups=(team,)) == "2"
    assert as_user(SERVING, serve, root, groups=(team,))[0] == "2"


def test_a_registry_written_before_its_files_were_shared_is_shared_by_its_next_write(volume):
    """An older sigdeploy wrote version folders 0700 and files 0600 (its temporaries' modes):
    the server could not read them. The next write by their owner shares them."""
    root = Path(volume / "shared" / "registry")
    bundle = str(volume / "bundle")
    assert as_user(PIPELINE, deploy, str(root), bundle, 1) == "1"
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)
    denied, message = as_user(SERVING, serve, str(root), groups=(PIPELINE,))
    assert denied == DENIED and "Permission denied" in message

    as_user(PIPELINE, lambda: LocalRegistry(root, NAME).record({"deploy": False}))
    assert as_user(SERVING, serve, str(root), groups=(PIPELINE,))[0] == "1"
    shared = modes(root)
    # the registry's root folder is not the model's to change; everything in the model is
    del shared["."]
    assert {mode for mode, _ in shared.values()} == {oct(SHARED_DIR_MODE), oct(SHARED_FILE_MODE)}


def test_the_serving_pods_join_the_registry_group_that_the_pipeline_writes_as():
    """The kind manifests' fsGroup is the component image's group (docker/), and every pod
    that reads the registry carries it."""
    dockerfile = (ROOT / "docker" / "component.Dockerfile").read_text()
    (user,) = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert user.split(":")[1] == str(kube.REGISTRY_GID) == str(PIPELINE)
    serving_user = re.findall(
        r"^USER\s+(\S+)", (ROOT / "docker" / "serving.Dockerfile").read_text(), re.M
    )
    assert serving_user == [str(SERVING)]

    bundle = f"{kube.REGISTRY_DIR}/digits-mlp/versions/3"
    deployment, _, isvc = kube.manifests("digits-mlp", "3", bundle, kube.KubeServing(), kserve=True)
    for pod in (deployment["spec"]["template"]["spec"], isvc["spec"]["predictor"]):
        assert pod["securityContext"]["fsGroup"] == kube.REGISTRY_GID
        assert pod["securityContext"]["runAsNonRoot"] is True
    with pytest.raises(ConfigError, match="fs_group=0: the registry's group id"):
        kube.KubeServing(fs_group=0)
