"""The deploy gate: its promise under the null, margins, guardrails, first run, reasons."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gate_sim import Scenario, _proba, simulate

from components.core.errors import ConfigError
from components.core.evaluation.gate import GatePolicy, decide


def paired(n_both, n_new, n_old, n_wrong, k=10, seed=0):
    """Probability matrices with exactly these agreement cells."""
    rng = np.random.default_rng(seed)
    n = n_both + n_new + n_old + n_wrong
    y = rng.integers(0, k, n)
    new = np.r_[np.ones(n_both + n_new, bool), np.zeros(n_old + n_wrong, bool)]
    old = np.r_[
        np.ones(n_both, bool), np.zeros(n_new, bool), np.ones(n_old, bool), np.zeros(n_wrong, bool)
    ]
    return y, _proba(y, new, k), _proba(y, old, k)


def run(policy=None, cells=(300, 20, 4, 36), first_run=False, **kw):
    y, new, old = paired(*cells, **kw)
    return decide(
        policy or GatePolicy(), y, new, old, champion_name="version 1", first_run=first_run
    )


def test_false_deploy_rate_under_the_null_is_at_most_alpha():
    result = simulate(GatePolicy(), Scenario(), comparisons=800, seed=11)
    assert result.gate_rate <= 0.05 + 3 * result.gate_mc_error
    # ...while the naive "higher is better" rule deploys a no-better model far more often.
    assert result.naive_rate > 0.3
    assert result.gate_rate < result.naive_rate / 4


def test_power_at_a_real_effect():
    result = simulate(GatePolicy(), Scenario(effect=0.05), comparisons=300, seed=3)
    assert result.gate_rate > 0.85


def test_clear_win_deploys_with_plain_reason():
    d = run()
    assert d.deploy and d.p_value < 0.01
    assert d.counts.to_json() == {
        "test_rows": 360,
        "both_right": 300,
        "only_challenger_right": 20,
        "only_champion_right": 4,
        "both_wrong": 36,
    }
    assert d.reason.startswith("Deployed: the challenger is significantly better")
    assert "right on 20 where the champion (version 1) was wrong, and wrong on 4" in d.reason
    assert d.effect.accuracy_lower_bound > 0


def test_identical_models_never_pass():
    d = run(cells=(300, 0, 0, 60))
    assert not d.deploy and d.p_value == 1.0
    assert "same answer on all 360 test rows" in d.reason


def test_small_observed_gain_reads_as_power_at_the_target_effect_not_observed_power():
    d = run(cells=(300, 7, 5, 48))
    assert not d.deploy
    assert "too small to tell" not in d.reason and "observed_power" not in d.to_json()["power"]
    pw = d.power
    assert pw.target_effect == 0.01 and 0 < pw.power_at_target < 0.8
    assert pw.rows_for_target > 360
    # None: at 12 discordant rows of 360 not even an all-challenger split is found 80% of
    # the time (fewer than 10 discordant rows are not tested)
    assert pw.minimum_detectable_effect is None or pw.minimum_detectable_effect > 0.01
    assert "you need about " in d.reason
    assert "finds a gain of +1.0 points" in d.reason


def test_worse_challenger_reads_as_no_better():
    d = run(cells=(300, 3, 9, 48))
    assert not d.deploy and d.p_value > 0.5
    assert "no better" in d.reason


def test_margin_blocks_a_significant_but_small_gain():
    d = run(GatePolicy(margin=0.03), cells=(300, 20, 4, 36))
    assert not d.deploy
    failed = [c for c in d.checks if not c.passed]
    assert failed and "margin 0.03" in failed[0].name
    assert "not shown to be better by more than the margin 0.03" in d.reason
    # the same counts clear a smaller margin, and its bound says by how much
    ok = run(GatePolicy(margin=0.01), cells=(300, 20, 4, 36))
    assert ok.deploy and 0.01 < ok.effect.accuracy_lower_bound < 0.03


def test_guardrail_on_log_loss_blocks_a_badly_calibrated_challenger():
    y, new, old = paired(300, 20, 4, 36)
    overconfident = np.where(new == new.max(1, keepdims=True), 1.0 - 1e-9, 1e-9 / 9)
    overconfident[np.argmax(new, 1) != y] = np.eye(10)[(y + 1) % 10][np.argmax(new, 1) != y]
    policy = GatePolicy(guardrails=(("log_loss", 0.01),))
    d = decide(policy, y, overconfident, old, champion_name="v1", first_run=False)
    rail = [c for c in d.checks if c.name.startswith("log_loss")]
    assert rail and not rail[0].passed and not d.deploy


def test_minimum_test_size_refuses_to_promote():
    d = run(GatePolicy(min_test_rows=500))
    assert not d.deploy
    assert d.reason.startswith("Not deployed: only 360 test rows")


def test_first_run_accuracy_floor():
    ok = run(GatePolicy(accuracy_floor=0.7), first_run=True)
    assert ok.deploy
    high = run(GatePolicy(accuracy_floor=0.88), first_run=True)  # accuracy is 320/360
    assert not high.deploy
    floor = [c for c in high.checks if "floor" in c.name][0]
    assert not floor.passed and floor.p_value >= 0.05


def test_auc_primary_uses_delong_and_holm_with_two_metrics():
    rng = np.random.default_rng(5)
    n = 400
    y = rng.integers(0, 2, n)
    strong = np.clip(y * 0.6 + rng.normal(0.2, 0.25, n), 0, 1)
    weak = np.clip(y * 0.2 + rng.normal(0.4, 0.25, n), 0, 1)
    new, old = np.c_[1 - strong, strong], np.c_[1 - weak, weak]
    one = decide(
        GatePolicy(primary_metrics=("auc",)), y, new, old, champion_name="v", first_run=False
    )
    assert one.deploy and "DeLong" in one.test
    assert one.effect.auc_challenger > one.effect.auc_champion
    two = decide(
        GatePolicy(primary_metrics=("accuracy", "auc")),
        y,
        new,
        old,
        champion_name="v",
        first_run=False,
    )
    adjusted = {c.name: c.p_adjusted for c in two.checks if c.p_adjusted is not None}
    raw = {c.name: c.p_value for c in two.checks if c.p_adjusted is not None}
    assert "Holm" in two.test
    assert "significantly better than the champion (v) on " in two.reason
    assert "ROC AUC" in two.reason and "(Holm-adjusted)" in two.reason
    assert min(adjusted.values()) == pytest.approx(min(2 * min(raw.values()), 1.0))


def test_auc_needs_a_binary_label():
    with pytest.raises(ConfigError, match="binary"):
        run(GatePolicy(primary_metrics=("auc",)))


def test_decision_is_strict_json():
    d = run(cells=(300, 0, 0, 60))
    json.dumps(d.to_json(), allow_nan=False)


# The decision record as registry histories and the register step read it: key names, key
# order, words and numbers for one fixed input (first run, margin, guardrail, floor).
GOLDEN_DECISION = {
    "deploy": True,
    "task": "classification",
    "p_value": 0.004997964979215844,
    "reason": "Deployed: the challenger is better than the majority-class baseline by more than "
    "0.01. On 360 test rows the challenger was right on 20 where the majority-class "
    "baseline was wrong, and wrong on 4 where it was right; accuracy 0.889 vs 0.844 "
    "(+4.4 points), 95% lower bound +2.1 points; p = 0.005 < alpha 0.05.",
    "test": "one-sided exact unconditional score test on accuracy (H0: gain <= 0.01)",
    "alpha": 0.05,
    "alpha_means": "if the challenger were no better, this check would deploy it in at most 5% "
    "of runs; it is not the chance that a deployed model is no better (that "
    "depends on how often challengers are better)",
    "level": 0.05,
    "accounting": None,
    "margin": 0.01,
    "counts": {
        "test_rows": 360,
        "both_right": 300,
        "only_challenger_right": 20,
        "only_champion_right": 4,
        "both_wrong": 36,
    },
    "effect": {
        "accuracy_challenger": 0.8888888888888888,
        "accuracy_champion": 0.8444444444444444,
        "accuracy_difference": 0.0444444444444444,
        "accuracy_lower_bound": 0.02135256748567057,
    },
    "power": {
        "rule": "one-sided exact unconditional score test on accuracy (H0: gain <= 0.01); "
        "guardrails (all must pass): log_loss within 0.05",
        "method": "simulated (20,000 draws): accuracy cells exact (multinomial, the tests' "
        "exact critical counts); log_loss from their normal law at the observed standard "
        "errors, correlated as the rows' influence values are; each primary metric gaining "
        "target_effect, guardrail-only metrics unchanged",
        "target_effect": 0.01,
        "power_at_target": 0.03565,
        "minimum_detectable_effect": None,
        "rows_for_target": None,
        "target_power": 0.8,
        "discordant_rate": 0.06666666666666667,
        "note": "with unchanged guardrail metrics the guardrails pass less than 80% of the "
        "time at this size, whatever the primary gain",
        "simulation_se": 0.0013110888127811937,
    },
    "bayes": {
        "prior": "Jeffreys: Dirichlet(1/2, 1/2, 1/2, 1/2) on the four agreement cells",
        "margin": 0.01,
        "posterior_mean_gain": 0.04419764578241784,
        "p_better": 0.9996608980928277,
        "p_gain_above_margin": 0.9960590852566775,
        "expected_loss_deploy": 1.632274621123123e-05,
        "expected_loss_keep": 0.03421396852862907,
        "costs": "each point of accuracy lost by deploying a challenger below the margin "
        "costs the same as each point forgone by keeping a champion the "
        "challenger beats by more than the margin",
        "bayes_choice": "deploy",
    },
    "checks": [
        {
            "check": "accuracy better by more than the margin 0.01",
            "p_value": 0.004997964979215844,
            "p_adjusted": 0.004997964979215844,
            "estimate": 0.044444444444444446,
            "lower_bound": 0.02135256748567057,
            "passed": True,
        },
        {
            "check": "log_loss non-inferior within 0.05",
            "estimate": 0.19530885131877507,
            "lower_bound": 0.09765442565938753,
            "approximate": True,
            "passed": True,
        },
        {
            "check": "accuracy significantly above floor 0.7",
            "accuracy": 0.8888888888888888,
            "p_value": 1.0629211130327394e-17,
            "passed": True,
        },
        {"check": "at least 30 test rows", "test_rows": 360, "passed": True},
    ],
    "champion": "majority-class baseline",
    "metrics": {},
    "improvement_ci": {
        "accuracy": {
            "estimate": 0.044444444444444446,
            "low": 0.02135256748567057,
            "high": 0.06911778835308577,
            "method": "score inversion",
        },
        "macro_f1": {
            "estimate": 0.04668477997772846,
            "low": 0.0256007472473397,
            "high": 0.07257811397031617,
            "method": "label cells bca",
        },
        "log_loss": {
            "estimate": 0.19530885131877507,
            "low": 0.09765442565938753,
            "high": 0.30517008018558606,
            "method": "rows bca",
        },
    },
}


def _assert_same(got, want, where="decision"):
    """Same keys in the same order, same words, numbers equal to 1e-9."""
    if isinstance(want, dict):
        assert list(got) == list(want), where
        for key in want:
            _assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-15), where
    else:
        assert got == want and type(got) is type(want), where


def test_decision_record_matches_the_golden_one():
    y, new, old = paired(300, 20, 4, 36)
    policy = GatePolicy(
        margin=0.01,
        guardrails=(("log_loss", 0.05),),
        accuracy_floor=0.7,
        bootstrap_resamples=2000,
    )
    d = decide(policy, y, new, old, champion_name="majority-class baseline", first_run=True)
    _assert_same(json.loads(json.dumps(d.to_json(), allow_nan=False)), GOLDEN_DECISION)


def test_without_explanation_the_decision_is_the_same():
    y, new, old = paired(300, 20, 4, 36)
    full = decide(GatePolicy(), y, new, old, champion_name="v", first_run=False)
    quick = decide(GatePolicy(), y, new, old, champion_name="v", first_run=False, explain=False)
    assert (quick.deploy, quick.p_value, quick.reason) == (full.deploy, full.p_value, full.reason)
    assert quick.to_json()["power"] == {} and quick.to_json()["improvement_ci"] == {}


def test_a_berger_boos_p_value_at_its_floor_prints_as_at_most():
    """With a margin the exact unconditional p-value cannot go below gamma = 0.001 x alpha;
    at that floor it means "at most this", and the words say so."""
    from components.core.evaluation import paired

    d = run(GatePolicy(margin=0.01), cells=(300, 120, 2, 20))
    assert d.deploy
    floor = paired.GAMMA_SHARE * 0.05
    assert d.p_value == pytest.approx(floor)
    assert "p <= 5.0e-05" in d.reason and "p = 5.0e-05" not in d.reason
    # away from the floor it stays "p ="
    d2 = run(GatePolicy(margin=0.01), cells=(300, 40, 12, 36))
    assert d2.p_value > floor * 1.01 and "p <= " not in d2.reason
