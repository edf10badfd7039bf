"""The power of the rule that decides (issue 13): exact sums checked against the older
exact McNemar power, against brute force through decide() (simulated deploy rates within
2 s.e.), the normal form against the exact one where it takes over, and the words."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gate_sim import Scenario, cell_probabilities, simulate

from components.core.evaluation import power as pw
from components.core.evaluation import stats
from components.core.evaluation.gate import GatePolicy


@pytest.mark.parametrize(
    ("n", "psi", "gain"), [(360, 0.06, 0.02), (1000, 0.1, 0.01), (80, 0.2, 0.1)]
)
def test_exact_rule_power_matches_the_exact_mcnemar_power(n, psi, gain):
    rule = pw.AccuracyRule(0.05, min_discordant=0)  # the plain exact test
    want = stats.mcnemar_power((psi - gain) / 2, (psi + gain) / 2, n, 0.05)
    assert pw.accuracy_power(rule, n, psi, gain) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize(
    ("policy", "scenario", "comparisons"),
    [
        (GatePolicy(), Scenario(n_rows=360, discordant=0.08, effect=0.03), 600),
        (GatePolicy(margin=0.02), Scenario(n_rows=300, discordant=0.12, effect=0.08), 300),
    ],
)
def test_power_claims_match_simulated_deploy_rates(policy, scenario, comparisons):
    """What the report claims for the rule that decides, against the real gate's deploy
    rate on simulated rows: within 2 Monte-Carlo standard errors (plus 0.01 slack)."""
    result = simulate(policy, scenario, comparisons, seed=5)
    rule = pw.AccuracyRule(policy.alpha, policy.margin, policy.mcnemar_method)
    claimed = pw.accuracy_power(rule, scenario.n_rows, scenario.discordant, scenario.effect)
    se = math.sqrt(claimed * (1 - claimed) / comparisons)
    assert abs(result.gate_rate - claimed) <= 2 * se + 0.01, (result.gate_rate, claimed)
    cells = cell_probabilities(scenario)
    assert cells[1] - cells[2] == pytest.approx(scenario.effect)


@pytest.mark.parametrize("margin", [0.0, 0.002, -0.01])
def test_the_normal_form_agrees_with_the_exact_sums_where_it_takes_over(margin):
    n, psi = 800_000, pw.NORMAL_FROM / 800_000
    rule = pw.AccuracyRule(0.05, margin)
    for gain in (margin + 0.0002, margin + 0.0005):
        k, first = rule.critical(n, psi, exact=False)
        from components.core.evaluation import paired

        exact = paired.rejection_probability(n, (psi - gain) / 2, (psi + gain) / 2, k, first)
        assert 0.05 < exact < 0.999
        assert pw.normal_power(rule, n, psi, gain) == pytest.approx(exact, abs=0.003)


def test_minimum_detectable_effect_and_rows_needed_reach_the_target_power():
    rule = pw.AccuracyRule(0.05)
    n, psi = 360, 0.08
    mde = pw.accuracy_mde(rule, n, psi, 0.8)
    assert pw.accuracy_power(rule, n, psi, mde) >= 0.8 > pw.accuracy_power(rule, n, psi, mde * 0.9)
    rows = pw.accuracy_rows_needed(rule, psi, 0.01, 0.8)
    assert pw.accuracy_power(rule, rows, psi, 0.01) >= 0.8
    assert pw.accuracy_power(rule, int(rows * 0.9), psi, 0.01) < 0.8
    # the textbook normal sample size for McNemar's test is close
    z = 1.6449 + 0.8416
    assert rows == pytest.approx((z * math.sqrt(psi - 1e-4) / 0.01) ** 2, rel=0.05)


def test_identical_predictions_read_as_identical_not_as_too_few_rows():
    from tests.core.test_gate import run

    d = run(cells=(300, 0, 0, 60))
    assert d.power.power_at_target is None and d.power.rows_for_target is None
    assert "identical on this data" in d.power.note
    assert "too small" not in d.reason


def test_auc_rule_power_matches_simulation_of_its_normal_law():
    rule = pw.AucRule(level=0.05, margin=0.0, se=0.01, df=10_000, n=1000)
    rng = np.random.default_rng(0)
    z = rng.normal(0.02 / 0.01, 1.0, 20_000)
    simulated = float(np.mean(z > 1.6449))
    assert rule.power(0.02) == pytest.approx(simulated, abs=0.01)
    assert rule.power(rule.mde(0.8)) == pytest.approx(0.8, abs=1e-3)
