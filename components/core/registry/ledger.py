"""The ledger: the registry's record of every gate decision, kept for error control across runs.

The gate's promise over many runs (``evaluation/alpha.py``) depends on what earlier decisions
did: how many attempts were made against the champion, at which levels, which deployed, and on
which test rows. The ledger keeps exactly that, one record per event; records are only ever
added:

- ``decision``: reserved before a comparison is decided, under the registry's lock, so two
  concurrent evaluations cannot take the same attempt's level: its id, the champion it is
  against (a version, or ``baseline`` on a first run), the accounting, the nominal alpha, the
  level and the attempt number, and the keys of the test rows it decides on;
- ``outcome``: the decision's p-value and whether the gate said deploy;
- ``promoted``: the version a deployed challenger became (written by ``register``), so that
  the rows that promoted a champion count as used against it.

A record is one JSON object carrying the ledger format, the model name and its number in the
ledger (1, 2, ... with no gap, so a lost record is noticed). A decision's row keys go to a
numpy file (``allow_pickle=False``) named after its sha256, which the record repeats: files
are content-addressed, so decisions on the same rows share one. Locally the records are the
lines of ``<model>/ledger.jsonl`` and the keys ``<model>/ledger/<sha256>.npy``; on Vertex AI
they are objects ``<artifacts>/<model>/ledger/<n>.json`` and ``ledger/keys/<sha256>.npy``.

What this module knows is the format; the registries store it, and the evaluation layer reads
the accounting out of the :class:`Ledger` it returns.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.core.errors import RegistryError

FORMAT = "sigdeploy-ledger/1"
BASELINE = "baseline"  # the champion of a first run's decision: no version yet
KINDS = ("decision", "outcome", "promoted")
_U64 = np.dtype("<u8")
_SHA256 = re.compile(r"\A[0-9a-f]{64}\Z")  # \Z: "$" would let a trailing newline through


@dataclass(frozen=True, eq=False)
class LedgerDecision:
    """One decision as the ledger holds it, its records folded together."""

    id: str
    seq: int  # the number of its decision record in the ledger
    time: float
    champion: str  # the version it was against, or BASELINE
    accounting: str
    alpha: float  # the nominal alpha
    level: float  # the level its test ran at
    attempt: int
    keys: np.ndarray  # uint64 keys of the test rows it was decided on
    rows: dict[str, Any] = field(default_factory=dict)  # what the record says of them
    p_value: float | None = None  # None until its outcome is recorded
    deployed: bool | None = None  # None: reserved, never decided (counted as not deployed)
    version: str | None = None  # the version it became, once promoted


@dataclass(frozen=True)
class Ledger:
    """A registry's ledger as read: its decisions in order and how many records it holds."""

    decisions: tuple[LedgerDecision, ...] = ()
    records: int = 0  # the next record gets number records + 1
    where: str = ""  # the file or prefix it lives in
    note: str = ""  # why it starts empty, when it does (an older registry)
    kept: bool = True  # False: this registry has nowhere to keep one (Vertex without artifacts=)


# What a registry's ``append_ledger`` takes: a record to append as it is (an outcome, a
# promotion: without format, model, seq and time), or a function it calls under its lock
# with the ledger as it is then, which returns the record and, for a decision, the keys of
# its test rows. On Vertex AI the function may be called again after a conflict.
Make = Callable[[Ledger], tuple[dict[str, Any], np.ndarray | None]]
Append = Make | dict[str, Any]


def new_id() -> str:
    """A decision id: when, and a random tail (never a bare number, as versions are)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


def decision_record(
    *,
    id: str,
    champion: str,
    accounting: str,
    alpha: float,
    level: float,
    attempt: int,
    rows: dict[str, Any],
) -> dict[str, Any]:
    """A ``decision`` record; ``rows`` says which rows (fresh or all, and the row key), the
    registry adds the keys file's sha256 and count."""
    return {
        "kind": "decision",
        "id": id,
        "champion": champion,
        "accounting": accounting,
        "alpha": float(alpha),
        "level": float(level),
        "attempt": int(attempt),
        "rows": dict(rows),
    }


