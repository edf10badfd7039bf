"""Significance tests that decide whether a challenger model beats the champion.

The deployment gate compares two models' predictions on the same test rows, so every test
here is *paired*:

- :func:`mcnemar` tests accuracy from the discordant pairs (exact, mid-p or chi-square).
- :func:`delong` tests ROC AUC for a binary label (DeLong's test, Sun & Xu's O(n log n)
  algorithm; agrees with R pROC's ``roc.test(method="delong", paired=TRUE)``).
- :func:`bootstrap_difference` gives a paired percentile bootstrap interval of the
  improvement in accuracy, macro F1, log loss or AUC (two-sided or a one-sided bound).
- :func:`corrected_resampled_ttest` is Nadeau & Bengio's test for differences measured over
  repeated train/test splits.
- :func:`binomial_test_greater` supports the gate's first-run floor check;
  :func:`mcnemar_power` and :func:`mcnemar_minimum_detectable_effect` are the plain exact
  McNemar test's power (the gate's power report, for the rule that decides, is power.py;
  these stay as an independent reference and for the benchmarks).

Conventions: ``alternative="greater"`` always means "the challenger is better", and every
reported difference is signed so that a positive value favours the challenger. Degenerate
inputs (no discordant pairs, zero variance) give a p-value of 1, never NaN or inf, so
identical models can never pass the gate. Bad input raises :class:`ValueError` with a one-line
message naming the argument. Everything is vectorized numpy/scipy; nothing here imports kfp.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

ALTERNATIVES = ("greater", "two-sided")
MCNEMAR_METHODS = ("exact", "midp", "chi2", "chi2-corrected")
BOOTSTRAP_METRICS = ("accuracy", "macro_f1", "log_loss", "auc")
BOOTSTRAP_SIDES = ("two-sided", "lower", "upper")
BOOTSTRAP_INTERVALS = ("percentile", "bca")

# Largest |t| the corrected t-test reports. A constant non-zero difference over all splits
# has zero variance and an infinite t in theory; a finite cap keeps reports and JSON valid
# while still giving a p-value that is 0 (or 1) to many digits.
T_STATISTIC_CAP = 1e6

# Elements (resamples x rows or resamples x cells) per bootstrap chunk: enough to amortise
# the per-call overhead, small enough that temporaries stay in cache and are recycled.
_BOOTSTRAP_CHUNK_ELEMENTS = 1 << 17
# Rows x resamples up to which log loss and AUC resample row by row (a few seconds); above
# it they use the large-sample forms in _bootstrap_mean and _bootstrap_auc, whose cost does
# not grow with the rows x resamples product (row-by-row took 133 s at 10^6 rows).
_ROWWISE_BOOTSTRAP_BUDGET = 250_000_000
_MEAN_BINS = 1024  # groups of the large-sample mean bootstrap
_MEAN_TAIL = 64  # rows at each end that form groups of their own there
# BootstrapResult.method, in words for reports
RESAMPLING_METHODS = {
    "rows": "rows resampled with replacement",
    "agreement cells": "multinomial draws of the four agreement cells (exact, any size)",
    "label cells": "multinomial draws of the (true, challenger, champion) label cells",
    "quantile groups": "Poisson bootstrap over 1,024 quantile groups of the per-row "
    "differences (many rows)",
    "delong normal": "DeLong's normal law of the AUC difference (many rows)",
    "rows bca": "rows resampled with replacement, BCa (bias-corrected and accelerated)",
    "label cells bca": "multinomial draws of the (true, challenger, champion) label cells, "
    "BCa (bias-corrected and accelerated)",
    "quantile groups bca": "Poisson bootstrap over 1,024 quantile groups of the per-row "
    "differences (many rows), BCa (bias-corrected and accelerated)",
    # not resampled: the bounds of the test that decides, inverted
    "mcnemar inversion": "McNemar's test inverted at the observed discordance "
    "(Clopper-Pearson for the exact test)",
    "score inversion": "Tango's score test with Berger-Boos's exact p-value, inverted",
    "delong t": "DeLong's variance with Student t (min(positives, negatives) - 1 df)",
}


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class McNemarResult:
    statistic: float  # exact/midp: c, the challenger's wins; chi2 methods: chi-square value
    pvalue: float
    method: str  # one of MCNEMAR_METHODS
    alternative: str  # "greater" (challenger better) or "two-sided"
    b: int  # rows only the champion got right
    c: int  # rows only the challenger got right


@dataclass(frozen=True)
class DeLongResult:
    auc_challenger: float
    auc_champion: float
    statistic: float  # z of (challenger AUC - champion AUC); 0 when the variance is 0
    pvalue: float
    variance: float  # estimated variance of the AUC difference
    alternative: str


@dataclass(frozen=True)
class BootstrapResult:
    metric: str
    estimate: float  # challenger minus champion on the full data (positive = challenger better)
    low: float  # lower end of the interval; -inf when sided="upper"
    high: float  # upper end of the interval; +inf when sided="lower"
    confidence: float
    n_resamples: int  # resamples used (AUC drops resamples that miss a class)
    sided: str  # "two-sided", "lower" or "upper"
    method: str = "rows"  # what was resampled: see RESAMPLING_METHODS


@dataclass(frozen=True)
class CorrectedTTestResult:
    statistic: float  # corrected t, capped at +-T_STATISTIC_CAP
    pvalue: float
    df: int  # J - 1
    mean: float  # mean difference over the J splits


# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}={value!r} is not recognised; use one of {options}")
    return value


def _check_count(name: str, value: Any) -> int:
    # bool is an int subclass, but True as a count is almost certainly a bug upstream.
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a non-negative integer count, got {value!r}")
    if isinstance(value, (int, np.integer)):
        count = int(value)
    elif isinstance(value, (float, np.floating)) and math.isfinite(value) and value.is_integer():
        count = int(value)
    else:
        raise ValueError(f"{name} must be a non-negative integer count, got {value!r}")
    if count < 0:
        raise ValueError(f"{name} must be a non-negative integer count, got {count}")
    return count


def _check_probability(name: str, value: Any, *, open_interval: bool = False) -> float:
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    if open_interval:
        if not (0.0 < p < 1.0):
            raise ValueError(f"{name} must be strictly between 0 and 1, got {value!r}")
    elif not (0.0 <= p <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return p


def _all_finite(arr: np.ndarray) -> bool:
    # A sum is finite only if every term is (NaN and inf propagate), and it needs no
    # row-sized mask; the elementwise check runs only when the sum is not finite, which
    # also covers a sum that merely overflowed.
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(arr)
    return bool(np.isfinite(total)) or bool(np.isfinite(arr).all())


def _as_array(name: str, values: Any, *, ndim: tuple[int, ...] = (1,)) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim not in ndim:
        shapes = " or ".join(f"{d}-D" for d in ndim)
        raise ValueError(f"{name} must be {shapes}, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty; pass at least one row")
    if arr.dtype.kind in "fc" and not _all_finite(arr):
        raise ValueError(f"{name} contains NaN or inf; drop or impute those rows first")
    if arr.dtype.kind == "O":
        raise ValueError(f"{name} has object dtype; pass a numeric, boolean or string array")
    return arr


def _check_same_rows(reference: str, n: int, **arrays: np.ndarray) -> None:
    for name, arr in arrays.items():
        if arr.shape[0] != n:
            raise ValueError(
                f"{name} has {arr.shape[0]} rows but {reference} has {n}; "
                "pass predictions for the same test rows"
            )


def _scores(name: str, values: Any) -> np.ndarray:
    arr = _as_array(name, values)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numeric scores, got dtype {arr.dtype}")
    return np.asarray(arr, dtype=np.float64)  # integers are always finite


def _binary_labels(name: str, values: Any) -> np.ndarray:
    arr = _as_array(name, values)
    if arr.dtype == np.bool_:
        return arr
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be 0/1 or boolean for a binary test, got dtype {arr.dtype}")
    message = f"{name} must contain only 0 and 1 (or booleans) for a binary test"
    if arr.dtype.kind in "iu":
        # min/max need no row-sized temporaries; one-byte 0/1 integers are already booleans
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(message)
        return arr.view(np.bool_) if arr.dtype.itemsize == 1 else arr.astype(np.bool_)
    positive = arr == 1
    if not (positive | (arr == 0)).all():
        raise ValueError(message)
    return positive


# --------------------------------------------------------------------------------------
# McNemar and binomial tests
# --------------------------------------------------------------------------------------


def mcnemar(
    b: int, c: int, *, alternative: str = "greater", method: str = "exact"
) -> McNemarResult:
    """McNemar's test of paired accuracy from the discordant counts.

    ``b`` counts rows only the champion got right and ``c`` rows only the challenger got
    right; rows both got right or both got wrong carry no information about the difference.

    Methods:

    - ``"exact"``: binomial test of ``c`` successes in ``b + c`` trials at p = 0.5.
    - ``"midp"``: the exact p-value minus half the probability of the observed count; less
      conservative than exact, close to nominal size in practice.
    - ``"chi2"``: (c - b)^2 / (b + c) on 1 degree of freedom, no continuity correction.
    - ``"chi2-corrected"``: Edwards' correction, max(|c - b| - 1, 0)^2 / (b + c). The
      ``max`` keeps |c - b| = 0 at statistic 0 (statsmodels gives 1 / (b + c) there).

    ``alternative="greater"`` tests "challenger better" (c > b); for the chi-square methods
    it uses the signed normal deviate sqrt(statistic) * sign(c - b), so a worse challenger
    gets p > 0.5. ``"two-sided"`` matches statsmodels' ``mcnemar``.

    The statistic is ``c`` for exact/midp and the chi-square value otherwise. With no
    discordant pairs (b + c = 0) every method returns statistic 0 and p-value 1: identical
    predictions are never evidence of improvement.
    """
    b = _check_count("b", b)
    c = _check_count("c", c)
    _check_choice("alternative", alternative, ALTERNATIVES)
    _check_choice("method", method, MCNEMAR_METHODS)
    n = b + c
    if n == 0:
        return McNemarResult(0.0, 1.0, method, alternative, b, c)

    if method in ("exact", "midp"):
        statistic = float(c)
        if alternative == "greater":
            p = sps.binom.sf(c - 1, n, 0.5)
            if method == "midp":
                p -= 0.5 * sps.binom.pmf(c, n, 0.5)
        else:
            k = min(b, c)
            p = 2.0 * sps.binom.cdf(k, n, 0.5)
            if method == "midp":
                p -= sps.binom.pmf(k, n, 0.5)
    else:
        excess = abs(c - b) - (1 if method == "chi2-corrected" else 0)
        excess = max(excess, 0)
        statistic = excess * excess / n
        if alternative == "greater":
            z = math.copysign(math.sqrt(statistic), c - b)
            p = sps.norm.sf(z)
        else:
            p = sps.chi2.sf(statistic, 1)
    return McNemarResult(statistic, float(np.clip(p, 0.0, 1.0)), method, alternative, b, c)


def binomial_test_greater(successes: int, n: int, p0: float) -> float:
    """One-sided exact binomial p-value P(X >= successes) for X ~ Binomial(n, p0).

    The gate uses it on a first run (no champion) to ask whether the challenger's accuracy
    is significantly above a floor ``p0``.
    """
    successes = _check_count("successes", successes)
    n = _check_count("n", n)
    if n == 0:
        raise ValueError("n must be at least 1 for a binomial test; evaluate on some rows")
    if successes > n:
        raise ValueError(f"successes={successes} cannot exceed n={n}")
    p0 = _check_probability("p0", p0)
    if successes == 0:
        return 1.0
    return float(np.clip(sps.binom.sf(successes - 1, n, p0), 0.0, 1.0))


def _exact_critical_counts(d: np.ndarray, alpha: float) -> np.ndarray:
    """Smallest c with P(Bin(d, 1/2) >= c) <= alpha, per discordant total d (d + 1 = never).

    ``isf`` gives it directly up to floating-point ties at the boundary, so we nudge each
    candidate one step either way against the definition the test itself uses.
    """
    d = np.asarray(d, dtype=np.int64)
    k = np.asarray(sps.binom.isf(alpha, d, 0.5), dtype=np.float64)
    k = np.where(np.isfinite(k), k + 1, d + 1).astype(np.int64)
    k = np.clip(k, 0, d + 1)
    for _ in range(3):
        lower_rejects = (k >= 1) & (sps.binom.sf(k - 2, d, 0.5) <= alpha)
        k = np.where(lower_rejects, k - 1, k)
        misses = (k <= d) & (sps.binom.sf(k - 1, d, 0.5) > alpha)
        k = np.where(misses, k + 1, k)
    return k


def mcnemar_power(p01: float, p10: float, n: int, alpha: float = 0.05) -> float:
    """Exact power of the one-sided exact McNemar test at ``n`` paired test rows.

    ``p01`` is the probability that a row is right only for the champion and ``p10`` that
    it is right only for the challenger, so the accuracy improvement is ``p10 - p01``.
    The number of discordant rows D is Binomial(n, p01 + p10); given D = d, the challenger's
    wins are Binomial(d, p10 / (p01 + p10)) and the test rejects when they reach the exact
    critical count. Power sums that conditional rejection probability over D (tails below
    1e-14 are dropped). Like every exact test the power is a slightly saw-toothed function
    of ``n``.
    """
    p01 = _check_probability("p01", p01)
    p10 = _check_probability("p10", p10)
    n = _check_count("n", n)
    alpha = _check_probability("alpha", alpha, open_interval=True)
    p_disc = p01 + p10
    if p_disc > 1.0 + 1e-12:
        raise ValueError(
            f"p01 + p10 = {p_disc} exceeds 1; they are probabilities of disjoint events"
        )
    if n == 0 or p_disc == 0.0:
        return 0.0
    p_disc = min(p_disc, 1.0)
    lo = int(sps.binom.ppf(1e-14, n, p_disc))
    hi = int(sps.binom.isf(1e-14, n, p_disc))
    d = np.arange(max(lo - 1, 0), min(hi + 1, n) + 1, dtype=np.int64)
    weight = sps.binom.pmf(d, n, p_disc)
    critical = _exact_critical_counts(d, alpha)
    reject = sps.binom.sf(critical - 1, d, p10 / p_disc)
    return float(np.clip(np.dot(weight, reject), 0.0, 1.0))


def mcnemar_minimum_detectable_effect(
    n: int, discordant_rate: float, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Smallest accuracy improvement the exact one-sided McNemar test detects with ``power``.

    For ``n`` test rows of which a fraction ``discordant_rate`` (= p01 + p10) is discordant,
    find the smallest ``p10 - p01`` whose :func:`mcnemar_power` reaches ``power``, by
    bisection (power rises with ``p10`` at a fixed discordant rate). Returns ``math.inf``
    when even "every discordant row favours the challenger" falls short of the power, i.e.
    the test set is too small or the models agree too often for any improvement to show.
    """
    n = _check_count("n", n)
    rate = _check_probability("discordant_rate", discordant_rate)
    alpha = _check_probability("alpha", alpha, open_interval=True)
    target = _check_probability("power", power, open_interval=True)
    if n == 0 or rate == 0.0:
        return math.inf

    def power_at(delta: float) -> float:
        return mcnemar_power((rate - delta) / 2.0, (rate + delta) / 2.0, n, alpha)

    if power_at(rate) < target:
        return math.inf
    lo, hi = 0.0, rate
    if power_at(lo) >= target:  # only when alpha >= power; kept for completeness
        return 0.0
    while hi - lo > 1e-9 * max(rate, 1e-12):
        mid = 0.5 * (lo + hi)
        if power_at(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi


# --------------------------------------------------------------------------------------
# DeLong
# --------------------------------------------------------------------------------------


# Rows per block when DeLong walks a sorted order. Block-sized temporaries stay in cache
# and are recycled by the allocator; row-sized ones would be fresh memory, and at 10^7
# rows first touching fresh memory costs about as much as the arithmetic itself.
_DELONG_BLOCK = 1 << 16


def _placement_blocks(
    scores: np.ndarray, packed: np.ndarray, order: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Yield (rows, twice, pos, packed[rows]) blocks of doubled placements in score order.

    ``packed`` holds each row's label in its lowest bit (the other bits are the caller's,
    see :func:`delong`). ``rows`` are row indices, consecutive in ``order``; ``pos`` their
    labels; ``twice`` the doubled DeLong placements: for a positive row,
    2 * (negatives scored below) + (negatives tied) = 2 * n_neg * V10; for a negative row,
    2 * (positives below) + (positives tied), so V01 = 1 - twice / (2 * n_pos). Doubling
    keeps them exact integers.

    This is Sun & Xu's midrank formulation (V10 = (overall midrank - midrank among
    positives) / n_neg) with the subtraction done on counts: one sort plus running class
    counts give all three midranks at once. A block's last tie group may continue in the
    next block, so its rows are held back and yielded with the next block; a block without
    ties takes a shortcut that needs no per-group arrays.
    """
    n = scores.size
    pending = order[:0]  # rows of a tie group that may continue into the next block
    pos_before = 0  # positives among the rows already yielded
    rows_before = 0  # rows already yielded
    for start in range(0, n, _DELONG_BLOCK):
        stop = min(start + _DELONG_BLOCK, n)
        rows = (
            order[start:stop] if not pending.size else np.concatenate((pending, order[start:stop]))
        )
        sorted_scores = scores[rows]
        k = rows.size
        new_group = np.empty(k, dtype=bool)
        new_group[0] = True  # every block starts a group: open groups were held back
        np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=new_group[1:])
        if stop < n:
            closed = k - 1 - int(np.argmax(new_group[::-1]))  # start of the last group
            if closed == 0:  # the whole block is one tie group, still open
                pending = rows
                continue
        else:
            closed = k
        pending = rows[closed:]
        rows = rows[:closed]
        packed_rows = packed[rows]
        pos = (packed_rows & 1).astype(bool)
        pos_through = np.cumsum(pos, dtype=np.int64)  # positives at or below each row
        pos_through += pos_before
        if new_group[:closed].all():
            # No ties: negatives at or below a row = its 1-based rank - positives.
            twice = np.arange(rows_before + 1, rows_before + closed + 1, dtype=np.int64)
            twice -= pos_through
            np.copyto(twice, pos_through, where=~pos)
            twice += twice
        else:
            starts = np.flatnonzero(new_group[:closed])
            ends = np.empty_like(starts)
            ends[:-1] = starts[1:]
            ends[-1] = closed
            pos_end = pos_through[ends - 1]
            pos_start = np.empty_like(pos_end)
            pos_start[0] = pos_before
            pos_start[1:] = pos_end[:-1]
            # Column 0: the value for a negative row of the group, column 1: a positive row.
            per_group = np.empty((starts.size, 2), dtype=np.int64)
            per_group[:, 0] = pos_start + pos_end
            per_group[:, 1] = (rows_before + starts - pos_start) + (rows_before + ends - pos_end)
            index = np.repeat(np.arange(0, 2 * starts.size, 2), ends - starts)
            index += pos
            twice = per_group.ravel()[index]
        pos_before = int(pos_through[-1])
        rows_before += closed
        yield rows, twice, pos, packed_rows


def _combined_m2(blocks: list[tuple[int, int, float]]) -> float:
    """Centred sum of squares of all values from per-block (count, integer sum, block M2).

    The overall mean is an exact integer sum over a count, so values that are all equal
    give exactly 0.
    """
    count = sum(k for k, _, _ in blocks)
    mean = sum(s for _, s, _ in blocks) / count
    return float(sum(m2 + k * (s / k - mean) ** 2 for k, s, m2 in blocks if k))


def _block_moments(values: np.ndarray) -> tuple[int, int, float]:
    k = values.size
    if k == 0:
        return 0, 0, 0.0
    total = int(values.sum())
    centred = values - total / k
    # Not np.dot: BLAS may start threads for a block this size, slower on a busy machine.
    return k, total, float(np.square(centred, out=centred).sum())


def delong(
    y_true: Any,
    scores_challenger: Any,
    scores_champion: Any,
    *,
    alternative: str = "greater",
) -> DeLongResult:
    """DeLong's paired test of two correlated ROC AUCs on the same rows (binary label).

    ``y_true`` is 0/1 or boolean; higher scores mean "more likely positive" (pROC's
    ``direction="<"``); ties count one half. ``statistic`` is
    z = (AUC_challenger - AUC_champion) / sqrt(Var), with the variance from the DeLong
    placement values (ddof = 1), as in pROC's ``roc.test(..., method="delong",
    paired=TRUE)``. ``alternative="greater"`` tests "challenger AUC higher".

    Runs in O(n log n): one argsort per score vector (Sun & Xu 2014), no n_pos x n_neg
    comparison matrix. When the variance of the difference is exactly 0 (identical score
    vectors, both classifiers perfect, ...) it returns statistic 0 and p-value 1, where
    pROC would give p = 0.5 or infinite z: no variance means no evidence either way.
    Needs at least two positives and two negatives (the variance uses ddof = 1).
    """
    _check_choice("alternative", alternative, ALTERNATIVES)
    positive = _binary_labels("y_true", y_true)
    a = _scores("scores_challenger", scores_challenger)
    b = _scores("scores_champion", scores_champion)
    _check_same_rows("y_true", positive.shape[0], scores_challenger=a, scores_champion=b)
    n_pos = int(np.count_nonzero(positive))
    n_neg = positive.size - n_pos
    if n_pos < 2 or n_neg < 2:
        raise ValueError(
            f"y_true has {n_pos} positives and {n_neg} negatives; DeLong's test needs at "
            "least two of each class"
        )

    # One row-sized int array carries the label in its low bit and, after the first
    # classifier's pass, its doubled placement above it: every random access by sort order
    # then fetches both at once, which at 10^7 rows matters as much as the sorting.
    dtype = np.int32 if 4 * positive.size + 1 < 2**31 else np.int64
    packed = positive.astype(dtype)
    order_a = np.argsort(a)
    u_a = 0
    for rows, twice, pos, label in _placement_blocks(a, packed, order_a):
        twice_label = twice << 1
        twice_label |= label
        packed[rows] = twice_label
        u_a += int(np.sum(twice, where=pos))
    del order_a
    # Pair the classifiers row by row in b's sorted order. The difference of the integer
    # placements is exact, so identical or equally perfect classifiers give a variance of
    # exactly 0 rather than rounding noise.
    order_b = np.argsort(b)
    pos_blocks: list[tuple[int, int, float]] = []
    neg_blocks: list[tuple[int, int, float]] = []
    for _, twice, pos, twice_a_label in _placement_blocks(b, packed, order_b):
        # 2 n_neg (V10_a - V10_b) on positives, 2 n_pos (V01_b - V01_a) on negatives
        diff = (twice_a_label >> 1) - twice
        pos_blocks.append(_block_moments(diff[pos]))
        neg_blocks.append(_block_moments(diff[~pos]))
    del order_b, packed
    u_b = u_a - sum(total for _, total, _ in pos_blocks)  # the positives' diffs sum to u_a - u_b
    var_pos = _combined_m2(pos_blocks) / (n_pos - 1)
    var_neg = _combined_m2(neg_blocks) / (n_neg - 1)
    pairs = 2.0 * n_pos * n_neg
    auc_a, auc_b = u_a / pairs, u_b / pairs
    variance = var_pos / (4.0 * n_neg * n_neg * n_pos) + var_neg / (4.0 * n_pos * n_pos * n_neg)
    if not variance > 0.0:
        return DeLongResult(auc_a, auc_b, 0.0, 1.0, 0.0, alternative)
    z = ((u_a - u_b) / pairs) / math.sqrt(variance)
    if alternative == "greater":
        p = sps.norm.sf(z)
    else:
        p = 2.0 * sps.norm.sf(abs(z))
    return DeLongResult(auc_a, auc_b, float(z), float(min(p, 1.0)), variance, alternative)


# --------------------------------------------------------------------------------------
# Paired bootstrap
# --------------------------------------------------------------------------------------


def _percentile_interval(draws: np.ndarray, confidence: float, sided: str) -> tuple[float, float]:
    alpha = 1.0 - confidence
    if sided == "two-sided":
        low, high = np.quantile(draws, [alpha / 2.0, 1.0 - alpha / 2.0])
        return float(low), float(high)
    if sided == "lower":
        return float(np.quantile(draws, alpha)), math.inf
    return -math.inf, float(np.quantile(draws, confidence))


def _skew_acceleration(jack: np.ndarray, weights: np.ndarray) -> float:
    """BCa's acceleration from jackknife deviations (theta_dot - theta_(i), up to a common
    positive scale) with multiplicities ``weights``: sum u^3 / (6 (sum u^2)^1.5)."""
    sq = float(np.dot(weights, jack * jack))
    if not sq > 0:
        return 0.0
    return float(np.dot(weights, jack**3) / (6.0 * sq**1.5))


def _macro_f1_acceleration(y_true: Any, pred_a: Any, pred_b: Any) -> float:
    """The jackknife acceleration of the macro F1 difference: leaving out one row changes
    only its (true, challenger, champion) cell, so one leave-out per occupied cell."""
    y, a, b, k = _label_codes(y_true, pred_a, pred_b)
    cell = (y.astype(np.int64) * k + a) * k + b
    ids, counts = np.unique(cell, return_counts=True)
    true_cls, a_cls, b_cls = ids // (k * k), (ids // k) % k, ids % k
    theta = np.empty(ids.size)
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // ids.size)
    for start in range(0, ids.size, chunk):
        stop = min(start + chunk, ids.size)
        left_out = np.repeat(counts[None, :], stop - start, axis=0).astype(np.float64)
        left_out[np.arange(stop - start), np.arange(start, stop)] -= 1
        theta[start:stop] = _macro_f1_from_cells(
            left_out, true_cls, a_cls, k
        ) - _macro_f1_from_cells(left_out, true_cls, b_cls, k)
    dot = float(np.dot(counts, theta) / counts.sum())
    return _skew_acceleration(dot - theta, counts.astype(np.float64))


def _bca_interval(
    draws: np.ndarray, estimate: float, acceleration: float, confidence: float, sided: str
) -> tuple[float, float]:
    """Efron's BCa percentiles of ``draws`` (scipy.stats.bootstrap's formulas); the
    percentile interval where the correction is undefined (every draw on one side)."""
    from scipy.special import ndtr, ndtri

    share = (np.count_nonzero(draws < estimate) + np.count_nonzero(draws <= estimate)) / (
        2.0 * draws.size
    )
    z0 = float(ndtri(share))
    if not (math.isfinite(z0) and math.isfinite(acceleration)):
        return _percentile_interval(draws, confidence, sided)

    def level(p: float) -> float:
        z = z0 + float(ndtri(p))
        return float(ndtr(z0 + z / (1.0 - acceleration * z)))

    alpha = 1.0 - confidence
    if sided == "two-sided":
        low, high = np.quantile(draws, [level(alpha / 2.0), level(1.0 - alpha / 2.0)])
        return float(low), float(high)
    if sided == "lower":
        return float(np.quantile(draws, level(alpha))), math.inf
    return -math.inf, float(np.quantile(draws, level(confidence)))


def _label_codes(
    y_true: Any, pred_challenger: Any, pred_champion: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    y = _as_array("y_true", y_true)
    a = _as_array("pred_challenger", pred_challenger, ndim=(1, 2))
    b = _as_array("pred_champion", pred_champion, ndim=(1, 2))
    for name, arr in (("pred_challenger", a), ("pred_champion", b)):
        if arr.ndim != 1:
            raise ValueError(
                f"{name} must be 1-D predicted labels for accuracy and macro_f1, got shape "
                f"{arr.shape}; pass probabilities.argmax(axis=1)"
            )
    _check_same_rows("y_true", y.shape[0], pred_challenger=a, pred_champion=b)
    n = y.shape[0]
    try:
        classes, codes = np.unique(np.concatenate([y, a, b]), return_inverse=True)
    except TypeError:
        raise ValueError(
            "y_true, pred_challenger and pred_champion must hold labels of one comparable type"
        ) from None
    codes = codes.reshape(-1)
    return codes[:n], codes[n : 2 * n], codes[2 * n :], int(classes.size)


def _macro_f1_from_cells(
    counts: np.ndarray, true_cls: np.ndarray, pred_cls: np.ndarray, n_classes: int
) -> np.ndarray:
    """Macro F1 for each row of ``counts`` (resamples x occupied cells).

    Averages over the classes present in labels or predictions of that resample, exactly as
    ``sklearn.metrics.f1_score(average="macro")`` on the resampled rows does.
    """
    r = counts.shape[0]
    offsets = (np.arange(r, dtype=np.int64) * n_classes)[:, None]

    def per_class(cls: np.ndarray, cell_counts: np.ndarray) -> np.ndarray:
        idx = (offsets + cls[None, :]).ravel()
        summed = np.bincount(idx, weights=cell_counts.ravel(), minlength=r * n_classes)
        return summed.reshape(r, n_classes)

    support = per_class(true_cls, counts)
    predicted = per_class(pred_cls, counts)
    hit = true_cls == pred_cls
    tp = per_class(true_cls[hit], counts[:, hit])
    denom = support + predicted
    present = denom > 0
    f1 = np.divide(2.0 * tp, denom, out=np.zeros_like(denom), where=present)
    return f1.sum(axis=1) / present.sum(axis=1)


def _row_log_loss(name: str, y: np.ndarray, pred: Any) -> np.ndarray:
    """Per-row log loss with sklearn's clipping to [eps, 1 - eps] (float64 eps)."""
    p = _as_array(name, pred, ndim=(1, 2))
    if p.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold probabilities, got dtype {p.dtype}")
    p = np.asarray(p, dtype=np.float64)
    _check_same_rows("y_true", y.shape[0], **{name: p})
    if ((p < 0.0) | (p > 1.0)).any():
        raise ValueError(f"{name} must hold probabilities in [0, 1] for log_loss")
    if p.ndim == 1:
        positive = _binary_labels("y_true", y)
        q = np.where(positive, p, 1.0 - p)
    else:
        k = p.shape[1]
        if k < 2:
            raise ValueError(f"{name} has {k} column; pass one probability column per class")
        if np.abs(p.sum(axis=1) - 1.0).max() > 1e-6:
            raise ValueError(f"rows of {name} must sum to 1; pass class probabilities")
        if y.dtype.kind not in "iub" and not (
            y.dtype.kind == "f" and np.array_equal(y, np.round(y))
        ):
            raise ValueError("y_true must hold class indices 0..k-1 for a probability matrix")
        cls = y.astype(np.int64)
        if cls.min() < 0 or cls.max() >= k:
            raise ValueError(f"y_true must hold class indices 0..{k - 1} to match {name}")
        q = p[np.arange(p.shape[0]), cls]
    eps = np.finfo(np.float64).eps
    return -np.log(np.clip(q, eps, 1.0 - eps))


