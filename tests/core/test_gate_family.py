"""One family-wise decision (issue 13): H0 "gain <= margin" per primary metric with Holm,
guardrails as intersection-union, minimum counts that match each test, and a first run that
a useless model cannot pass."""

from __future__ import annotations

import numpy as np
import pytest
from gate_sim import _proba

from components.core.evaluation.gate import (
    MIN_CLASS_ROWS,
    MIN_DISCORDANT_ROWS,
    GatePolicy,
    decide,
)


def _cells(n_both, n_new, n_old, n_wrong, k=10, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n_both + n_new + n_old + n_wrong)
    new = np.r_[np.ones(n_both + n_new, bool), np.zeros(n_old + n_wrong, bool)]
    old = np.r_[
        np.ones(n_both, bool), np.zeros(n_new, bool), np.ones(n_old, bool), np.zeros(n_wrong, bool)
    ]
    return y, _proba(y, new, k), _proba(y, old, k)


def _ranking_case():
    """The audit's case (issue 13): champion scores near 0.5; challenger B nudges the rows
    near the threshold towards the truth (better accuracy and a small, significant AUC gain);
    challenger C makes the same predictions with no ranking inside each side (no AUC gain)."""
    rng = np.random.default_rng(3)
    n = 3000
    y = rng.integers(0, 2, n)
    old = np.clip(0.5 + 0.06 * (2 * y - 1) + rng.normal(0, 0.05, n), 0.001, 0.999)
    near = np.abs(old - 0.5) < 0.02
    b = np.where(near, np.clip(old + 0.02 * (2 * y - 1), 0.001, 0.999), old)
    c = np.where(b > 0.5, 0.51, 0.49)

    def m(p):
        return np.c_[1 - p, p]

    return y, m(b), m(c), m(old)


def test_ranking_better_never_blocks_a_deploy_the_same_accuracy_evidence_earns():
    # B and C make the same predictions (identical accuracy evidence); B also ranks better
    # (its AUC gain is significant but below the margin). The old rule ("significant, then
    # every significant metric's bound above the margin") blocked B and deployed C. Here each
    # primary metric tests "gain <= margin" and either can carry the decision (Holm).
    y, b, c, old = _ranking_case()
    assert (b.argmax(1) == c.argmax(1)).all()
    policy = GatePolicy(primary_metrics=("accuracy", "auc"), margin=0.02)
    db = decide(policy, y, b, old, champion_name="v", first_run=False, explain=False)
    dc = decide(policy, y, c, old, champion_name="v", first_run=False, explain=False)
    assert db.deploy and dc.deploy
    auc_b = {ch.name: ch for ch in db.checks}["auc better by more than the margin 0.02"]
    auc_c = {ch.name: ch for ch in dc.checks}["auc better by more than the margin 0.02"]
    assert 0 < auc_b.estimate < 0.02 + 0.01 and auc_b.p_value < auc_c.p_value
    # monotone by construction: lowering any one p-value never turns a deploy into a keep
    from components.core.evaluation.gate import _holm

    rng = np.random.default_rng(0)
    for _ in range(200):
        p = list(rng.random(2) ** 3)
        before = min(_holm(p)) < 0.05
        p[rng.integers(2)] *= rng.random()
        assert (min(_holm(p)) < 0.05) >= before


def test_fewer_than_two_positives_says_so_instead_of_crashing():
    rng = np.random.default_rng(1)
    y = np.zeros(200, int)
    y[:1] = 1
    new, old = rng.dirichlet(np.ones(2), 200), rng.dirichlet(np.ones(2), 200)
    for policy in (
        GatePolicy(primary_metrics=("auc",)),
        GatePolicy(guardrails=(("auc", 0.02),)),
    ):
        d = decide(policy, y, new, old, champion_name="v", first_run=False)
        assert not d.deploy
        untested = [c for c in d.checks if c.untested]
        assert untested and "1 positive and 199 negative" in untested[0].untested
        assert f"at least {MIN_CLASS_ROWS} of each" in untested[0].untested
    only_auc = decide(
        GatePolicy(primary_metrics=("auc",)), y, new, old, champion_name="v", first_run=False
    )
    assert only_auc.reason.startswith("Not deployed: too few rows of each class to test ROC AUC")


