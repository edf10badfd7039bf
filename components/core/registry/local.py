"""The local registry: a directory with one folder per version and an atomic champion pointer.

Layout::

    <root>/<model>/versions/<n>/     one complete bundle per version
    <root>/<model>/champion          JSON pointer {"version": n}, replaced atomically
    <root>/<model>/history.jsonl     append-only record of every decision
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.core.errors import RegistryError
from components.core.io import atomic_dir, write_json
from components.core.registry.base import (
    ANY_CHAMPION,
    NAME_RE,
    Champion,
    Expected,
    VersionInfo,
    champion_moved,
    check_model_name,
    moved_error,
)

log = logging.getLogger(__name__)


class LocalRegistry:
    """A directory registry; safe against concurrent deploys through a file lock, under
    which a promotion is compare-and-swap (``register(..., expected=VERSION)``)."""

    def __init__(self, root: str | Path, model_name: str) -> None:
        self.root = Path(root).expanduser()
        self.model_name = check_model_name(model_name)
        self.model_dir = self.root / model_name

    @property
    def pointer(self) -> Path:
        return self.model_dir / "champion"

    @property
    def history_path(self) -> Path:
        return self.model_dir / "history.jsonl"

    def champion(self) -> Champion | None:
        if not self.pointer.exists():
            return None
        try:
            version = str(json.loads(self.pointer.read_text())["version"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RegistryError(
                f"registry '{self.model_dir}': the champion pointer is unreadable; restore it "
                "from history.jsonl or remove it to start afresh"
            ) from exc
        path = self.model_dir / "versions" / version
        if not path.is_dir():
            raise RegistryError(
                f"registry '{self.model_dir}': champion version {version} has no directory; "
                "the registry is damaged, restore versions/ from backup"
            )
        return Champion(version=version, path=path, uri=str(path))

    def versions(self) -> list[int]:
        vdir = self.model_dir / "versions"
        if not vdir.is_dir():
            return []
        return sorted(int(p.name) for p in vdir.iterdir() if p.name.isdigit())

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.model_dir.mkdir(parents=True, exist_ok=True)
        with open(self.model_dir / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def register(
        self, bundle_dir: str | Path, decision: dict[str, Any], *, expected: Expected = ANY_CHAMPION
    ) -> Champion:
        """Copy the bundle in as a new version, then move the champion pointer to it.

        ``expected``: the champion version the decision was made against (None: no champion).
        Under the registry lock, a champion that is no longer that version is kept, the
        history says why, and ChampionMovedError is raised before anything is copied in.
        """
        src = Path(bundle_dir)
        if not (src / "bundle.json").is_file():
            raise RegistryError(f"model bundle '{src}': bundle.json missing; nothing registered")
        with self._lock():
            previous = self.champion()
            current = previous.version if previous else None
            if reason := champion_moved(expected, current):
                self._append(
                    {"event": "kept", "champion": current, "reason": reason, "decision": decision}
                )
                raise moved_error(f"registry '{self.model_dir}'", reason, expected, current)
            version = str((self.versions() or [0])[-1] + 1)
            target = self.model_dir / "versions" / version
            with atomic_dir(target) as tmp:
                shutil.copytree(src, tmp, dirs_exist_ok=True)
            write_json(
                self.pointer,
                {"version": version, "since": time.time(), "previous": current},
            )
            self._append(
                {
                    "event": "deployed",
                    "version": version,
                    "previous": current,
                    "decision": decision,
                }
            )
        log.info("registered %s version %s as champion", self.model_name, version)
        return Champion(version=version, path=target, uri=str(target))

    def record(self, decision: dict[str, Any]) -> None:
        """Append a decision that did not deploy; the champion is untouched."""
        with self._lock():
            self._append({"event": "kept", "decision": decision})

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps({"time": time.time()} | entry, sort_keys=True, default=str)
        with open(self.history_path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def history(self) -> list[dict[str, Any]]:
        """Every decision and rollback, oldest first. A line torn by a crash is skipped."""
        if not self.history_path.exists():
            return []
        entries = []
        for number, line in enumerate(self.history_path.read_text().splitlines(), 1):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                if line.strip():
                    log.warning("%s line %d is not JSON; skipped", self.history_path, number)
        return entries

    def version_infos(self) -> list[VersionInfo]:
        champion = self.champion()
        deployed = {str(h["version"]): h for h in self.history() if h.get("event") == "deployed"}
        infos = []
        for number in self.versions():
            version = str(number)
            path = self.model_dir / "versions" / version
            entry = deployed.get(version, {})
            infos.append(
                VersionInfo(
                    version=version,
                    created=entry.get("time") or path.stat().st_mtime,
                    champion=champion is not None and champion.version == version,
                    uri=str(path),
                    decision=entry.get("decision") or {},
                )
            )
        return infos

    def version_bundle(self, version: str) -> Champion:
        """Version ``version`` of this model (its bundle directory), champion or not."""
        version = str(version).strip()
        path = self.model_dir / "versions" / version
        if not version.isdigit() or not path.is_dir():
            known = ", ".join(str(v) for v in self.versions()) or "none"
            raise RegistryError(
                f"registry '{self.model_dir}': no version {version!r}; versions: {known}"
            )
        return Champion(version=version, path=path, uri=str(path))

    def rollback(self, version: str | None = None, reason: str = "") -> Champion:
        """Make an earlier version the champion again: the pointer moves atomically and the
        history records who came before and why. Without ``version``, the champion before
        the current one (so a second rollback undoes the first)."""
        from components.core.bundle_format import missing_files

        with self._lock():
            current = self.champion()
            if current is None:
                raise RegistryError(
                    f"registry '{self.model_dir}': there is no champion to roll back; "
                    "nothing has been deployed under this model name"
                )
            if version is None:
                version = json.loads(self.pointer.read_text()).get("previous")
                if version is None:
                    known = ", ".join(str(v) for v in self.versions())
                    raise RegistryError(
                        f"registry '{self.model_dir}': version {current.version} has no "
                        f"predecessor; name the version to restore (versions: {known})"
                    )
            restored = self.version_bundle(version)
            version, target = restored.version, restored.path
            if version == current.version:
                raise RegistryError(
                    f"registry '{self.model_dir}': version {version} is already the champion"
                )
            if missing := missing_files(target):
                raise RegistryError(
                    f"registry '{self.model_dir}': version {version} lacks {', '.join(missing)}; "
                    "it cannot serve, so the champion stays version " + current.version
                )
            write_json(
                self.pointer,
                {"version": version, "since": time.time(), "previous": current.version},
            )
            self._append(
                {
                    "event": "rolled_back",
                    "version": version,
                    "previous": current.version,
                    "reason": reason,
                }
            )
        log.info(
            "%s: champion rolled back from %s to %s", self.model_name, current.version, version
        )
        return restored


def model_names(root: str | Path) -> list[str]:
    """The model names a local registry directory holds, sorted; [] when it holds none or
    does not exist. For error messages that list what is there."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and NAME_RE.match(p.name))
