"""Does the regression gate keep its promise? False-deploy rate of the whole regression rule
(evaluation/regression_gate.py) when the challenger is no better, side by side with the
naive "deploy if the RMSE is lower" rule, and its power at an effect beside the normal
approximation it reports, in one run.

    python benchmarks/regression_gate_null.py [--comparisons 2000] [--rows 360]

Both models' errors come from one heavy-tailed distribution (Student t with 6 degrees of
freedom scaled to variance 1: a few large misses, as real residuals have, with the finite
fourth moment the t-test on squared errors needs), so under the null they are equally good.
The Wilcoxon test answers another question (is a typical row better?), so at the margin's
boundary of the mean it is conservative here. Prints:
  regression_false_deploy_null_<test>: ours=RATE rate naive=RATE rate ratio=R
  regression_vs_alpha_null_<test>: ours=RATE rate alpha=0.05 rate ratio=R
  regression_margin_at_boundary_<test>: ours=RATE rate alpha=0.05 rate ratio=R
  regression_power_at_target: ours=RATE rate analytic=RATE rate ratio=R
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from components.core.evaluation.gate import GatePolicy
from components.core.evaluation.regression import power
from components.core.evaluation.regression_gate import decide_regression

TARGET = {
    "mean": 0.0,
    "scale": 3.0,
    "mad": 2.4,
}  # training variance 9: a skill gain of 0.01 = 0.09 of MSE
DF = 6  # degrees of freedom of the errors' Student t


def _rates(
    policy: GatePolicy, comparisons: int, rows: int, seed: int, shift: float = 0.0
) -> tuple[float, float]:
    """(the gate's deploy rate, the naive rule's) when the challenger's squared errors are
    lower by ``shift`` on average (0: no better)."""
    rng = np.random.default_rng(seed)
    gate = naive = 0
    for _ in range(comparisons):
        y = rng.normal(size=rows) * 3
        e_old, e_new = _errors(rng, rows, shift)
        d = decide_regression(
            policy,
            y,
            y + e_new,
            y + e_old,
            target=TARGET,
            champion_name="version 1",
            first_run=False,
            explain=False,
        )
        gate += d.deploy
        naive += float(np.mean(e_new**2)) < float(np.mean(e_old**2))
    return gate / comparisons, naive / comparisons


def _errors(rng: np.random.Generator, rows: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Both models' errors: t(6) at variance 1, the challenger's shrunk so that its mean
    squared error is lower by ``shift``."""
    scale = 1 / math.sqrt(DF / (DF - 2))
    e_old = rng.standard_t(DF, size=rows) * scale
    e_new = rng.standard_t(DF, size=rows) * scale * math.sqrt(max(1 - shift, 0.0))
    return e_old, e_new


def _margin_rate(policy: GatePolicy, comparisons: int, rows: int, seed: int) -> float:
    """The challenger better by exactly the margin: a deploy is a false one."""
    gate, _ = _rates(policy, comparisons, rows, seed, shift=policy.margin * TARGET["scale"] ** 2)
    return gate


def _line(name: str, ours: float, peer: str, value: float) -> None:
    print(
        f"{name}: ours={ours:.4f} rate {peer}={value:.4f} rate ratio={ours / max(value, 1e-9):.3g}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comparisons", type=int, default=2000, help="per scenario (2000)")
    parser.add_argument("--rows", type=int, default=360, help="test rows per comparison (360)")
    args = parser.parse_args()
    n, rows = args.comparisons, args.rows
    ok = True
    started = time.perf_counter()
    for test in ("ttest", "wilcoxon"):
        policy = GatePolicy(regression_test=test)
        gate, naive = _rates(policy, n, rows, seed=1)
        se = math.sqrt(policy.alpha * (1 - policy.alpha) / n)
        _line(f"regression_false_deploy_null_{test}", gate, "naive", naive)
        _line(f"regression_vs_alpha_null_{test}", gate, "alpha", policy.alpha)
        kept = gate <= policy.alpha + 3 * se
        ok &= kept
        print(
            f"# {test}: {gate:.4f} +- {se:.4f} (MC s.e.) vs alpha: {'KEPT' if kept else 'BROKEN'}"
        )
        margin = GatePolicy(regression_test=test, margin=0.02)
        rate = _margin_rate(margin, n, rows, seed=2)
        _line(f"regression_margin_at_boundary_{test}", rate, "alpha", policy.alpha)
        ok &= rate <= policy.alpha + 3 * se
    # power at the pre-declared effect: simulated against the normal approximation the
    # decision reports, here at the true spread of the per-row improvements
    policy = GatePolicy(target_effect=0.02)  # a skill gain of 0.02 = 0.18 of squared error
    shift = policy.target_effect * TARGET["scale"] ** 2
    simulated, _ = _rates(policy, n, rows, seed=3, shift=shift)
    e_old, e_new = _errors(np.random.default_rng(4), 2_000_000, shift)
    sd = float(np.std(e_old**2 - e_new**2))
    analytic = power(shift, sd, rows, policy.alpha)
    _line("regression_power_at_target", simulated, "analytic", analytic)
    print(
        f"# {n} comparisons of {rows} rows per scenario, t({DF}) errors, "
        f"{time.perf_counter() - started:.1f} s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
