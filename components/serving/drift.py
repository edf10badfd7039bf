"""Training/serving skew: compare recent served rows with the bundle's training statistics.

The bundle keeps, per numeric feature, the training mean, std, missing rate and the deciles
(``quantiles``: the unique values of the 0, 10, ..., 100 % quantiles); per categorical
feature, the training frequencies. Over a bounded window of the most recent rows this
reports per feature:

- ``psi``: population stability index between the serving and the training distribution
  over the decile bins (numeric; plus a "missing" bin) or the categories (categorical; plus
  "missing" and "unseen"). Decile bins hold 10 % of training each only when all 11 deciles
  are distinct; when ties merged some (a feature with a large point mass), the training
  share of each bin is unknown unless the bundle also stores it as ``fractions``, and
  ``psi`` is then null with a note. A feature constant in training is compared as
  "equal to that constant" versus "not".
- ``mean_shift_std``: (serving mean - training mean) / training std. It counts as drift
  only when it is also beyond chance for the window (``|mean_shift_z| > 4``, the difference
  over its standard error): with sparse features one rare large value would otherwise move
  the mean by many of the tiny training standard deviations.

A feature drifts when ``psi`` or ``|mean_shift_std|`` passes its threshold; the first time
it does (with at least ``min_rows`` in the window) a warning is logged.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.serving.instances import MISSING, UNSEEN, Rows

log = logging.getLogger(__name__)

EPS = 1e-4  # floor for bin shares in PSI, so that an empty bin does not give infinity
DECILE_EDGES = 11
MIN_SHIFT_Z = 4.0  # a mean shift must also be this many standard errors from training


@dataclass(frozen=True)
class _NumericRef:
    edges: np.ndarray  # unique training deciles
    reference: np.ndarray | None  # training share per bin, then the missing share
    mean: float
    std: float
    missing_rate: float
    note: str | None


@dataclass(frozen=True)
class _CategoricalRef:
    reference: np.ndarray  # training share per category, then missing, then unseen
    missing_rate: float


def _numeric_ref(stats: dict[str, Any]) -> _NumericRef:
    edges = np.unique(np.asarray(stats.get("quantiles") or [], dtype=np.float64))
    missing = float(stats.get("missing_rate", 0.0))
    fractions = stats.get("fractions")
    note = None
    shares: np.ndarray | None
    if fractions is not None and len(fractions) == max(len(edges) - 1, 0) and len(edges) > 1:
        shares = np.asarray(fractions, dtype=np.float64)
    elif len(edges) == DECILE_EDGES:
        shares = np.full(DECILE_EDGES - 1, 1.0 / (DECILE_EDGES - 1))
    elif len(edges) == 1:
        shares = np.array([0.0, 1.0, 0.0])  # below, equal to, above the training constant
    else:
        shares = None
        note = (
            "training deciles are tied, so their bin shares are unknown; PSI needs per-bin "
            "training fractions in the bundle"
            if len(edges)
            else "no training quantiles in the bundle"
        )
    reference = None if shares is None else np.append(shares * (1.0 - missing), missing)
    return _NumericRef(
        edges=edges,
        reference=reference,
        mean=float(stats.get("mean", 0.0)),
        std=float(stats.get("std", 0.0)),
        missing_rate=missing,
        note=note,
    )


def _bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    if len(edges) == 1:
        return (values >= edges[0]).astype(np.intp) + (values > edges[0])
    # bin i is (edge[i], edge[i+1]]; everything below the first / above the last edge
    # falls into the first / last bin.
    return np.searchsorted(edges[1:-1], values, side="left")


def psi(actual: np.ndarray, expected: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    a = np.maximum(actual, EPS)
    e = np.maximum(expected, EPS)
    return float(np.sum((a - e) * np.log(a / e)))


class DriftMonitor:
    """A ring buffer of the last ``window`` served rows and their skew against training."""

    def __init__(
        self,
        statistics: dict[str, Any] | None,
        numeric: Sequence[str],
        categorical: Sequence[str],
        categories: Sequence[Sequence[str]],
        *,
        window: int = 5_000,
        min_rows: int = 200,
        psi_threshold: float = 0.2,
        shift_threshold: float = 0.5,
        model: str = "model",
    ) -> None:
        self.numeric = tuple(numeric)
        self.categorical = tuple(categorical)
        self.window = int(window)
        self.min_rows = int(min_rows)
        self.psi_threshold = float(psi_threshold)
        self.shift_threshold = float(shift_threshold)
        self.model = model
        stats = statistics or {}
        self.has_statistics = bool(stats)
        num_stats = stats.get("numeric", {})
        cat_stats = stats.get("categorical", {})
        self._num_refs = [_numeric_ref(num_stats.get(f, {})) for f in self.numeric]
        self._cat_refs = []
        for name, cats in zip(self.categorical, categories, strict=True):
            freq = cat_stats.get(name, {})
            # feature_statistics keys missing values as "nan" (str of NaN)
            ref = [float(freq.get(c, 0.0)) for c in cats] + [float(freq.get("nan", 0.0)), 0.0]
            self._cat_refs.append(_CategoricalRef(np.asarray(ref), float(freq.get("nan", 0.0))))
        self._n_cats = [len(c) for c in categories]
        self._lock = threading.Lock()
        self._num = np.empty((self.window, len(self.numeric)), np.float64)
        self._codes = np.empty((self.window, len(self.categorical)), np.int32)
        self._pos = 0
        self._count = 0
        self._seen = 0
        self._checked_at = 0
        self._warned: set[str] = set()
        self._check_lock = threading.Lock()  # check() runs from requests and the poller

    def observe(self, rows: Rows) -> None:
        n = len(rows)
        pairs: list[tuple[np.ndarray, np.ndarray]] = [(self._num, rows.numeric)]
        if self.categorical:  # all-numeric models (the usual case) skip the second copy
            pairs.append((self._codes, rows.codes))
        with self._lock:
            self._seen += n
            if n >= self.window:
                for buffer, values in pairs:
                    buffer[:] = values[-self.window :]
                self._pos, self._count = 0, self.window
                return
            end = self._pos + n
            for buffer, values in pairs:
                if end <= self.window:
                    buffer[self._pos : end] = values
                else:
                    k = self.window - self._pos
                    buffer[self._pos :] = values[:k]
                    buffer[: n - k] = values[k:]
            self._pos = end % self.window
            self._count = min(self.window, self._count + n)

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray, int]:
        with self._lock:
            return (self._num[: self._count].copy(), self._codes[: self._count].copy(), self._seen)

    def report(self) -> dict[str, Any]:
        num, codes, seen = self._snapshot()
        rows = num.shape[0]
        features: dict[str, Any] = {}
        for j, (name, ref) in enumerate(zip(self.numeric, self._num_refs, strict=True)):
            features[name] = self._numeric_feature(num[:, j], ref)
        for j, (name, cref, k) in enumerate(
            zip(self.categorical, self._cat_refs, self._n_cats, strict=True)
        ):
            features[name] = self._categorical_feature(codes[:, j], cref, k)
        enough = rows >= self.min_rows and rows > 0 and self.has_statistics
        for entry in features.values():
            entry["drifting"] = bool(enough and self._drifting(entry))
        return {
            "rows": rows,
            "rows_seen": seen,
            "window": self.window,
            "min_rows": self.min_rows,
            "statistics": self.has_statistics,
            "thresholds": {"psi": self.psi_threshold, "mean_shift_std": self.shift_threshold},
            "drifting": [name for name, e in features.items() if e["drifting"]],
            "features": features,
        }

    def check(self) -> dict[str, Any]:
        """The report, logging a warning for features that newly drift (once each)."""
        with self._check_lock:
            return self._check()

    def _check(self) -> dict[str, Any]:
        report = self.report()
        if report["rows"] < self.min_rows:
            return report
        drifting = set(report["drifting"])
        new = [f for f in report["drifting"] if f not in self._warned]
        recovered = sorted(self._warned - drifting)
        if new:
            shown = ", ".join(_describe(f, report["features"][f]) for f in new[:10])
            more = f" and {len(new) - 10} more" if len(new) > 10 else ""
            log.warning(
                "training/serving skew in %s over the last %d rows: %s%s (thresholds: psi > %g, "
                "|mean shift| > %g std); see /stats",
                self.model,
                report["rows"],
                shown,
                more,
                self.psi_threshold,
                self.shift_threshold,
            )
        if recovered:
            log.info("skew in %s back under threshold: %s", self.model, ", ".join(recovered))
        self._warned = drifting
        return report

    def check_if_new_rows(self) -> None:
        """check() when rows arrived since the last call; for the background thread."""
        with self._lock:
            seen = self._seen
        with self._check_lock:
            if seen != self._checked_at:
                self._checked_at = seen
                self._check()

    def _drifting(self, entry: dict[str, Any]) -> bool:
        score = entry.get("psi")
        shift = entry.get("mean_shift_std")
        z = entry.get("mean_shift_z")
        return (score is not None and score > self.psi_threshold) or (
            shift is not None
            and z is not None
            and abs(shift) > self.shift_threshold
            and abs(z) > MIN_SHIFT_Z
        )

    def _numeric_feature(self, column: np.ndarray, ref: _NumericRef) -> dict[str, Any]:
        n = column.shape[0]
        missing = np.isnan(column)
        values = column[~missing]
        entry: dict[str, Any] = {
            "kind": "numeric",
            "psi": None,
            "mean_shift_std": None,
            "mean_shift_z": None,
            "serving_mean": _num(values.mean()) if values.size else None,
            "training_mean": _num(ref.mean),
            "missing_rate": _num(missing.mean()) if n else None,
            "training_missing_rate": _num(ref.missing_rate),
            "out_of_range_rate": None,
        }
        if ref.note:
            entry["psi_note"] = ref.note
        if not n:
            return entry
        if ref.reference is not None:
            k = len(ref.reference) - 1
            counts = np.bincount(_bins(values, ref.edges), minlength=k).astype(np.float64)
            shares = np.append(counts, missing.sum()) / n
            entry["psi"] = _num(psi(shares, ref.reference))
        if values.size and ref.std > 0:
            diff = values.mean() - ref.mean
            error = max(ref.std, float(values.std())) / np.sqrt(values.size)
            entry["mean_shift_std"] = _num(diff / ref.std)
            entry["mean_shift_z"] = _num(diff / error)
        if values.size and len(ref.edges):
            outside = (values < ref.edges[0]) | (values > ref.edges[-1])
            entry["out_of_range_rate"] = _num(outside.mean())
        return entry

    def _categorical_feature(
        self, codes: np.ndarray, ref: _CategoricalRef, k: int
    ) -> dict[str, Any]:
        n = codes.shape[0]
        entry: dict[str, Any] = {
            "kind": "categorical",
            "psi": None,
            "missing_rate": None,
            "training_missing_rate": _num(ref.missing_rate),
            "unseen_rate": None,
        }
        if not n:
            return entry
        index = np.where(codes == MISSING, k, np.where(codes == UNSEEN, k + 1, codes))
        shares = np.bincount(index, minlength=k + 2).astype(np.float64) / n
        entry["psi"] = _num(psi(shares, ref.reference))
        entry["missing_rate"] = _num(shares[k])
        entry["unseen_rate"] = _num(shares[k + 1])
        return entry


def _num(value: Any) -> float:
    return round(float(value), 6)


def _describe(name: str, entry: dict[str, Any]) -> str:
    parts = []
    if entry.get("psi") is not None:
        parts.append(f"psi {entry['psi']:.3f}")
    if entry.get("mean_shift_std") is not None:
        parts.append(f"shift {entry['mean_shift_std']:+.2f} std")
    return f"{name} ({', '.join(parts)})"
