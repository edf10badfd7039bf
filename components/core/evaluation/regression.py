"""The regression gate's statistics: metrics, a paired test on per-row errors, a paired
bootstrap interval for the improvement, power and the smallest detectable effect, and the
first-run baselines. Pure numpy/scipy; nothing here reads files or imports the gate (the
decision built from them is ``evaluation.regression_gate``).

Both models predict the same test rows. Row i's improvement is ``d_i = loss(champion_i) -
loss(challenger_i)`` (squared error by default, absolute error on request): positive when
the challenger is closer to the truth. The gate deploys when the data reject
H0: mean(d) <= margin in favour of mean(d) > margin at the level it is given:

- ``ttest``: the paired t-test (``scipy.stats.ttest_rel(champion_loss, challenger_loss +
  margin, alternative="greater")``), valid for the mean with enough rows whatever the
  error distribution (the central limit theorem; heavy tails need more rows);
- ``wilcoxon``: the Wilcoxon signed-rank test of ``d - margin`` (``scipy.stats.wilcoxon``,
  alternative "greater"), which tests the median of the pseudo-medians of ``d``, robust to
  a few huge errors; it answers a slightly different question (is a typical row better?).

The interval is a paired bootstrap of mean(d) (rows resampled with replacement, both
models' errors together). Power and the minimum detectable effect are the t-test's normal
approximations (as statsmodels' ``NormalIndPower`` / ``TTestPower`` compute them for one
sample).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

__all__ = [
    "LOSSES",
    "METHODS",
    "METRICS",
    "PairedResult",
    "linear_baseline",
    "mean_baseline",
    "minimum_detectable_effect",
    "paired_bootstrap",
    "paired_improvement",
    "paired_test",
    "power",
    "regression_metrics",
]

METHODS = ("ttest", "wilcoxon")
METRICS = ("rmse", "mae", "r2")  # what regression_metrics returns, in this order
LOSSES = ("squared", "absolute")


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R^2 (1 - SSE / SST; 0 for the mean predictor, negative when worse)."""
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    err = pred - y
    sst = float(np.sum((y - y.mean()) ** 2)) if len(y) else 0.0
    return {
        "rmse": float(np.sqrt(np.mean(err**2))) if len(y) else float("nan"),
        "mae": float(np.mean(np.abs(err))) if len(y) else float("nan"),
        "r2": 1.0 - float(np.sum(err**2)) / sst if sst > 0 else float("nan"),
    }


def paired_improvement(
    y: np.ndarray, pred_new: np.ndarray, pred_old: np.ndarray, loss: str = "squared"
) -> np.ndarray:
    """Per row: the champion's loss minus the challenger's (positive = challenger better)."""
    if loss not in LOSSES:
        raise ValueError(f"loss={loss!r} must be one of {', '.join(LOSSES)}")
    y = np.asarray(y, np.float64)
    new, old = np.asarray(pred_new, np.float64) - y, np.asarray(pred_old, np.float64) - y
    if loss == "squared":
        return old**2 - new**2
    return np.abs(old) - np.abs(new)


@dataclass(frozen=True)
class PairedResult:
    """One paired comparison of per-row errors."""

    method: str  # ttest | wilcoxon
    loss: str  # squared | absolute
    rows: int
    mean_improvement: float  # mean(d): champion's mean loss minus the challenger's
    margin: float
    p_value: float  # one-sided, H0: mean(d) <= margin
    statistic: float
    interval: tuple[float, float] = (math.nan, math.nan)  # bootstrap, of mean(d)
    extra: dict[str, Any] = field(default_factory=dict)

    def deploy(self, level: float) -> bool:
        return bool(self.p_value < level)


def paired_test(
    d: np.ndarray, method: str = "ttest", margin: float = 0.0, loss: str = "squared"
) -> PairedResult:
    """One-sided test of H0: mean(d) <= margin against mean(d) > margin (module docstring).

    Rows with ``d == margin`` carry no sign for the Wilcoxon test and are dropped by it
    (scipy's ``zero_method="wilcox"``); with no row left, or fewer than two rows for the
    t-test, or no spread at all, the p-value is 1 (no evidence)."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} must be one of {', '.join(METHODS)}")
    d = np.asarray(d, np.float64)
    if not np.isfinite(d).all():
        raise ValueError("the per-row errors must be finite")
    shifted = d - margin
    mean = float(d.mean()) if len(d) else math.nan
    p, stat = 1.0, math.nan
    if method == "ttest":
        sd = float(shifted.std(ddof=1)) if len(d) > 1 else 0.0
        if sd > 0:
            stat = float(shifted.mean() / (sd / math.sqrt(len(d))))
            p = float(sps.t.sf(stat, len(d) - 1))
        elif len(d) > 1 and shifted.mean() > 0:
            p, stat = 0.0, math.inf  # every row improves by the same amount, above the margin
    elif np.count_nonzero(shifted):
        result = sps.wilcoxon(shifted, alternative="greater", zero_method="wilcox")
        p, stat = float(result.pvalue), float(result.statistic)
    return PairedResult(method, loss, len(d), mean, margin, p, stat)


def paired_bootstrap(
    d: np.ndarray, resamples: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Two-sided percentile interval of mean(d) from ``resamples`` paired resamples (each
    row keeps both models' errors). Counts per row come from one multinomial draw per
    resample, so memory is O(rows) for any number of resamples."""
    d = np.asarray(d, np.float64)
    n = len(d)
    if n == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // max(n, 1))
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=k)
        means[start : start + k] = counts @ d / n
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def power(effect: float, sd: float, n: int, level: float) -> float:
    """The one-sided paired t-test's power (normal approximation) to detect a mean
    improvement ``effect`` above the margin when the per-row improvements have spread
    ``sd``, with ``n`` rows, at ``level``."""
    if n < 2 or sd <= 0:
        return math.nan
    return float(sps.norm.sf(sps.norm.isf(level) - effect / (sd / math.sqrt(n))))


def minimum_detectable_effect(sd: float, n: int, level: float, target: float = 0.8) -> float:
    """The smallest mean improvement the paired t-test detects with probability ``target``
    (normal approximation)."""
    if n < 2 or sd <= 0:
        return math.nan
    return float((sps.norm.isf(level) + sps.norm.ppf(target)) * sd / math.sqrt(n))


def mean_baseline(y_train: np.ndarray, rows: int) -> np.ndarray:
    """The first run's champion when none is asked for: the training mean for every row."""
    return np.full(rows, float(np.mean(np.asarray(y_train, np.float64))))


def linear_baseline(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, ridge: float = 1e-6
) -> np.ndarray:
    """Least squares with an intercept on the preprocessed features (a tiny ridge keeps a
    one-hot design with a redundant column solvable): the practitioner's first model."""
    x = np.column_stack([np.ones(len(x_train)), np.asarray(x_train, np.float64)])
    gram = x.T @ x + ridge * len(x) * np.eye(x.shape[1])
    gram[0, 0] -= ridge * len(x)  # the intercept is not shrunk
    coef = np.linalg.solve(gram, x.T @ np.asarray(y_train, np.float64))
    return np.column_stack([np.ones(len(x_test)), np.asarray(x_test, np.float64)]) @ coef
