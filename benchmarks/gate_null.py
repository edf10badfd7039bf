"""Does the gate keep its promise? False-deploy rate under the null and power at an effect,
side by side with the naive "deploy if accuracy is higher" rule, in one run.

    python benchmarks/gate_null.py [--comparisons 2000] [--rows 360]

Prints:
  gate_false_deploy_null: ours=RATE rate naive=RATE rate ratio=R   (ours <= alpha + MC error)
  gate_vs_alpha_null: ours=RATE rate alpha=0.05 rate ratio=R
  gate_power_effect_4pts: ours=RATE rate analytic=RATE rate ratio=R
"""

from __future__ import annotations

import argparse
import time

from gate_sim import Scenario, cell_probabilities, simulate

from components.core.evaluation import stats
from components.core.evaluation.gate import GatePolicy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--comparisons", type=int, default=2000, help="simulated comparisons per scenario (2000)"
    )
    parser.add_argument("--rows", type=int, default=360, help="test rows per comparison (360)")
    parser.add_argument(
        "--effect",
        type=float,
        default=0.04,
        help="accuracy gain of the challenger in the power scenario (0.04 = 4 points)",
    )
    args = parser.parse_args()
    policy = GatePolicy()

    started = time.perf_counter()
    null = simulate(policy, Scenario(n_rows=args.rows), args.comparisons, seed=1)
    took = time.perf_counter() - started
    print(
        f"# null: {args.comparisons} comparisons of {args.rows} rows, accuracy 0.90, "
        f"discordant 6%, {took:.1f} s"
    )
    print(
        f"gate_false_deploy_null: ours={null.gate_rate:.4f} rate naive={null.naive_rate:.4f} "
        f"rate ratio={null.gate_rate / max(null.naive_rate, 1e-9):.3g}"
    )
    print(
        f"gate_vs_alpha_null: ours={null.gate_rate:.4f} rate alpha={policy.alpha:.4f} rate "
        f"ratio={null.gate_rate / policy.alpha:.3g}"
    )
    ok = null.gate_rate <= policy.alpha + 3 * null.gate_mc_error
    print(
        f"# gate false-deploy rate {null.gate_rate:.4f} +- {null.gate_mc_error:.4f} (MC s.e.) "
        f"{'<=' if ok else '>'} alpha {policy.alpha} + 3 s.e.: {'KEPT' if ok else 'BROKEN'}"
    )

    scenario = Scenario(n_rows=args.rows, effect=args.effect)
    alt = simulate(policy, scenario, args.comparisons, seed=2)
    cells = cell_probabilities(scenario)
    analytic = stats.mcnemar_power(float(cells[2]), float(cells[1]), args.rows, policy.alpha)
    print(
        f"gate_power_effect_{round(args.effect * 100)}pts: ours={alt.gate_rate:.4f} rate "
        f"analytic={analytic:.4f} rate ratio={alt.gate_rate / max(analytic, 1e-9):.3g}"
    )
    print(f"# naive rule under the same effect deploys {alt.naive_rate:.4f}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
