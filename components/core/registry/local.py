"""The local registry: a directory with one folder per version and an atomic champion pointer.

Layout::

    <root>/<model>/versions/<n>/     one complete bundle per version
    <root>/<model>/champion          JSON pointer {"version": n}, replaced atomically
    <root>/<model>/history.jsonl     append-only record of every decision
    <root>/<model>/ledger.jsonl      the ledger (registry/ledger.py): one record a line
    <root>/<model>/ledger/<sha>.npy  the test-row keys its decisions were made on
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
from components.core.io import atomic_dir, atomic_path, write_json
from components.core.registry import ledger as ledger_mod
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

    @property
    def ledger_path(self) -> Path:
        return self.model_dir / "ledger.jsonl"

    @property
    def keys_dir(self) -> Path:
        return self.model_dir / "ledger"

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
            if decided := ledger_mod.promoted_id(decision):
                self._promoted(decided, version)
        log.info("registered %s version %s as champion", self.model_name, version)
        return Champion(version=version, path=target, uri=str(target))

    def _promoted(self, decided: str, version: str) -> None:
        """Record in the ledger which version decision ``decided`` made: the rows that
        promoted it now count as used against it. The champion has already moved, so a
        ledger that cannot take the record is logged, not raised (the next evaluation stops
        on it, with what to do)."""
        try:
            self._append_ledger(ledger_mod.promotion_record(decided, version))
        except RegistryError as exc:
            log.warning(
                "version %s is the champion, but the ledger was not updated: %s", version, exc
            )

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

    # ------------------------------------------------------------------ the ledger

    def ledger(self) -> ledger_mod.Ledger:
        """The ledger, checked (registry/ledger.py): RegistryError, one line, when it is
        damaged, belongs to another model, or is gone though the history used one."""
        return self._read_ledger(keys=True)

    def append_ledger(self, make: ledger_mod.Append) -> dict[str, Any]:
        """Append a record, or the record ``make(ledger)`` returns, under the registry lock:
        the ledger it sees cannot change before the record lands. Returns the record as
        stored."""
        with self._lock():
            return self._append_ledger(make)

    def _append_ledger(self, make: ledger_mod.Append) -> dict[str, Any]:
        """``append_ledger`` with the lock already held. The keys file goes first and the
        ledger is replaced whole (temp file + os.replace): a crash leaves the old ledger."""
        current = self._read_ledger(keys=callable(make))  # a plain record needs the count
        record, keys = make(current) if callable(make) else (make, None)
        record, data = ledger_mod.with_keys(record, keys)
        if data:
            path = self.keys_dir / f"{record['rows']['sha256']}.npy"
            if not path.is_file():
                with atomic_path(path) as tmp:
                    tmp.write_bytes(data)
        stored = ledger_mod.stamped(record, self.model_name, current.records + 1)
        line = json.dumps(stored, sort_keys=True, allow_nan=False) + "\n"
        old = self.ledger_path.read_bytes() if self.ledger_path.is_file() else b""
        with atomic_path(self.ledger_path) as tmp:
            with open(tmp, "wb") as fh:
                fh.write(old + line.encode())
                fh.flush()
                os.fsync(fh.fileno())
        return stored

    def _read_ledger(self, *, keys: bool) -> ledger_mod.Ledger:
        where = f"registry '{self.model_dir}': ledger '{self.ledger_path}'"
        restore = f"{self.ledger_path.name} and {self.keys_dir.name}/ in {self.model_dir}"
        restart = f"replace {self.ledger_path} with an empty file"
        if not self.ledger_path.is_file():
            decisions, recorded = ledger_mod.history_check(self.history())
            if recorded:
                raise ledger_mod.lost(where, recorded, restore=restore, restart=restart)
            note = ledger_mod.older_note(f"registry '{self.model_dir}'", decisions)
            return ledger_mod.Ledger(where=str(self.ledger_path), note=note if decisions else "")
        text = self.ledger_path.read_text(encoding="utf-8")
        lines = [line for line in text.splitlines() if line.strip()]
        try:
            records = [ledger_mod.parse_line(line, n) for n, line in enumerate(lines, 1)]
            read = self._key_file if keys else None
            decisions_, count = ledger_mod.fold(records, self.model_name, read)
        except ledger_mod.Damaged as exc:
            raise ledger_mod.damaged(where, str(exc), restore=restore, restart=restart) from None
        return ledger_mod.Ledger(tuple(decisions_), count, str(self.ledger_path))

    def _key_file(self, digest: str) -> bytes | None:
        path = self.keys_dir / f"{digest}.npy"
        return path.read_bytes() if path.is_file() else None

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
