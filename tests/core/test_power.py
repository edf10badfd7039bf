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


def _binary_rows(rng, n, strength, sharpness):
    """Two correlated binary scorers; the challenger's class separation ``strength`` (the
    champion's is 1.2) and probability ``sharpness`` (1: as calibrated as the champion)."""
    y = (rng.random(n) < 0.4).astype(np.int64)
    shared = rng.normal(size=n)

    def proba(score, sharp):
        p = 1 / (1 + np.exp(-sharp * (score - 0.6)))
        return np.c_[1 - p, p]

    new = proba(strength * y + shared + rng.normal(size=n), sharpness)
    old = proba(1.2 * y + shared + rng.normal(size=n), 1.0)
    return y, new, old


def _population_gains(strength, sharpness):
    """The true gains, from 2 million rows: accuracy and log loss (sklearn's), ROC AUC
    (scikit-learn's roc_auc_score, an independent implementation)."""
    from sklearn.metrics import log_loss, roc_auc_score

    y, new, old = _binary_rows(np.random.default_rng(99), 2_000_000, strength, sharpness)
    return {
        "accuracy": float(np.mean(new.argmax(1) == y) - np.mean(old.argmax(1) == y)),
        "auc": float(roc_auc_score(y, new[:, 1]) - roc_auc_score(y, old[:, 1])),
        "log_loss": float(log_loss(y, old) - log_loss(y, new)),
    }


@pytest.mark.parametrize(
    ("policy", "strength", "sharpness"),
    [
        (GatePolicy(primary_metrics=("accuracy", "auc")), 1.35, 1.0),
        (GatePolicy(guardrails=(("log_loss", 0.04),), bootstrap_resamples=1000), 1.4, 1.4),
    ],
    ids=["holm_accuracy_auc", "log_loss_guardrail"],
)
def test_simulated_power_of_the_whole_rule_matches_the_real_gate(policy, strength, sharpness):
    """The whole rule (Holm over accuracy and ROC AUC; a guardrail as intersection-union):
    the power its model claims from one sample of rows, at the true gains, against the real
    gate's deploy rate on fresh samples: within 2 Monte-Carlo s.e. (plus 0.01 slack for the
    standard errors estimated on one sample)."""
    from components.core.evaluation import gate

    n, comparisons = 1500, 400
    gains = _population_gains(strength, sharpness)
    rng = np.random.default_rng(3)
    y, new, old = _binary_rows(rng, n, strength, sharpness)
    rows = gate._Rows.of(y, new, old)
    counts = gate._count_cells(rows)
    tests = [gate._primary_test(policy, rows, counts, m, 0.0) for m in policy.primary_metrics]
    model = gate.rule_model(policy, counts, tests, 0.0, rows)
    claimed, claim_se = model.power_at(gains)
    deployed = 0
    for _ in range(comparisons):
        y, new, old = _binary_rows(rng, n, strength, sharpness)
        d = gate.decide(policy, y, new, old, champion_name="c", first_run=False, explain=False)
        deployed += d.deploy
    rate = deployed / comparisons
    se = math.sqrt(claimed * (1 - claimed) / comparisons + claim_se**2)
    assert 0.1 < claimed < 0.9  # a regime where the guardrail or Holm matters
    assert abs(rate - claimed) <= 2 * se + 0.01, (rate, claimed, gains)
    # and the parts matter: the guardrail/second metric moves the claim
    single = GatePolicy()
    alone = pw.accuracy_power(
        pw.AccuracyRule(single.alpha), n, counts.discordant / n, gains["accuracy"]
    )
    assert abs(alone - claimed) > 2 * se, (alone, claimed)


def test_the_decision_says_which_parts_are_simulated():
    y, new, old = _binary_rows(np.random.default_rng(4), 800, 1.35, 1.0)
    from components.core.evaluation.gate import decide

    d = decide(
        GatePolicy(primary_metrics=("accuracy", "auc")), y, new, old,
        champion_name="c", first_run=False,
    )  # fmt: skip
    assert d.power.method.startswith("simulated")
    assert "accuracy cells exact" in d.power.method and "auc" in d.power.method
    assert 0 < d.power.simulation_se < 0.004
    assert d.power.power_at_target is not None
    # the exact path stays exact for accuracy alone
    d1 = decide(GatePolicy(), y, new, old, champion_name="c", first_run=False)
    assert d1.power.simulation_se is None and d1.power.method.startswith("exact")
