"""How the gate's significance tests scale to millions of paired test predictions.

Usage: python benchmarks/stats_scale.py [--n 10000000] [--repeats 3] [--scipy-seconds 60]

Prints one line per comparison, ``NAME: ours=VALUE s PEER=VALUE s ratio=OURS/PEER``:

- ``mcnemar_plus_bootstrap_<n>``: McNemar plus a 10,000-resample bootstrap CI of the
  accuracy difference, from the label arrays, against the 0.5 s target.
- ``delong_<n>``: DeLong's test against numpy argsorting the two score vectors once
  (target ratio <= 2); ``delong_float32_ties_<n>`` the same on float32 scores, which tie.
- ``bootstrap_log_loss_CI_<n>`` and ``bootstrap_auc_CI_<n>`` (``--loss-n``, 10^6 rows):
  the 10,000-resample intervals of the log-loss and AUC improvement, which take the
  large-sample forms at this size, against resampling rows one by one (timed on
  ``--rowwise-resamples`` resamples and scaled to 10,000).
- ``power_report_<n>`` (and ``power_report_margin_<n>``, margin 0.01): the gate's power
  report (power at target_effect, minimum detectable effect, rows needed; exact) against the
  decision itself (``gate.decide`` without explanations), on the same rows (target: under
  1 s, and a small ratio); ``power_report_holm_<n>``: the same for Holm over accuracy and
  ROC AUC, whose power is simulated (power.RuleModel).
- ``bootstrap_accuracy_CI``: our accuracy bootstrap against ``scipy.stats.bootstrap``
  (paired, percentile, same 10,000 resamples) on the same rows, at a smaller n picked so
  scipy takes about ``--scipy-seconds``; followed by a line saying whether the two
  intervals agree within Monte-Carlo error.

Timings are medians over ``--repeats`` runs (scipy runs once: it is the slow one). Lines
starting with ``#`` are context. Total run time is about 1.5-3 minutes at 10^7 rows.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from components.core.evaluation import stats  # noqa: E402

N_RESAMPLES = 10_000
CONFIDENCE = 0.95


def _label(n: int) -> str:
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:g}{suffix}"
    return str(n)


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _line(name: str, ours: float, peer_name: str, peer: float) -> None:
    print(f"{name}: ours={ours:.4g} s {peer_name}={peer:.4g} s ratio={ours / peer:.4g}")


def _make_data(n: int, seed: int) -> dict[str, np.ndarray]:
    """Binary label, two correlated score vectors and the labels they predict."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    shared = rng.normal(size=n)  # both models see some of the same signal
    scores_a = 0.6 * shared + 0.8 * rng.normal(size=n) + 1.00 * y
    scores_b = 0.6 * shared + 0.8 * rng.normal(size=n) + 0.95 * y
    return {
        "y": y,
        "scores_a": scores_a,
        "scores_b": scores_b,
        "pred_a": (scores_a > 0.6).astype(np.int64),
        "pred_b": (scores_b > 0.6).astype(np.int64),
    }