def _auc_scores(name: str, pred: Any) -> np.ndarray:
    arr = _as_array(name, pred, ndim=(1, 2))
    if arr.ndim == 2:
        if arr.shape[1] != 2:
            raise ValueError(
                f"{name} has {arr.shape[1]} columns; the auc bootstrap supports binary labels "
                "only (pass the positive-class column); use macro_f1 or log_loss for multiclass"
            )
        arr = arr[:, 1]
    return _scores(name, arr)


class _GroupedScores:
    """One classifier's rows coded once by (tie group in score order, label).

    A resample's AUC then needs only a count of its rows per code and a cumulative sum
    over groups, O(n) with no sorting; ties between groups never arise and ties within a
    group count one half.
    """

    def __init__(self, scores: np.ndarray, positive: np.ndarray) -> None:
        order = np.argsort(scores)
        sorted_scores = scores[order]
        new_group = np.empty(scores.size, dtype=bool)
        new_group[0] = True
        np.not_equal(sorted_scores[1:], sorted_scores[:-1], out=new_group[1:])
        group = np.cumsum(new_group, dtype=np.int64)
        group -= 1
        self.n_groups = int(group[-1]) + 1
        self.code = np.empty(scores.size, dtype=np.int64)
        self.code[order] = group + self.n_groups * positive[order]  # negatives first

    def auc(self, rows: np.ndarray) -> np.ndarray:
        """AUC of each resample in ``rows`` (resamples x row indices); NaN if a class is missing."""
        r, g = rows.shape[0], self.n_groups
        codes = self.code[rows]
        codes += (np.arange(r, dtype=np.int64) * (2 * g))[:, None]
        counts = np.bincount(codes.ravel(), minlength=r * 2 * g).reshape(r, 2, g)
        neg, pos = counts[:, 0, :], counts[:, 1, :]
        # Doubled Mann-Whitney U: each positive beats the negatives in lower groups (2 each)
        # and ties those in its own group (1 each); integer arithmetic keeps it exact.
        twice_below = np.cumsum(neg, axis=1)
        twice_below += twice_below
        twice_below -= neg
        twice_u = np.einsum("ij,ij->i", pos, twice_below)
        with np.errstate(invalid="ignore", divide="ignore"):
            return twice_u / (2.0 * pos.sum(axis=1) * neg.sum(axis=1))


