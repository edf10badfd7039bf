"""Atomic file writing: a failed step leaves nothing half written.

Files that other users read (the registry's, served by another uid) get the shared modes
below, set with chmod so that the writer's umask cannot narrow them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Shared files: the owner and the group read and write, everyone else reads; nothing is
# writable by others. Directories are setgid, so what is created in them keeps their group
# (a registry's group is its root's: `chgrp GROUP DIR && chmod 2775 DIR` shares it).
SHARED_FILE_MODE = 0o664
SHARED_DIR_MODE = 0o2775
TEMP_SUFFIX = ".tmp"  # temporaries are ".<name>.<random>.tmp" beside their target


def temp_name(name: str) -> str:
    """A hidden name beside ``name`` for a temporary that becomes it."""
    return f".{name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def is_temp(name: str) -> bool:
    """Whether ``name`` is a temporary of these helpers (a crash's leftover, once no writer
    holds it)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


@contextlib.contextmanager
def atomic_path(
    path: str | os.PathLike[str], mode: int | None = None, *, durable: bool = False
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only on success.

    ``mode``: the file's permission bits, exactly; None: what a plain ``open`` gives (0666
    less the umask). ``durable``: the file is flushed to disk before the move and the move
    after it, so that not even a power cut leaves the old name pointing at a short file.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = target.parent / temp_name(target.name)
    os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp_path
        if mode is not None:
            os.chmod(tmp_path, mode)
        if durable:
            fsync_file(tmp_path)
        os.replace(tmp_path, target)
        if durable:
            fsync_dir(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; it replaces ``path`` only on success.
    Its mode is what a plain ``mkdir`` gives (0777 less the umask)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / temp_name(target.name)
    os.mkdir(tmp, 0o777)
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(
    path: str | os.PathLike[str], text: str, *, mode: int | None = None, durable: bool = False
) -> None:
    with atomic_path(path, mode, durable=durable) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(
    path: str | os.PathLike[str], data: bytes, *, mode: int | None = None, durable: bool = False
) -> None:
    with atomic_path(path, mode, durable=durable) as tmp:
        tmp.write_bytes(data)


def write_json(
    path: str | os.PathLike[str], obj: Any, *, mode: int | None = None, durable: bool = False
) -> None:
    write_text(path, dumps(obj, indent=2) + "\n", mode=mode, durable=durable)


# ------------------------------------------------------------------ durability and modes


def fsync_file(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries (a rename or a new file in it) to disk."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_shared_dirs(path: str | os.PathLike[str]) -> None:
    """``mkdir -p`` with the shared directory mode on each directory it creates (those that
    exist keep theirs: they may belong to someone else)."""
    target = Path(path)
    if target.is_dir():
        return
    make_shared_dirs(target.parent)
    try:
        os.mkdir(target)
    except FileExistsError:
        return  # made meanwhile by another writer
    os.chmod(target, SHARED_DIR_MODE)


def share_fd(fd: int) -> None:
    """Give an open file of ours the shared file mode (left alone if someone else owns it)."""
    st = os.fstat(fd)
    if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != SHARED_FILE_MODE:
        os.fchmod(fd, SHARED_FILE_MODE)


def share_tree(root: str | os.PathLike[str], *, durable: bool = False) -> None:
    """Give ``root`` and everything under it that this user owns the shared modes, without
    following links; ``durable``: also flush every file and directory to disk."""
    uid = os.geteuid()
    for top, _dirs, files in os.walk(root):
        for name, want in [(top, SHARED_DIR_MODE)] + [
            (os.path.join(top, f), SHARED_FILE_MODE) for f in files
        ]:
            st = os.lstat(name)
            if stat.S_ISLNK(st.st_mode):
                continue
            if st.st_uid == uid and stat.S_IMODE(st.st_mode) != want:
                os.chmod(name, want)
            if durable:
                (fsync_dir if stat.S_ISDIR(st.st_mode) else fsync_file)(name)


def dumps(obj: Any, indent: int | None = None) -> str:
    """Strict JSON: NaN and infinities (an AUC with one class, say) become null."""
    return json.dumps(
        _finite(obj), indent=indent, sort_keys=True, default=_json_default, allow_nan=False
    )


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return _finite(obj.tolist())
    return obj


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays appear in metrics; JSON has no type for them.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
