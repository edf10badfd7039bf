"""The local registry: a directory with one folder per version and an atomic champion pointer.

Layout::

    <root>/<model>/versions/<n>/     one complete bundle per version
    <root>/<model>/champion          JSON pointer {"version": n, ..., "record": {...}}
    <root>/<model>/history.jsonl     append-only record of every decision
    <root>/<model>/ledger.jsonl      the ledger (registry/ledger.py): one record a line
    <root>/<model>/ledger/<sha>.npy  the test-row keys its decisions were made on

Crash consistency. Replacing the pointer (``os.replace``) is the one moment a promotion, a
deploy or a rollback, happens, and the pointer carries that promotion's history record. A
deploy (1) copies the bundle into a hidden ``versions/.<n>.<random>.tmp`` and flushes it to
disk, (2) renames it to ``versions/<n>``, (3) replaces the pointer, (4) appends the record to
the history and (5) tells the ledger which version its decision made. Killed anywhere, it
leaves a registry that readers see whole: a folder without a record is no version (nothing
lists it or rolls back to it), the pointer's record counts as history until the history
holds it, and a line that the kill tore is skipped. The next writer, under the lock and
before anything else, makes the disk say the same (``_recover``): temporaries and the
interrupted deploy's folder go, the history ends at its last whole line, and the records
that the history or the ledger lack are added. The ledger itself is only ever replaced
whole, and its keys files are written before the record that names them.

Permissions. Directories are 2775 and files 0664 (``io.SHARED_*``), whatever the umask: the
serving user reads a registry written under another uid, the registry's group (its root's,
kept by setgid) may deploy and roll back, and nothing is writable by others.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.core.errors import RegistryError
from components.core.io import (
    SHARED_FILE_MODE,
    fsync_dir,
    is_temp,
    make_shared_dirs,
    share_fd,
    share_tree,
    temp_name,
    write_bytes,
    write_json,
)
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

VERSION_RE = re.compile(r"\A[1-9][0-9]{0,17}\Z")  # what a version folder is named: 1, 2, ...
PROMOTIONS = ("deployed", "rolled_back")  # the events that move the champion pointer


class LocalRegistry:
    """A directory registry; safe against concurrent deploys through a file lock, under
    which a promotion is compare-and-swap (``register(..., expected=VERSION)``), and
    consistent after a crash at any step (see the module docstring)."""

    def __init__(self, root: str | Path, model_name: str) -> None:
        self.root = Path(root).expanduser()
        self.model_name = check_model_name(model_name)
        self.model_dir = self.root / model_name

    @property
    def pointer(self) -> Path:
        return self.model_dir / "champion"

    @property
    def versions_dir(self) -> Path:
        return self.model_dir / "versions"

    @property
    def history_path(self) -> Path:
        return self.model_dir / "history.jsonl"

    @property
    def ledger_path(self) -> Path:
        return self.model_dir / "ledger.jsonl"

    @property
    def keys_dir(self) -> Path:
        return self.model_dir / "ledger"

    # ------------------------------------------------------------------ reading

    def champion(self) -> Champion | None:
        found = self._pointer()
        if found is None:
            return None
        version = str(found["version"])
        path = self._version_path(version)
        if not path.is_dir():
            raise RegistryError(
                f"registry '{self.model_dir}': champion version {version} has no directory; "
                "the registry is damaged, restore versions/ from backup"
            )
        return Champion(version=version, path=path, uri=str(path))

    def _pointer(self) -> dict[str, Any] | None:
        """The champion pointer, checked: a version number of this registry (never a path)."""
        try:
            found = json.loads(self.pointer.read_bytes())
            version = found["version"]
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise RegistryError(
                f"registry '{self.model_dir}': the champion pointer is unreadable; restore it "
                "from history.jsonl or remove it to start afresh"
            ) from exc
        if isinstance(version, bool) or not VERSION_RE.match(str(version)):
            raise RegistryError(
                f"registry '{self.model_dir}': the champion pointer names version {version!r}, "
                "not a version number of this registry; restore it from history.jsonl or "
                "remove it to start afresh"
            )
        return dict(found)

    def _pointer_record(self) -> dict[str, Any] | None:
        """The history record the pointer carries (None for a damaged pointer, or one
        written before pointers carried their record)."""
        try:
            found = self._pointer()
        except RegistryError:
            return None
        record = (found or {}).get("record")
        if isinstance(record, dict) and record.get("event") in PROMOTIONS:
            return record
        return None

    def _version_path(self, version: str) -> Path:
        """``versions/<version>`` for a checked version number; a folder that leads out of
        the registry (a link) is refused."""
        path = self.versions_dir / version
        if path.exists() and path.resolve().parent != self.versions_dir.resolve():
            raise RegistryError(
                f"registry '{self.model_dir}': versions/{version} leads outside the registry "
                f"(to '{path.resolve()}'); a registry holds its versions itself"
            )
        return path

    def _folders(self) -> list[int]:
        """Every version folder on disk, a version or not."""
        if not self.versions_dir.is_dir():
            return []
        return sorted(int(p.name) for p in self.versions_dir.iterdir() if VERSION_RE.match(p.name))

    def versions(self) -> list[int]:
        """The registered versions: folders whose deploy has its history record. A folder
        without one was left by a deploy killed before it promoted it, and is no version."""
        return self._registered(self.history())

    def _registered(self, history: list[dict[str, Any]]) -> list[int]:
        recorded = {str(h.get("version")) for h in history if h.get("event") == "deployed"}
        with contextlib.suppress(RegistryError):
            if found := self._pointer():  # a registry older than this rule: its champion
                recorded.add(str(found["version"]))
        return [n for n in self._folders() if str(n) in recorded]

    def history(self) -> list[dict[str, Any]]:
        """Every decision and rollback, oldest first. A line torn by a crash is skipped; the
        last promotion is there even when a crash kept it from the file (the pointer holds
        its record until the next writer appends it)."""
        entries = self._read_history()
        record = self._pointer_record()
        if record is not None and _key(record) not in {_key(e) for e in entries}:
            entries.append(record)
        return entries

    def _read_history(self) -> list[dict[str, Any]]:
        try:
            data = self.history_path.read_bytes()
        except FileNotFoundError:
            return []
        *lines, tail = data.split(b"\n")  # tail: what follows the last newline
        entries = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            entry = _parse(line)
            if entry is None and (entry := _salvage(line)) is not None:
                # an older sigdeploy appended after a torn line: the next record is whole
                log.warning(
                    "%s line %d: a fragment torn by a crash, then a whole record; the record "
                    "is kept",
                    self.history_path,
                    number,
                )
            if entry is None:
                log.warning("%s line %d is not JSON; skipped", self.history_path, number)
            else:
                entries.append(entry)
        if tail.strip():
            if (entry := _parse(tail)) is not None:
                entries.append(entry)  # a whole record that lost only its newline
            else:
                log.warning(
                    "%s line %d is torn (a write cut short by a crash); skipped",
                    self.history_path,
                    len(lines) + 1,
                )
        return entries

    def version_infos(self) -> list[VersionInfo]:
        champion = self.champion()
        history = self.history()
        deployed = {str(h["version"]): h for h in history if h.get("event") == "deployed"}
        infos = []
        for number in self._registered(history):
            version = str(number)
            path = self.versions_dir / version
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
        """Version ``version`` of this model (its bundle directory), champion or not; a
        folder without a history record is refused."""
        version = str(version).strip()
        known = self.versions()
        if VERSION_RE.match(version) and int(version) in known:
            path = self._version_path(version)
            return Champion(version=version, path=path, uri=str(path))
        listed = ", ".join(str(v) for v in known) or "none"
        if VERSION_RE.match(version) and (self.versions_dir / version).is_dir():
            raise RegistryError(
                f"registry '{self.model_dir}': versions/{version} has no record in "
                f"{self.history_path.name}: a deploy was stopped before it made it the "
                f"champion, so it was never a version and cannot be restored; versions: "
                f"{listed}"
            )
        raise RegistryError(
            f"registry '{self.model_dir}': no version {version!r}; versions: {listed}"
        )

    # ------------------------------------------------------------------ writing

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        try:
            make_shared_dirs(self.model_dir)
            fd = os.open(self.model_dir / ".lock", os.O_RDWR | os.O_CREAT, SHARED_FILE_MODE)
        except PermissionError as exc:
            raise RegistryError(
                f"registry '{self.model_dir}': {exc.strerror} ({exc.filename}); deploy and "
                "roll back as the registry's owner or as a member of its group"
            ) from exc
        try:
            share_fd(fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """The registry lock, with whatever a crashed writer left made consistent first."""
        with self._lock():
            self._recover()
            yield

    def register(
        self, bundle_dir: str | Path, decision: dict[str, Any], *, expected: Expected = ANY_CHAMPION
    ) -> Champion:
        """Copy the bundle in as a new version, then move the champion pointer to it.

        ``expected``: the champion version the decision was made against (None: no champion).
        Under the registry lock, a champion that is no longer that version is kept, the
        history says why, and ChampionMovedError is raised before anything is copied in.
        """
        from components.core.bundle_format import FILES, missing_files
        from components.core.model.mlp_numpy import verify_bundle

        src = Path(bundle_dir)
        if not src.is_dir():
            raise RegistryError(f"model bundle '{src}': no such directory; nothing registered")
        if missing := missing_files(src):
            raise RegistryError(
                f"model bundle '{src}': {', '.join(missing)} missing (a bundle holds "
                f"{', '.join(FILES)}); nothing registered"
            )
        verify_bundle(src)  # manifest, parts and weights: a damaged bundle is one line
        with self._writing():
            previous = self.champion()
            current = previous.version if previous else None
            if reason := champion_moved(expected, current):
                self._append(
                    {"event": "kept", "champion": current, "reason": reason, "decision": decision}
                )
                raise moved_error(f"registry '{self.model_dir}'", reason, expected, current)
            version = str(max([0, *self._folders(), *self._numbers(self.history())]) + 1)
            entry = _normal(
                {
                    "time": time.time(),
                    "event": "deployed",
                    "version": version,
                    "previous": current,
                    "decision": decision,
                }
            )
            target = self._copy_in(src, version)
            self._promote(entry)
            if decided := ledger_mod.promoted_id(decision):
                self._promoted(decided, version)
        log.info("registered %s version %s as champion", self.model_name, version)
        return Champion(version=version, path=target, uri=str(target))

    def _copy_in(self, src: Path, version: str) -> Path:
        """Copy bundle ``src`` to ``versions/<version>``: complete, shared and on disk before
        the folder gets its name."""
        make_shared_dirs(self.versions_dir)
        staging = self.versions_dir / temp_name(version)
        try:
            os.mkdir(staging)
            shutil.copytree(src, staging, copy_function=shutil.copyfile, dirs_exist_ok=True)
            share_tree(staging, durable=True)
            target = self.versions_dir / version
            os.rename(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        fsync_dir(self.versions_dir)
        return target

    def _promote(self, entry: dict[str, Any]) -> None:
        """Move the champion pointer (the promotion itself), then append its record."""
        write_json(
            self.pointer,
            {
                "version": entry["version"],
                "since": entry["time"],
                "previous": entry["previous"],
                "record": entry,
            },
            mode=SHARED_FILE_MODE,
            durable=True,
        )
        self._append(entry)

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
        with self._writing():
            self._append({"event": "kept", "decision": decision})

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps({"time": time.time()} | entry, sort_keys=True, default=str) + "\n"
        fd = os.open(self.history_path, os.O_RDWR | os.O_APPEND | os.O_CREAT, SHARED_FILE_MODE)
        try:
            share_fd(fd)
            new = self._mend(fd) == 0
            data = line.encode()
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            fsync_dir(self.model_dir)

    def _mend(self, fd: int) -> int:
        """End the open history file at its last whole line: a line torn by a crash goes
        (its record was never written), so the next append starts a line of its own.
        Returns the file's size then."""
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return size
        start = 0
        for end in range(size, 0, -65536):
            block = os.pread(fd, min(65536, end), max(0, end - 65536))
            if (at := block.rfind(b"\n")) >= 0:
                start = max(0, end - 65536) + at + 1
                break
        if _parse(os.pread(fd, size - start, start)) is not None:
            os.write(fd, b"\n")  # a whole record that lost only its newline
            return size + 1
        os.ftruncate(fd, start)
        os.fsync(fd)
        log.warning(
            "%s: removed its last %d bytes, a line torn by a crash", self.history_path, size - start
        )
        return start

    def _recover(self) -> None:
        """Make the disk say what readers already see after a crash (the module
        docstring); under the lock, before every write."""
        for folder in (self.model_dir, self.versions_dir, self.keys_dir):
            if folder.is_dir():
                for leftover in (p for p in folder.iterdir() if is_temp(p.name)):
                    log.warning("%s: removing %s, left by a crash", self.model_dir, leftover.name)
                    _remove(leftover)
        if self.history_path.is_file():
            fd = os.open(self.history_path, os.O_RDWR | os.O_APPEND)
            try:
                self._mend(fd)
            finally:
                os.close(fd)
        history = self._read_history()
        record = self._pointer_record()
        if record is not None and _key(record) not in {_key(e) for e in history}:
            log.warning(
                "%s: adding the record of version %s's promotion, which a crash kept from it",
                self.history_path,
                record.get("version"),
            )
            self._append(record)
            history.append(record)
        self._drop_interrupted(history)
        self._redo_promotion(history)
        share_tree(self.model_dir)  # a registry written before its files were shared

    def _drop_interrupted(self, history: list[dict[str, Any]]) -> None:
        """Remove the folder of a deploy killed before it promoted it: the highest folder,
        numbered one above every version the history and the pointer know, without a
        record. Any other folder without one is only ignored (it is no version)."""
        try:
            found = self._pointer()
        except RegistryError:
            return  # which folder is the champion is unknown: remove nothing
        numbers = self._numbers(history)
        if found is not None and int(found["version"]) not in numbers:
            return  # a history that does not know the champion is not one to judge by
        registered = self._registered(history)
        folders = self._folders()
        top = max([0, *registered, *numbers])
        for number in folders:
            if number == top + 1 == folders[-1]:
                log.warning(
                    "%s: removing versions/%d, copied in by a deploy that was stopped before it "
                    "promoted it",
                    self.model_dir,
                    number,
                )
                _remove(self.versions_dir / str(number))
            elif number not in registered:
                log.warning(
                    "%s: versions/%d has no record in %s; it is no version, and is ignored",
                    self.model_dir,
                    number,
                    self.history_path.name,
                )

    def _redo_promotion(self, history: list[dict[str, Any]]) -> None:
        """Add the ledger's record of the last deploy when a crash kept it from the ledger."""
        deployed = [h for h in history if h.get("event") == "deployed"]
        decided = ledger_mod.promoted_id((deployed[-1].get("decision") or {}) if deployed else {})
        if not decided or not self.ledger_path.is_file():
            return
        try:
            ledger = self._read_ledger(keys=False)
        except RegistryError:
            return  # the next evaluation stops on it, saying what to do
        if any(d.id == decided and d.version is None for d in ledger.decisions):
            self._promoted(decided, str(deployed[-1]["version"]))

    @staticmethod
    def _numbers(history: list[dict[str, Any]]) -> list[int]:
        """Every version number the history names (never given out again)."""
        named = (str(h.get("version")) for h in history if h.get("event") == "deployed")
        return [int(v) for v in named if VERSION_RE.match(v)]

    # ------------------------------------------------------------------ the ledger

    def ledger(self) -> ledger_mod.Ledger:
        """The ledger, checked (registry/ledger.py): RegistryError, one line, when it is
        damaged, belongs to another model, or is gone though the history used one."""
        return self._read_ledger(keys=True)

    def append_ledger(self, make: ledger_mod.Append) -> dict[str, Any]:
        """Append a record, or the record ``make(ledger)`` returns, under the registry lock:
        the ledger it sees cannot change before the record lands. Returns the record as
        stored."""
        with self._writing():
            return self._append_ledger(make)

    def _append_ledger(self, make: ledger_mod.Append) -> dict[str, Any]:
        """``append_ledger`` with the lock already held. The keys file goes first and the
        ledger is replaced whole (temp file + os.replace): a crash leaves the old ledger."""
        current = self._read_ledger(keys=callable(make))  # a plain record needs the count
        record, keys = make(current) if callable(make) else (make, None)
        record, data = ledger_mod.with_keys(record, keys)
        if data:
            path = self.keys_dir / f"{record['rows']['sha256']}.npy"
            if not path.is_file() or path.read_bytes() != data:
                make_shared_dirs(self.keys_dir)
                write_bytes(path, data, mode=SHARED_FILE_MODE, durable=True)
        stored = ledger_mod.stamped(record, self.model_name, current.records + 1)
        line = json.dumps(stored, sort_keys=True, allow_nan=False) + "\n"
        old = self.ledger_path.read_bytes() if self.ledger_path.is_file() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        write_bytes(self.ledger_path, old + line.encode(), mode=SHARED_FILE_MODE, durable=True)
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

    # ------------------------------------------------------------------ rollback

    def rollback(self, version: str | None = None, reason: str = "") -> Champion:
        """Make an earlier version the champion again: the pointer moves atomically and the
        history records who came before and why. Without ``version``, the champion before
        the current one (so a second rollback undoes the first). Only a version with its
        history record can be restored, and only one whose files pass ``verify_bundle``."""
        from components.core.bundle_format import missing_files
        from components.core.model.mlp_numpy import verify_bundle

        with self._writing():
            current = self.champion()
            if current is None:
                raise RegistryError(
                    f"registry '{self.model_dir}': there is no champion to roll back; "
                    "nothing has been deployed under this model name"
                )
            if version is None:
                version = (self._pointer() or {}).get("previous")
                if version is None:
                    known = ", ".join(str(v) for v in self.versions())
                    raise RegistryError(
                        f"registry '{self.model_dir}': version {current.version} has no "
                        f"predecessor; name the version to restore (versions: {known})"
                    )
            restored = self.version_bundle(str(version))
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
            try:
                verify_bundle(target)
            except RegistryError as exc:
                raise RegistryError(
                    f"{exc}; it cannot serve, so the champion stays version {current.version}"
                ) from exc
            self._promote(
                _normal(
                    {
                        "time": time.time(),
                        "event": "rolled_back",
                        "version": version,
                        "previous": current.version,
                        "reason": reason,
                    }
                )
            )
        log.info(
            "%s: champion rolled back from %s to %s", self.model_name, current.version, version
        )
        return restored