def outcome_record(id: str, p_value: float, deployed: bool) -> dict[str, Any]:
    p = float(p_value)
    return {
        "kind": "outcome",
        "id": id,
        "p_value": p if math.isfinite(p) else None,
        "deployed": bool(deployed),
    }


def promotion_record(id: str, version: str) -> dict[str, Any]:
    return {"kind": "promoted", "id": id, "version": str(version)}


def promoted_id(decision: dict[str, Any]) -> str | None:
    """The ledger id of a deploy decision (None for a decision made without a ledger)."""
    entry = decision.get("ledger")
    found = entry.get("id") if isinstance(entry, dict) else None
    return found if isinstance(found, str) and found else None


def stamped(record: dict[str, Any], model: str, seq: int) -> dict[str, Any]:
    """``record`` as stored: with the format, the model, its number and the time."""
    return {"format": FORMAT, "model": model, "seq": seq, "time": time.time()} | record


def key_bytes(keys: np.ndarray) -> tuple[bytes, str]:
    """A decision's row keys as a .npy file (no pickle) and its sha256."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(keys, dtype=_U64), allow_pickle=False)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def with_keys(record: dict[str, Any], keys: np.ndarray | None) -> tuple[dict[str, Any], bytes]:
    """A decision record with its keys file's sha256 and count; the file's bytes."""
    if keys is None:
        return record, b""
    data, digest = key_bytes(keys)
    rows = dict(record.get("rows") or {}) | {"sha256": digest, "count": int(len(keys))}
    return record | {"rows": rows}, data


# ------------------------------------------------------------------------------ reading


class Damaged(ValueError):
    """What is wrong with a ledger, in words; the registry turns it into its one line."""


def parse_line(text: str, number: int) -> Any:
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise Damaged(f"record {number} is not JSON") from None


def fold(
    records: Iterable[Any], model: str, read_keys: Callable[[str], bytes | None] | None
) -> tuple[list[LedgerDecision], int]:
    """The decisions of ``records`` (in their order) and how many records there are.

    ``read_keys(sha256)`` returns a keys file's bytes (None when it is missing); without it
    the keys are not read (an append that needs only the count). Raises
    :class:`Damaged` for a record of another format or model, a gap in the numbering, a
    record that lacks a field or names an unknown decision, and a keys file that is missing
    or does not match its sha256.
    """
    decisions: dict[str, dict[str, Any]] = {}
    count = 0
    for number, record in enumerate(records, 1):
        count = number
        _check(record, model, number)
        kind, rid = record["kind"], record["id"]
        if kind == "decision":
            if rid in decisions:
                raise Damaged(f"record {number} repeats decision {rid}")
            decisions[rid] = {"record": record, "seq": number}
        elif rid not in decisions:
            raise Damaged(f"record {number} ({kind}) names decision {rid}, which it does not hold")
        elif kind == "outcome":
            decisions[rid]["outcome"] = record
        else:
            decisions[rid]["promoted"] = record
    cache: dict[str, np.ndarray] = {}
    return [_decision(d, read_keys, cache) for d in decisions.values()], count


def _check(record: Any, model: str, number: int) -> None:
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise Damaged(f"record {number} is not a sigdeploy ledger record ({FORMAT})")
    if record.get("model") != model:
        raise Damaged(f"record {number} belongs to model {record.get('model')!r}, not {model!r}")
    if record.get("seq") != number:
        raise Damaged(
            f"record {number} is numbered {record.get('seq')!r}: a record is missing or out "
            "of order"
        )
    if record.get("kind") not in KINDS or not isinstance(record.get("id"), str):
        raise Damaged(f"record {number} has no kind among {', '.join(KINDS)} or no id")
    needs: dict[str, tuple[type, ...]] = {
        "decision": (str, str, float, float, int, dict),
        "outcome": (bool,),
        "promoted": (str,),
    }
    names = {
        "decision": ("champion", "accounting", "alpha", "level", "attempt", "rows"),
        "outcome": ("deployed",),
        "promoted": ("version",),
    }[record["kind"]]
    for name, kind in zip(names, needs[record["kind"]], strict=True):
        value = record.get(name)
        ok = isinstance(value, kind) or (kind is float and isinstance(value, int))
        if not ok or (kind in (float, int) and isinstance(value, bool)):
            raise Damaged(f"record {number} has no valid {name}")


def _decision(
    found: dict[str, Any],
    read_keys: Callable[[str], bytes | None] | None,
    cache: dict[str, np.ndarray],
) -> LedgerDecision:
    record, seq = found["record"], found["seq"]
    rows = record["rows"]
    outcome = found.get("outcome") or {}
    promoted = found.get("promoted") or {}
    p = outcome.get("p_value")
    return LedgerDecision(
        id=record["id"],
        seq=seq,
        time=float(record.get("time") or 0.0),
        champion=record["champion"],
        accounting=record["accounting"],
        alpha=float(record["alpha"]),
        level=float(record["level"]),
        attempt=int(record["attempt"]),
        keys=_keys(rows, seq, read_keys, cache) if read_keys else np.zeros(0, _U64),
        rows=dict(rows),
        p_value=float(p) if isinstance(p, int | float) else None,
        deployed=outcome.get("deployed") if outcome else None,
        version=promoted.get("version") if promoted else None,
    )


def _keys(
    rows: dict[str, Any],
    seq: int,
    read_keys: Callable[[str], bytes | None],
    cache: dict[str, np.ndarray],
) -> np.ndarray:
    digest, count = rows.get("sha256"), rows.get("count")
    if not isinstance(digest, str) or not _SHA256.match(digest) or not isinstance(count, int):
        raise Damaged(f"record {seq} does not name its row keys (sha256 and count)")
    if digest in cache:
        return cache[digest]
    data = read_keys(digest)
    if data is None:
        raise Damaged(f"the row keys of record {seq} ({digest[:12]}...) are missing")
    if hashlib.sha256(data).hexdigest() != digest:
        raise Damaged(f"the row keys of record {seq} do not match their sha256 {digest[:12]}...")
    try:
        keys = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError):
        raise Damaged(f"the row keys of record {seq} are not a numpy array file") from None
    if keys.dtype != _U64 or keys.ndim != 1 or len(keys) != count:
        raise Damaged(f"the row keys of record {seq} are not the {count} uint64 keys it names")
    cache[digest] = keys
    return keys


def damaged(where: str, problem: str, *, restore: str, restart: str) -> RegistryError:
    """The one line for a ledger that cannot be used, and what to do about it."""
    return RegistryError(
        f"{where}: {problem}; nothing was decided and the champion is untouched: restore the "
        f"ledger from a backup ({restore}), or start a new account ({restart}), which forgets "
        "the attempts it recorded: the current champion's promise then covers its reign only "
        "from there (over the whole reign up to twice alpha)"
    )


def lost(where: str, count: int, *, restore: str, restart: str) -> RegistryError:
    """The one line for a ledger that is gone though the history's decisions used one."""
    return damaged(
        where,
        f"the ledger is missing, yet {count} decision(s) in the history were recorded in it",
        restore=restore,
        restart=restart,
    )


def history_check(history: list[dict[str, Any]]) -> tuple[int, int]:
    """(decisions in a registry's history, how many of them were recorded in a ledger)."""
    decisions = [h.get("decision") for h in history if isinstance(h.get("decision"), dict)]
    return len(decisions), sum(promoted_id(d) is not None for d in decisions)  # type: ignore[arg-type]


def older_note(where: str, count: int) -> str:
    """Said when a registry with decisions but no ledger (made before sigdeploy kept one)
    starts its ledger empty."""
    return (
        f"{where}: no ledger yet, and the {count} earlier decision(s) in the history predate "
        "it, so the account starts empty: attempts made before now do not lower this level"
    )


__all__ = [
    "BASELINE",
    "FORMAT",
    "Append",
    "Damaged",
    "Ledger",
    "LedgerDecision",
    "Make",
    "damaged",
    "decision_record",
    "fold",
    "history_check",
    "key_bytes",
    "lost",
    "new_id",
    "older_note",
    "outcome_record",
    "parse_line",
    "promoted_id",
    "promotion_record",
    "stamped",
    "with_keys",
]