def bootstrap_difference(
    metric: str,
    y_true: Any,
    pred_challenger: Any,
    pred_champion: Any,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int | None = 0,
    sided: str = "two-sided",
    interval: str = "percentile",
) -> BootstrapResult:
    """Paired percentile (or BCa) bootstrap interval of (challenger - champion) for ``metric``.

    Rows are resampled with replacement, the same rows for both models, ``n_resamples``
    times. ``metric`` is one of:

    - ``"accuracy"``: ``pred_*`` are predicted labels. Only the counts of the four agreement
      cells (both right, only challenger right, only champion right, both wrong) matter, so
      a resample is one multinomial draw of those counts: exact in distribution and O(B)
      whatever the number of rows.
    - ``"macro_f1"``: ``pred_*`` are predicted labels. Likewise a resample is a multinomial
      draw over the occupied (true, challenger, champion) label cells, O(B x cells).
    - ``"log_loss"``: ``pred_*`` are probability matrices (n x k; ``y_true`` holds class
      indices) or, for a 0/1 label, positive-class probabilities. Reported as the
      improvement champion loss - challenger loss, so positive still means "challenger
      better". Rows are resampled as indices in chunks: O(B x n) time, bounded memory;
      when B x n exceeds 2.5e8, a Poisson bootstrap over 1024 quantile groups of the
      per-row differences (exact mean and variance, skew kept) costs O(B x 1024) instead.
    - ``"auc"``: binary label; ``pred_*`` are positive-class scores (or n x 2 matrices).
      Each model's rows are coded once by tie group and label, so a resample is scored by
      counting its rows per code: O(B x n) in chunks, no sorting. Resamples that happen to
      miss a class are dropped and ``n_resamples`` in the result reports how many were
      used. When B x n exceeds 2.5e8 the draws come from DeLong's normal law of the
      difference instead (its variance is the one a row bootstrap estimates): O(n log n).

    ``sided`` picks the interval: ``"two-sided"`` gives the (1-confidence)/2 and
    (1+confidence)/2 percentiles; ``"lower"`` gives a one-sided lower confidence bound
    (``low`` = the (1-confidence) percentile, ``high`` = +inf), which is what a
    non-inferiority or margin check needs; ``"upper"`` mirrors it. ``seed`` makes the
    draws reproducible. ``estimate`` is the difference on the full data.

    ``interval="bca"`` (macro F1 and log loss): Efron's bias-corrected and accelerated
    percentiles of the same draws, as ``scipy.stats.bootstrap(method="BCa")`` computes them:
    the bias correction from the share of draws below the estimate, the acceleration from
    the leave-one-row-out jackknife (exact and O(n) for the mean of per-row log-loss
    differences; one leave-out per occupied label cell for macro F1). The percentile bound
    is liberal where the statistic is skewed at few rows; BCa is second-order accurate.
    """
    _check_choice("metric", metric, BOOTSTRAP_METRICS)
    _check_choice("sided", sided, BOOTSTRAP_SIDES)
    _check_choice("interval", interval, BOOTSTRAP_INTERVALS)
    if interval == "bca" and metric not in ("macro_f1", "log_loss"):
        raise ValueError(f"interval='bca' is for macro_f1 and log_loss, not {metric}")
    confidence = _check_probability("confidence", confidence, open_interval=True)
    n_resamples = _check_count("n_resamples", n_resamples)
    if n_resamples < 1:
        raise ValueError("n_resamples must be at least 1; 10000 is a good default")
    rng = np.random.default_rng(seed)

    args = (y_true, pred_challenger, pred_champion, n_resamples, rng)
    if metric == "accuracy":
        draws, estimate = _bootstrap_accuracy(*args)
        method = "agreement cells"
    elif metric == "macro_f1":
        draws, estimate = _bootstrap_macro_f1(*args)
        method = "label cells"
        if interval == "bca":
            acceleration = _macro_f1_acceleration(y_true, pred_challenger, pred_champion)
    elif metric == "log_loss":
        y = _as_array("y_true", y_true)
        improvement = _row_log_loss("pred_champion", y, pred_champion)
        improvement -= _row_log_loss("pred_challenger", y, pred_challenger)
        draws, method = _bootstrap_mean(improvement, n_resamples, rng)
        estimate = float(improvement.mean())
        if interval == "bca":
            acceleration = _skew_acceleration(improvement - estimate, np.ones(improvement.size))
    else:
        draws, estimate, method = _bootstrap_auc(*args)
    if interval == "bca":
        low, high = _bca_interval(draws, estimate, acceleration, confidence, sided)
        method += " bca"
    else:
        low, high = _percentile_interval(draws, confidence, sided)
    return BootstrapResult(metric, estimate, low, high, confidence, int(draws.size), sided, method)