def _mcnemar_plus_bootstrap(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> tuple:
    right_a, right_b = pred_a == y, pred_b == y
    b = int(np.count_nonzero(right_b & ~right_a))
    c = int(np.count_nonzero(right_a & ~right_b))
    test = stats.mcnemar(b, c)
    interval = stats.bootstrap_difference(
        "accuracy", y, pred_a, pred_b, confidence=CONFIDENCE, n_resamples=N_RESAMPLES
    )
    return test, interval


def _scipy_bootstrap(right_a: np.ndarray, right_b: np.ndarray, n_resamples: int) -> Any:
    def difference(x: np.ndarray, z: np.ndarray, axis: int) -> np.ndarray:
        return x.mean(axis=axis) - z.mean(axis=axis)

    return sps.bootstrap(
        (right_a, right_b),
        difference,
        paired=True,
        vectorized=True,
        n_resamples=n_resamples,
        # ~2M resampled rows per batch: bounded memory, and the same buffers are reused
        # rather than fresh pages touched on every batch
        batch=max(1, 2_000_000 // right_a.size),
        method="percentile",
        confidence_level=CONFIDENCE,
        random_state=np.random.default_rng(1),
    )


def _quantile_tolerance(low: float, high: float, n: int, n_resamples: int) -> float:
    """Allowed gap between two independent bootstrap endpoints: 4 Monte-Carlo sds + a grid step.

    The sd of an empirical q-quantile from B draws is sqrt(q (1-q) / B) / density; with a
    near-normal bootstrap distribution of sd sigma the density there is phi(z_q) / sigma.
    """
    z = sps.norm.ppf(1 - (1 - CONFIDENCE) / 2)
    sigma = (high - low) / (2 * z)
    q = (1 - CONFIDENCE) / 2
    mc_sd = math.sqrt(q * (1 - q) / n_resamples) * sigma / sps.norm.pdf(z)
    return 4 * math.sqrt(2) * mc_sd + 1.0 / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000, help="paired test predictions")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing (median)")
    parser.add_argument("--scipy-seconds", type=float, default=60.0,
                        help="aim scipy.stats.bootstrap at about this many seconds")  # fmt: skip
    parser.add_argument("--scipy-n", type=int, default=None, help="rows for scipy (skip pilot)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--loss-n", type=int, default=1_000_000,
                        help="rows for the log loss and AUC interval timings")  # fmt: skip
    parser.add_argument("--rowwise-resamples", type=int, default=200,
                        help="resamples timed for row-by-row resampling (scaled up)")  # fmt: skip
    args = parser.parse_args(argv)
    n, label = args.n, _label(args.n)

    started = time.perf_counter()
    data = _make_data(n, args.seed)
    print(f"# {n} paired predictions, {N_RESAMPLES} resamples, numpy {np.__version__}")

    # McNemar + bootstrap CI of the accuracy difference, against the 0.5 s target.
    ours, (test, interval) = _median_time(
        lambda: _mcnemar_plus_bootstrap(data["y"], data["pred_a"], data["pred_b"]),
        max(args.repeats, 5),
    )
    _line(f"mcnemar_plus_bootstrap_{label}", ours, "target", 0.5)
    print(f"# McNemar b={test.b} c={test.c} p={test.pvalue:.3g}; accuracy difference "
          f"{interval.estimate:.5f}, 95% CI [{interval.low:.5f}, {interval.high:.5f}]")  # fmt: skip

    _power_lines(data, label, args.repeats)

    # DeLong against argsorting both score vectors once; interleaved so drift hits both.
    # Float32 model outputs (what a served model returns) repeat values at this size, so
    # they also exercise the tie-group path.
    score_sets = {
        f"delong_{label}": (data["scores_a"], data["scores_b"]),
        f"delong_float32_ties_{label}": tuple(
            data[key].astype(np.float32).astype(np.float64) for key in ("scores_a", "scores_b")
        ),
    }
    for name, (scores_a, scores_b) in score_sets.items():
        delong_times, argsort_times = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            np.argsort(scores_a)
            np.argsort(scores_b)
            argsort_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = stats.delong(data["y"], scores_a, scores_b)
            delong_times.append(time.perf_counter() - start)
        _line(name, statistics.median(delong_times), "argsort",
              statistics.median(argsort_times))  # fmt: skip
        distinct = np.unique(scores_a).size
        print(f"# {name}: {distinct} distinct challenger scores; AUC "
              f"{result.auc_challenger:.5f} vs {result.auc_champion:.5f}, "
              f"z={result.statistic:.3f}, p={result.pvalue:.3g}")  # fmt: skip
    del score_sets

    # scipy.stats.bootstrap at a smaller n, where it finishes in about a minute.
    right_a = (data["pred_a"] == data["y"]).astype(np.float64)
    right_b = (data["pred_b"] == data["y"]).astype(np.float64)
    if args.scipy_n is not None:
        n_small = min(args.scipy_n, n)
    else:
        # scipy's time grows with rows x resamples (a little faster than linearly in rows,
        # as arrays fall out of cache), so the pilot uses a tenth of the resamples at 100k
        # rows: close to the final size, yet only a few seconds.
        pilot = min(n, 100_000)
        start = time.perf_counter()
        _scipy_bootstrap(right_a[:pilot], right_b[:pilot], N_RESAMPLES // 10)
        per_row = 10 * (time.perf_counter() - start) / pilot
        n_small = int(min(n, max(1_000, args.scipy_seconds / per_row)))
    small = slice(0, n_small)
    start = time.perf_counter()
    reference = _scipy_bootstrap(right_a[small], right_b[small], N_RESAMPLES)
    scipy_time = time.perf_counter() - start
    ours_small, mine = _median_time(
        lambda: stats.bootstrap_difference(
            "accuracy", data["y"][small], data["pred_a"][small], data["pred_b"][small],
            confidence=CONFIDENCE, n_resamples=N_RESAMPLES, seed=2,
        ),
        max(args.repeats, 5),
    )  # fmt: skip
    _line("bootstrap_accuracy_CI", ours_small, "scipy", scipy_time)
    ref_low, ref_high = reference.confidence_interval
    tol = _quantile_tolerance(ref_low, ref_high, n_small, N_RESAMPLES)
    agree = abs(mine.low - ref_low) <= tol and abs(mine.high - ref_high) <= tol
    print(f"intervals_agree: {'yes' if agree else 'NO'} at n={n_small}: ours "
          f"[{mine.low:.6f}, {mine.high:.6f}] scipy [{ref_low:.6f}, {ref_high:.6f}] "
          f"tolerance {tol:.6f} (4 Monte-Carlo sds + 1/n)")  # fmt: skip
    # The same interval at full size, scaled by sqrt(N / n), should have scipy's width.
    scaled = (interval.high - interval.low) * math.sqrt(n / n_small)
    print(f"# width at n={n} scaled to n={n_small}: {scaled:.5f}; "
          f"scipy width {ref_high - ref_low:.5f}")  # fmt: skip
    _large_sample_lines(data, args)
    print(f"# total {time.perf_counter() - started:.0f} s")


def _power_lines(data: dict[str, np.ndarray], label: str, repeats: int) -> None:
    """The gate's power report against its decision, both on the same rows."""
    from components.core.evaluation import gate

    y = data["y"]
    proba_a = np.zeros((y.size, 2))
    proba_a[np.arange(y.size), data["pred_a"]] = 1.0
    proba_b = np.zeros((y.size, 2))
    proba_b[np.arange(y.size), data["pred_b"]] = 1.0
    for suffix, policy in (("", gate.GatePolicy()), ("margin_", gate.GatePolicy(margin=0.01))):
        decision_time, decision = _median_time(
            lambda p=policy, a=proba_a, b=proba_b: gate.decide(
                p, y, a, b, champion_name="b", first_run=False, explain=False
            ),
            repeats,
        )
        tests = [gate._Test("accuracy", decision.p_value, decision.effect.accuracy_difference)]
        power_time, power = _median_time(
            lambda p=policy, c=decision.counts, t=tests: gate._power(p, c, t, p.margin), repeats
        )
        _line(f"power_report_{suffix}{label}", power_time, "decision", decision_time)
        print(f"# power at +{policy.target_effect * 100:g} points: {power.power_at_target}; "
              f"minimum detectable {power.minimum_detectable_effect}; rows needed "
              f"{power.rows_for_target}; {power.method}")  # fmt: skip
    # The whole rule with Holm over accuracy and ROC AUC: simulated (power.RuleModel).
    policy = gate.GatePolicy(primary_metrics=("accuracy", "auc"))
    p_a = 1 / (1 + np.exp(-(data["scores_a"] - 0.8)))
    p_b = 1 / (1 + np.exp(-(data["scores_b"] - 0.8)))
    new, old = np.c_[1 - p_a, p_a], np.c_[1 - p_b, p_b]
    decision_time, decision = _median_time(
        lambda: gate.decide(policy, y, new, old, champion_name="b", first_run=False,
                            explain=False),
        repeats,
    )  # fmt: skip
    rows = gate._Rows.of(y, new, old)
    tests = [gate._primary_test(policy, rows, decision.counts, m, 0.0) for m in ("accuracy", "auc")]
    power_time, power = _median_time(
        lambda: gate._power(policy, decision.counts, tests, 0.0, rows), repeats
    )
    _line(f"power_report_holm_{label}", power_time, "decision", decision_time)
    print(f"# Holm accuracy + AUC: power at +{policy.target_effect * 100:g} points "
          f"{power.power_at_target} (s.e. {power.simulation_se}); minimum detectable "
          f"{power.minimum_detectable_effect}; rows needed {power.rows_for_target}; "
          f"{power.method}")  # fmt: skip


def _large_sample_lines(data: dict[str, np.ndarray], args: argparse.Namespace) -> None:
    """Log loss and AUC intervals at --loss-n rows: ours (the large-sample forms) against
    resampling row by row, which is timed on --rowwise-resamples resamples and scaled to
    10,000 (its cost is linear in the resamples)."""
    n = min(args.loss_n, data["y"].size)
    y = data["y"][:n]
    proba = {k: 1 / (1 + np.exp(-data[f"scores_{k}"][:n] + 0.8)) for k in ("a", "b")}
    label = _label(n)
    for metric in ("log_loss", "auc"):

        def run(resamples: int, rowwise: bool, m: str = metric) -> stats.BootstrapResult:
            budget = stats._ROWWISE_BOOTSTRAP_BUDGET
            if rowwise:
                stats._ROWWISE_BOOTSTRAP_BUDGET = 10**15
            try:
                return stats.bootstrap_difference(
                    m, y, proba["a"], proba["b"], n_resamples=resamples, seed=3
                )
            finally:
                stats._ROWWISE_BOOTSTRAP_BUDGET = budget

        ours, mine = _median_time(lambda: run(N_RESAMPLES, False), args.repeats)
        few = args.rowwise_resamples
        start = time.perf_counter()
        slow = run(few, True)
        rowwise = (time.perf_counter() - start) * N_RESAMPLES / few
        _line(f"bootstrap_{metric}_CI_{label}", ours, "rowwise", rowwise)
        print(f"# {metric} at n={n}: ours [{mine.low:.6f}, {mine.high:.6f}] from "
              f"{N_RESAMPLES} draws; row by row [{slow.low:.6f}, {slow.high:.6f}] from "
              f"{few} resamples (its time scaled to {N_RESAMPLES})")  # fmt: skip


if __name__ == "__main__":
    main()