def _parse(line: bytes) -> dict[str, Any] | None:
    """One history line's record, or None when it is not one."""
    try:
        entry = json.loads(line)
    except ValueError:  # not JSON, or not UTF-8
        return None
    return entry if isinstance(entry, dict) else None


def _salvage(line: bytes) -> dict[str, Any] | None:
    """The whole record at the end of a line that starts with a torn fragment (what an
    older sigdeploy's append after a crash made), or None."""
    at = line.find(b'{"', 1)
    while at > 0:
        if (entry := _parse(line[at:])) is not None:
            return entry
        at = line.find(b'{"', at + 1)
    return None


def _key(entry: dict[str, Any]) -> tuple[Any, ...]:
    """What tells one promotion record from another."""
    return entry.get("event"), str(entry.get("version")), entry.get("time")


def _normal(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` as the history line will hold it, so that the pointer's copy is the same."""
    parsed: dict[str, Any] = json.loads(json.dumps(entry, sort_keys=True, default=str))
    return parsed


def _remove(path: Path) -> None:
    """Remove a leftover file or folder; a folder is renamed to a temporary first, so that a
    crash halfway through leaves a temporary, never a half-removed version."""
    if path.is_dir() and not path.is_symlink():
        hidden = path.with_name(path.name if is_temp(path.name) else temp_name(path.name))
        os.rename(path, hidden)
        shutil.rmtree(hidden, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def model_names(root: str | Path) -> list[str]:
    """The model names a local registry directory holds, sorted; [] when it holds none or
    does not exist. For error messages that list what is there."""
    root = Path(root).expanduser()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and NAME_RE.match(p.name))
