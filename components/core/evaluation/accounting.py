"""The account of alpha across runs, kept in the registry's ledger.

Between the registry's ledger (registry/ledger.py: what is stored) and the accounting
(alpha.py: what the stored decisions mean for the next one). Evaluate reads the ledger, then
reserves its comparison with :class:`Reservation`: under the registry's lock it takes the
next attempt's level and the rows to decide on, and appends the decision record that spends
them, so two concurrent evaluations never share an attempt. The gate then decides at that
level on those rows (compare.judge), and evaluate appends the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components.core.errors import ConfigError
from components.core.evaluation.alpha import (
    Account,
    Accounting,
    AlphaPolicy,
    LedgerEntry,
    RowChoice,
    account,
    level_text,
    rows_for,
)
from components.core.registry.ledger import (
    BASELINE,
    Ledger,
    decision_record,
    new_id,
)


def entries(ledger: Ledger) -> list[LedgerEntry]:
    """The ledger's decisions as the accounting reads them, oldest first. A challenger that
    was promoted is named by its version (so the rows that promoted a champion count as used
    against it); one that was not, by its decision id. A decision reserved but never decided
    counts as not deployed, its level spent."""
    return [
        LedgerEntry(
            champion=d.champion,
            challenger=d.version or d.id,
            accounting=d.accounting,
            level=d.level,
            deployed=bool(d.deployed),
            p_value=float("nan") if d.p_value is None else d.p_value,
            rows=d.keys,
        )
        for d in ledger.decisions
    ]


def against_words(champion: str) -> str:
    """The champion of a ledger decision in words."""
    return "the baseline" if champion == BASELINE else f"version {champion}"


@dataclass
class Reservation:
    """What ``Registry.append_ledger`` calls under the registry's lock: this comparison's
    account and rows, from the ledger as it is then, and the decision record spending them.

    ``champion``: the version compared against, or BASELINE on a first run; ``keys``: the
    keys of the test rows left after the champion's own rows were excluded; ``key``: how
    those keys were computed, in words. After the append, ``account`` and ``rows`` hold what
    the record says (on Vertex AI the call may repeat after a conflict: the last one wins).
    """

    policy: AlphaPolicy
    champion: str
    keys: np.ndarray
    key: str
    id: str = field(default_factory=new_id)
    account: Account | None = None
    rows: RowChoice | None = None
    notes: list[str] = field(default_factory=list)

    def __call__(self, ledger: Ledger) -> tuple[dict[str, Any], np.ndarray]:
        history = entries(ledger)
        acct = account(self.policy, history, self.champion)
        if acct.level <= 0:
            spent = level_text(acct.spent_before)
            raise ConfigError(
                f"gate policy: alpha {self.policy.alpha} is already spent against "
                f"{against_words(self.champion)} ({spent} by {acct.attempt - 1} earlier "
                f"attempts under {self.policy.accounting}), so nothing may deploy against it; "
                "set alpha back to the value it had, or keep the champion"
            )
        rows = rows_for(self.policy, history, self.champion, self.keys)
        self.account, self.rows = acct, rows
        self.notes = [n for n in (ledger.note, _switch_note(history, acct)) if n]
        record = decision_record(
            id=self.id,
            champion=self.champion,
            accounting=acct.accounting,
            alpha=acct.alpha,
            level=acct.level,
            attempt=acct.attempt,
            rows={"which": rows.which, "fresh": rows.fresh, "reused": rows.reused, "key": self.key},
        )
        return record, np.asarray(self.keys)[rows.use]

    def accounting(self, stored: dict[str, Any], ledger_where: str) -> Accounting:
        """The decision's accounting once its record is stored (``stored``)."""
        if self.account is None or self.rows is None:
            raise RuntimeError("the reservation was never made")
        return Accounting(
            account=self.account,
            rows=self.rows,
            against=against_words(self.champion),
            ledger={
                "id": self.id,
                "record": stored.get("seq"),
                "where": ledger_where,
                "rows_sha256": (stored.get("rows") or {}).get("sha256"),
                "key": self.key,
                "notes": list(self.notes),
            },
        )


def unrecorded(policy: AlphaPolicy, champion: str, keys: np.ndarray, note: str) -> Accounting:
    """The accounting of a comparison on a registry that keeps no ledger (Vertex AI without
    an artifacts= location), which only per_comparison may make: its level is alpha."""
    acct = account(policy, [], champion)
    return Accounting(
        account=acct,
        rows=rows_for(policy, [], champion, keys),
        against=against_words(champion),
        ledger={"id": None, "record": None, "where": None, "notes": [note]},
    )


def _switch_note(history: list[LedgerEntry], acct: Account) -> str:
    """Said when earlier attempts against this champion were accounted another way: they
    do not count in this account (a switch starts a new one)."""
    other = [e for e in history if e.champion == acct.champion and e.accounting != acct.accounting]
    if not other:
        return ""
    ways = ", ".join(sorted({e.accounting for e in other}))
    return (
        f"{len(other)} earlier attempt(s) against {against_words(acct.champion)} were "
        f"accounted {ways}; {acct.accounting} does not count them (its promise holds from the "
        "switch on): keep alpha_accounting fixed for a registry"
    )


__all__ = ["Reservation", "against_words", "entries", "unrecorded"]
