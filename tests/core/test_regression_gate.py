"""The regression gate (evaluation/regression_gate.py): its decisions, units, power at the
pre-declared effect, guardrails, first-run guard and a null simulation through the whole
rule; and what a regression target allows of the gate policy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from components.core.errors import ConfigError
from components.core.evaluation.gate import GatePolicy
from components.core.evaluation.regression_gate import decide_regression, skill_unit
from tests.core.test_regression_stats import _pair

TARGET = {"mean": 0.0, "scale": 3.0, "mad": 2.4}  # variance 9: a skill gain of 0.01 = 0.09 of MSE


def _decide(policy: GatePolicy, y, new, old, **kw):
    kw.setdefault("champion_name", "version 2")
    kw.setdefault("first_run", False)
    return decide_regression(policy, y, new, old, target=TARGET, **kw)


def test_a_better_regressor_deploys_with_scipys_p_value_and_says_why():
    y, new, old = _pair(1, n=300, gain=0.4)
    d = _decide(GatePolicy(), y, new, old)
    ref = sps.ttest_rel((old - y) ** 2, (new - y) ** 2, alternative="greater")
    assert d.deploy and d.task == "regression"
    assert d.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert d.reason.startswith("Deployed: the challenger's mean squared error is significantly")
    assert "version 2" in d.reason and "of the target's variance" in d.reason
    # the improvement in skill is the MSE gain over the training variance
    gain = float(np.mean((old - y) ** 2 - (new - y) ** 2))
    assert d.effect.regression["improvement"] == pytest.approx(gain)
    assert d.effect.regression["improvement_skill"] == pytest.approx(gain / 9.0)
    # the one-sided lower bound is the t-test's own: above 0 exactly when p < level
    low = d.checks[0].lower_bound
    assert low is not None and low > 0
    ci = d.improvement_ci["mse"]
    assert ci.low < gain < ci.high and ci.method == "percentile"
    json = d.to_json()
    assert (
        json["task"] == "regression"
        and json["effect"]["mse_challenger"] < json["effect"]["mse_champion"]
    )


def test_the_same_model_is_not_deployed_and_the_reason_gives_power_at_the_target():
    y, new, old = _pair(2, n=300, gain=0.0)
    d = _decide(GatePolicy(), y, new, old)
    assert not d.deploy and d.reason.startswith("Not deployed")
    pw = d.power
    # power at the pre-declared effect (a skill gain of 0.01 = 0.09 of MSE), from the spread
    sd = float(np.std((old - y) ** 2 - (new - y) ** 2, ddof=1))
    z = sps.norm.isf(0.05)
    expected = sps.norm.sf(z - 0.01 * 9.0 / (sd / math.sqrt(len(y))))
    assert pw.power_at_target == pytest.approx(expected, rel=1e-9)
    assert pw.rows_for_target == math.ceil(((z + sps.norm.ppf(0.8)) * sd / 0.09) ** 2)
    assert f"{pw.power_at_target:.0%} of the time" in d.reason


def test_power_is_at_the_target_effect_not_the_observed_gain():
    """Two comparisons with the same spread but different observed gains: the same power."""
    y, new, old = _pair(3, n=300, gain=0.0)
    d0 = _decide(GatePolicy(), y, new, old)
    d = (old - y) ** 2 - (new - y) ** 2
    shift = 0.5  # move every row's improvement: the mean changes, the spread does not
    new2 = y + np.sign(new - y) * np.sqrt(np.maximum((new - y) ** 2 - shift, 0))
    keep = (new - y) ** 2 >= shift
    d1 = _decide(GatePolicy(), y[keep], new2[keep], old[keep])
    d0k = _decide(GatePolicy(), y[keep], new[keep], old[keep])
    assert d1.effect.regression["improvement"] > d0k.effect.regression["improvement"]
    assert d1.power.power_at_target == pytest.approx(d0k.power.power_at_target, rel=1e-6)
    assert d0.power.target_effect == 0.01 and np.isfinite(d.std())


def test_margin_is_in_skill_points():
    y, new, old = _pair(4, n=2000, gain=0.3)
    observed = _decide(GatePolicy(), y, new, old).effect.regression["improvement_skill"]
    # a margin just below the observed gain is passed only with strong evidence; one well
    # above it never is
    assert not _decide(GatePolicy(margin=min(0.99, observed * 1.5)), y, new, old).deploy
    at = _decide(GatePolicy(margin=observed), y, new, old)
    assert at.p_value == pytest.approx(0.5, abs=0.01)  # H0 mean = margin: t = 0


def test_absolute_error_and_wilcoxon():
    y, new, old = _pair(5, n=300, gain=0.4)
    policy = GatePolicy(regression_error="absolute", regression_test="wilcoxon")
    d = _decide(policy, y, new, old)
    ref = sps.wilcoxon(np.abs(old - y) - np.abs(new - y), alternative="greater")
    assert d.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert d.deploy and "mean absolute error" in d.reason
    # the signed-rank test speaks of a typical row, not of the mean
    assert "absolute errors are significantly smaller than the champion (version 2)'s on a" in (
        d.reason
    )
    assert d.effect.regression["improvement_skill"] == pytest.approx(
        d.effect.regression["improvement"] / 2.4
    )
    assert skill_unit("absolute", {"mean": 0.0, "scale": 1.0}) == pytest.approx(
        math.sqrt(2 / math.pi)
    )


def test_a_failed_guardrail_blocks_a_deploy():
    """Better on squared error by shrinking big misses, worse on absolute error everywhere."""
    rng = np.random.default_rng(13)
    y = np.zeros(2000)
    old = rng.choice([0.0, 10.0], size=2000, p=[0.9, 0.1])
    new = np.full(2000, 1.5)
    target = {"mean": 0.0, "scale": 1.0, "mad": 1.0}
    policy = GatePolicy(guardrails=(("mae", 0.1),))
    d = decide_regression(
        policy, y, new, old, target=target, champion_name="version 1", first_run=False
    )
    assert d.checks[0].passed and not d.deploy
    assert "failed: mae non-inferior within 0.1" in d.reason


def test_first_run_guard_stops_a_model_far_worse_than_least_squares():
    y, new, old = _pair(6, n=300, gain=0.0)
    mean_pred = np.zeros_like(y)  # the training mean
    # a challenger better than the mean but far worse than the linear guard
    challenger = y + np.random.default_rng(0).normal(scale=2.0, size=len(y))
    d = _decide(
        GatePolicy(),
        y,
        challenger,
        mean_pred,
        champion_name="training-mean baseline",
        first_run=True,
        guard=("linear-regression baseline", old),
    )
    assert d.checks[0].passed and not d.deploy
    assert "within 0.05 of the linear-regression baseline" in d.reason


def test_too_few_rows():
    y, new, old = _pair(7, n=20, gain=0.5)
    d = _decide(GatePolicy(), y, new, old)
    assert not d.deploy and "fewer than the 30" in d.reason


@pytest.mark.parametrize("method", ["ttest", "wilcoxon"])
def test_the_whole_rule_deploys_a_no_better_regressor_at_most_alpha_of_the_time(method):
    """Null simulation through decide_regression: both models' errors from one heavy-tailed
    distribution, 100 rows, 1,000 comparisons, alpha 0.05."""
    rng = np.random.default_rng(17)
    policy = GatePolicy(regression_test=method)
    sims, n, deployed = 1000, 100, 0
    for _ in range(sims):
        y = rng.normal(size=n)
        new = y + rng.standard_t(4, size=n)
        old = y + rng.standard_t(4, size=n)
        deployed += _decide(policy, y, new, old, explain=False).deploy
    rate = deployed / sims
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / sims)
    assert rate > 0.01  # the test is not simply refusing everything


def test_policy_refuses_classification_settings_for_a_regression_target():
    with pytest.raises(ConfigError, match="regression target: primary metric auc needs classes"):
        GatePolicy(primary_metrics=("auc",)).check_task("regression", 200, "price")
    with pytest.raises(ConfigError, match="guardrail log_loss needs classes"):
        GatePolicy(guardrails=(("log_loss", 0.05),)).check_task("regression", 200, "price")
    with pytest.raises(ConfigError, match="guardrail mse is for a regression target"):
        GatePolicy(guardrails=(("mse", 0.05),)).check_task("classification", 2, "y")
    GatePolicy(guardrails=(("mae", 0.05),)).check_task("regression", 200, "price")
    with pytest.raises(ConfigError, match="regression_test='sign'"):
        GatePolicy(regression_test="sign")


def test_first_run_baselines_through_compare(tmp_path):
    """A regressor's first run: ``majority`` reads as the training mean, ``logistic`` as
    least squares on the challenger's features (the guard), both fitted on the train rows;
    a classifier champion cannot be compared with it."""
    from components.core.errors import SchemaMismatchError
    from components.core.evaluation.compare import compare
    from components.core.model.bundle import load_bundle
    from tests.serving.regression_bundle import TARGET, regression_frame, train_regression_bundle

    frame = regression_frame(900, seed=3)
    train, test = frame.iloc[:600].reset_index(drop=True), frame.iloc[600:].reset_index(drop=True)
    bundle = load_bundle(train_regression_bundle(tmp_path / "m", train, max_epochs=60))
    ev = compare(bundle, test, GatePolicy(), train_df=train)
    assert ev.task == "regression" and ev.decision.champion == "training-mean baseline"
    assert ev.champion["rmse"] == pytest.approx(
        float(np.sqrt(np.mean((test[TARGET] - train[TARGET].mean()) ** 2))), rel=1e-9
    )
    guard = next(c for c in ev.decision.checks if "linear-regression baseline" in c.name)
    assert guard.p_value is not None
    linear = compare(bundle, test, GatePolicy(baseline="logistic"), train_df=train)
    assert linear.decision.champion == "linear-regression baseline"
    # the data are linear: least squares is close to the truth, far better than the mean
    assert linear.champion["r2"] > 0.9 > ev.champion["r2"]
    assert len(ev.points["actual"]) == len(test) == len(ev.points["challenger"])
    with pytest.raises(SchemaMismatchError, match="is a regressor and this run's label"):
        bundle.check_task("classification", "champion version 1 of 'prices-mlp'")