def test_too_few_discordant_rows_is_a_reason_not_a_silent_pass():
    y, new, old = _cells(300, MIN_DISCORDANT_ROWS - 1, 0, 51)
    d = decide(GatePolicy(), y, new, old, champion_name="v", first_run=False)
    assert not d.deploy
    assert d.reason.startswith("Not deployed: too few discordant rows to test accuracy: 9 rows")
    y, new, old = _cells(300, MIN_DISCORDANT_ROWS, 0, 50)
    assert decide(GatePolicy(), y, new, old, champion_name="v", first_run=False).deploy


def test_accuracy_guardrail_is_an_exact_non_inferiority_test():
    from components.core.evaluation import paired

    # 3 rows the challenger loses, 1 it wins: worse by 0.5 points on 400 rows
    y, new, old = _cells(360, 1, 3, 36)
    policy = GatePolicy(primary_metrics=("accuracy",), guardrails=(("accuracy", 0.03),))
    d = decide(policy, y, new, old, champion_name="v", first_run=False)
    rail = [c for c in d.checks if c.name == "accuracy non-inferior within 0.03"][0]
    assert rail.p_value == pytest.approx(paired.margin_test(3, 1, 400, -0.03, 0.05).pvalue)
    assert rail.passed and rail.lower_bound > -0.03
    tight = GatePolicy(guardrails=(("accuracy", 0.001),))
    rail = [c for c in decide(tight, y, new, old, champion_name="v", first_run=False).checks][-2]
    assert rail.name.startswith("accuracy non-inferior") and not rail.passed


def test_first_run_a_useless_model_beats_majority_but_not_the_logistic_guard():
    # 10 classes; the guard (a logistic regression) is right on 90% of rows. A challenger
    # right on 16.6% beats the majority-class baseline (about 10%), which alone deployed it
    # before; it is shown far worse than the guard, so it is not deployed now.
    rng = np.random.default_rng(7)
    n, k = 385, 10
    y = rng.integers(0, k, n)
    majority = np.full(n, np.bincount(y).argmax())
    majority_proba = np.eye(k)[majority] * 0.5 + 0.05
    guard_right = rng.random(n) < 0.9
    useless_right = rng.random(n) < 0.166
    guard = ("logistic-regression baseline", _proba(y, guard_right, k))
    d = decide(
        GatePolicy(),
        y,
        _proba(y, useless_right, k),
        majority_proba,
        champion_name="majority-class baseline",
        first_run=True,
        guard=guard,
    )
    assert not d.deploy
    checks = {c.name: c for c in d.checks}
    assert checks["accuracy significantly better"].passed  # it does beat majority...
    fence = checks["within 0.05 of the logistic-regression baseline (not shown worse by more)"]
    assert not fence.passed and fence.p_value < 1e-4  # ...but is far worse than logistic
    assert "failed: within 0.05 of the logistic-regression baseline" in d.reason
    # without the guard the old rule deploys it
    old = decide(
        GatePolicy(first_run_guard="none"),
        y,
        _proba(y, useless_right, k),
        majority_proba,
        champion_name="majority-class baseline",
        first_run=True,
    )
    assert old.deploy
    # a model about as good as the guard deploys on the first run
    good_right = guard_right ^ (rng.random(n) < 0.03)
    ok = decide(
        GatePolicy(),
        y,
        _proba(y, good_right, k),
        majority_proba,
        champion_name="majority-class baseline",
        first_run=True,
        guard=guard,
    )
    assert ok.deploy and ok.reason.startswith(
        "Deployed: the challenger is significantly better than the majority-class baseline"
    )
    assert [c.passed for c in ok.checks if "logistic" in c.name] == [True]


def test_the_first_run_guard_reaches_decide_through_compare():
    from components.core.evaluation.compare import Scored

    y = np.arange(40) % 2
    proba = np.eye(2)[y]
    scored = Scored(y, proba, proba, [0, 1], "majority-class baseline", True, ("g", proba))
    use = np.arange(40) < 30
    assert scored.subset(use).guard[1].shape == (30, 2)