def _bootstrap_accuracy(
    y_true: Any, pred_a: Any, pred_b: Any, n_resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    y = _as_array("y_true", y_true)
    a = _as_array("pred_challenger", pred_a, ndim=(1, 2))
    b = _as_array("pred_champion", pred_b, ndim=(1, 2))
    for name, arr in (("pred_challenger", a), ("pred_champion", b)):
        if arr.ndim != 1:
            raise ValueError(
                f"{name} must be 1-D predicted labels for accuracy, got shape {arr.shape}; "
                "pass probabilities.argmax(axis=1)"
            )
    _check_same_rows("y_true", y.shape[0], pred_challenger=a, pred_champion=b)
    n = y.shape[0]
    right_a = a == y
    right_b = b == y
    n_a = int(np.count_nonzero(right_a))
    n_b = int(np.count_nonzero(right_b))
    both = int(np.count_nonzero(right_a & right_b))
    only_a, only_b = n_a - both, n_b - both
    # Resampling n rows with replacement = one multinomial draw of the four cell counts.
    cells = np.array([only_a, only_b, both, n - only_a - only_b - both], dtype=np.float64) / n
    counts = rng.multinomial(n, cells, size=n_resamples)
    draws = (counts[:, 0] - counts[:, 1]) / n
    return draws, (only_a - only_b) / n


def _bootstrap_macro_f1(
    y_true: Any, pred_a: Any, pred_b: Any, n_resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    y, a, b, k = _label_codes(y_true, pred_a, pred_b)
    n = y.size
    cell = (y.astype(np.int64) * k + a) * k + b
    if k**3 <= max(4 * n, 1 << 16):
        counts = np.bincount(cell, minlength=k**3)
        ids = np.flatnonzero(counts)
        counts = counts[ids]
    else:
        ids, counts = np.unique(cell, return_counts=True)
    true_cls, a_cls, b_cls = ids // (k * k), (ids // k) % k, ids % k

    def difference(cell_counts: np.ndarray) -> np.ndarray:
        return _macro_f1_from_cells(cell_counts, true_cls, a_cls, k) - _macro_f1_from_cells(
            cell_counts, true_cls, b_cls, k
        )

    estimate = float(difference(counts[None, :])[0])
    probs = counts / n
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // ids.size)
    draws = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        draws[start : start + size] = difference(rng.multinomial(n, probs, size=size))
    return draws, estimate


def _bootstrap_mean(
    values: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """Bootstrap draws of the mean of ``values`` and the method: row by row while that is
    cheap, else from quantile groups (``_grouped_bootstrap_mean``)."""
    n = values.size
    if n * n_resamples > _ROWWISE_BOOTSTRAP_BUDGET and n >= 16 * _MEAN_BINS:
        return _grouped_bootstrap_mean(values, n_resamples, rng), "quantile groups"
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n)
    draws = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        draws[start : start + size] = values[idx].mean(axis=1)
    return draws, "rows"


def _grouped_bootstrap_mean(
    values: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """The bootstrap of a mean at many rows, in O(resamples x groups) whatever the rows.

    The sorted values are cut into ``groups`` groups: the ``_MEAN_TAIL`` smallest and
    largest rows each alone (a heavy tail is where a mean's skew comes from), the rest in
    equal-count quantile groups. A resample takes a Poisson(size) count of rows from each
    group (the Poisson bootstrap, which matches the multinomial one as rows grow), and the
    sum of c draws from a group is c x its mean plus a normal term with its within variance.
    The draws have the exact bootstrap mean and variance, and the between-group spread keeps
    the skew that a plain normal interval loses; checked against row-by-row resampling.
    """
    ordered = np.sort(values)
    n, tail, groups = ordered.size, _MEAN_TAIL, _MEAN_BINS  # read here: tests shrink them
    middle = np.linspace(tail, n - tail, groups - 2 * tail + 1).astype(np.int64)
    edges = np.concatenate([np.arange(0, tail), middle, np.arange(n - tail + 1, n + 1)])
    sizes = np.diff(edges).astype(np.float64)
    means = np.add.reduceat(ordered, edges[:-1]) / sizes
    centred = ordered - np.repeat(means, np.diff(edges))
    variances = np.add.reduceat(centred * centred, edges[:-1]) / sizes
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // sizes.size)
    draws = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        counts = rng.poisson(sizes, size=(size, sizes.size)).astype(np.float64)
        within = np.sqrt(counts @ variances) * rng.standard_normal(size)
        draws[start : start + size] = (counts @ means + within) / counts.sum(axis=1)
    return draws


def _bootstrap_auc(
    y_true: Any, pred_a: Any, pred_b: Any, n_resamples: int, rng: np.random.Generator
) -> tuple[np.ndarray, float, str]:
    positive = _binary_labels("y_true", y_true)
    a = _auc_scores("pred_challenger", pred_a)
    b = _auc_scores("pred_champion", pred_b)
    _check_same_rows("y_true", positive.shape[0], pred_challenger=a, pred_champion=b)
    n = positive.size
    n_pos = int(np.count_nonzero(positive))
    if n_pos == 0 or n_pos == n:
        raise ValueError("y_true has a single class; AUC needs both positives and negatives")
    if n * n_resamples > _ROWWISE_BOOTSTRAP_BUDGET and min(n_pos, n - n_pos) >= 2:
        # Many rows: draw from DeLong's asymptotic normal law of the AUC difference (the
        # variance a row bootstrap estimates, in O(n log n)) instead of resampling rows.
        test = delong(positive, a, b)
        estimate = test.auc_challenger - test.auc_champion
        draws = estimate + math.sqrt(test.variance) * rng.standard_normal(n_resamples)
        return draws, estimate, "delong normal"
    grouped_a, grouped_b = _GroupedScores(a, positive), _GroupedScores(b, positive)
    every_row_once = np.arange(n)[None, :]
    estimate = grouped_a.auc(every_row_once)[0] - grouped_b.auc(every_row_once)[0]
    chunk = max(1, _BOOTSTRAP_CHUNK_ELEMENTS // n)
    draws = np.empty(n_resamples)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        rows = rng.integers(0, n, size=(size, n))
        draws[start : start + size] = grouped_a.auc(rows) - grouped_b.auc(rows)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        raise ValueError("every bootstrap resample missed a class; y_true needs more of each class")
    return draws, float(estimate), "rows"


# --------------------------------------------------------------------------------------
# Corrected resampled t-test
# --------------------------------------------------------------------------------------


def corrected_resampled_ttest(
    differences: Any, n_train: int, n_test: int, *, alternative: str = "greater"
) -> CorrectedTTestResult:
    """Nadeau & Bengio's (2003) corrected resampled t-test.

    ``differences`` holds the J per-split metric differences (challenger - champion) from
    repeated random train/test splits of ``n_train`` / ``n_test`` rows. Overlapping
    training sets make the splits correlated, so the naive t-test's variance term 1/J is
    inflated by n_test/n_train: t = mean / sqrt((1/J + n_test/n_train) * var(ddof=1)),
    with J - 1 degrees of freedom.

    Zero variance is handled without inf or NaN: with tol = 1e-12 * max(1, max|d|), if the
    standard deviation is <= tol and |mean| <= tol (all differences ~0) the result is
    statistic 0, p-value 1; if the differences are a constant clearly non-zero value the
    statistic is +-T_STATISTIC_CAP (1e6), giving a p-value of ~0 (or ~1) for "greater".
    Every |t| is capped at T_STATISTIC_CAP the same way.
    """
    _check_choice("alternative", alternative, ALTERNATIVES)
    d = _scores("differences", differences)
    j = d.size
    if j < 2:
        raise ValueError(f"differences has {j} value; the t-test needs at least 2 splits")
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        try:
            ok = float(value) > 0 and math.isfinite(float(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"{name} must be a positive number of rows, got {value!r}")
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    df = j - 1
    if sd <= tol:
        if abs(mean) <= tol:
            return CorrectedTTestResult(0.0, 1.0, df, mean)
        t = math.copysign(T_STATISTIC_CAP, mean)
    else:
        t = mean / (sd * math.sqrt(1.0 / j + float(n_test) / float(n_train)))
        t = float(np.clip(t, -T_STATISTIC_CAP, T_STATISTIC_CAP))
    if alternative == "greater":
        p = sps.t.sf(t, df)
    else:
        p = 2.0 * sps.t.sf(abs(t), df)
    return CorrectedTTestResult(t, float(min(p, 1.0)), df, mean)
