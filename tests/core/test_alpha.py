"""Error control across runs: the levels each accounting gives, their promise by simulation,
fresh rows, and the selection-adjusted gain."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from gate_sim import RowModel, contested_rows, discordant_counts, mcnemar_greater, right_on

from components.core.errors import ConfigError
from components.core.evaluation import alpha as acct
from components.core.evaluation import stats
from components.core.evaluation.alpha import AlphaPolicy, LedgerEntry


def entry(champion, deployed=False, level=0.025, accounting="per_champion", rows=(), **kw):
    return LedgerEntry(
        champion=champion,
        challenger=kw.pop("challenger", "run"),
        accounting=accounting,
        level=level,
        deployed=deployed,
        rows=np.asarray(rows),
        **kw,
    )


# --------------------------------------------------------------------------------------
# Reference values
# --------------------------------------------------------------------------------------


def test_spending_sequence_values_and_telescoping_sum():
    assert acct.spending(1) == 0.5
    assert acct.spending(2) == pytest.approx(1 / 6)
    assert acct.spending(3) == pytest.approx(1 / 12)
    assert acct.spending(0) == 0.0
    for k in (1, 2, 5, 20, 52, 1000):  # sum_{j<=K} 1/(j(j+1)) = K/(K+1), exactly
        exact = sum(Fraction(1, j * (j + 1)) for j in range(1, k + 1))
        assert exact == Fraction(k, k + 1)
        assert acct.spending(np.arange(1, k + 1)).sum() == pytest.approx(k / (k + 1), rel=1e-12)
    gammas = acct.spending(np.arange(1, 200))
    assert (np.diff(gammas) <= 0).all()  # non-increasing, as LORD++ needs


def test_per_champion_levels_never_spend_more_than_alpha():
    levels = acct.per_champion_level(0.05, np.arange(1, 10_001))
    assert levels[:3] == pytest.approx([0.025, 0.05 / 6, 0.05 / 12])
    assert levels.sum() < 0.05
    assert 0.05 - levels.sum() == pytest.approx(0.05 / 10_001)  # alpha / (K + 1) is left


def lord_by_hand(alpha, history, w0_share=0.5):
    """LORD++ (Ramdas et al. 2017) written out term by term, with gamma_j = 1/(j(j+1))."""
    gamma = lambda j: 1 / (j * (j + 1)) if j >= 1 else 0.0  # noqa: E731
    t = len(history) + 1
    w0 = w0_share * alpha
    taus = [s + 1 for s, d in enumerate(history) if d]
    level = gamma(t) * w0
    for j, tau in enumerate(taus):
        level += (alpha - w0 if j == 0 else alpha) * gamma(t - tau)
    return level


def test_lord_levels_match_the_published_formula():
    # t = 5, deploys at 2 and 4: gamma_5 W0 + (alpha - W0) gamma_3 + alpha gamma_1
    history = [False, True, False, True]
    expected = 0.025 / 30 + 0.025 / 12 + 0.05 / 2
    assert acct.lord_levels(0.05, np.array(history))[0] == pytest.approx(expected, rel=1e-12)
    assert lord_by_hand(0.05, history) == pytest.approx(expected, rel=1e-12)
    assert acct.lord_levels(0.05, np.zeros(0, bool))[0] == pytest.approx(0.0125)  # W0 gamma_1
    rng = np.random.default_rng(0)
    histories = rng.random((200, 30)) < 0.3
    vectorised = acct.lord_levels(0.05, histories)
    for h, level in zip(histories, vectorised, strict=True):
        assert level == pytest.approx(lord_by_hand(0.05, list(h)), rel=1e-12)
        assert 0 < level <= 0.05  # never more lenient than one comparison at alpha


# --------------------------------------------------------------------------------------
# The account: the level the next comparison gets
# --------------------------------------------------------------------------------------


def test_account_per_champion_counts_attempts_against_this_champion_only():
    policy = AlphaPolicy()
    assert policy.accounting == acct.DEFAULT_ACCOUNTING == "per_champion"
    first = acct.account(policy, [], "3")
    assert (first.level, first.attempt, first.spent_before) == (0.025, 1, 0.0)
    history = [entry("3", level=0.025), entry("3", level=0.05 / 6), entry("2", level=0.025)]
    third = acct.account(policy, history, "3")
    assert third.attempt == 3
    assert third.level == pytest.approx(0.05 / 12)
    assert third.spent_before == pytest.approx(0.025 + 0.05 / 6)
    # a new champion starts a fresh budget; a rollback to "2" continues its own count
    assert acct.account(policy, history, "4").level == 0.025
    assert acct.account(policy, history, "2").level == pytest.approx(0.05 / 6)
    assert "however many attempts" in third.promise
    assert third.to_json()["level"] == third.level


def test_account_per_champion_never_overdraws_when_alpha_changed():
    history = [entry("3", level=0.04), entry("3", level=0.009)]
    account = acct.account(AlphaPolicy(alpha=0.05), history, "3")
    assert account.level == pytest.approx(0.001)  # alpha/12 would overdraw: what is left
    assert acct.account(AlphaPolicy(alpha=0.04), history, "3").level == 0.0


def test_account_ignores_entries_of_another_accounting():
    history = [entry("3", level=0.05, accounting="per_comparison")] * 5
    assert acct.account(AlphaPolicy(), history, "3").level == 0.025
    per_comparison = acct.account(AlphaPolicy(accounting="per_comparison"), history, "3")
    assert (per_comparison.level, per_comparison.attempt) == (0.05, 6)


def test_account_stream_is_lord_over_every_decision():
    history = [
        entry("", deployed=True, accounting="stream"),
        entry("1", accounting="stream"),
        entry("1", deployed=True, accounting="stream", challenger="2"),
        entry("2", accounting="stream"),
    ]
    account = acct.account(AlphaPolicy(accounting="stream"), history, "2")
    assert account.attempt == 5 and account.deploys_before == 2
    assert account.level == pytest.approx(lord_by_hand(0.05, [True, False, True, False]))


def test_account_entry_records_the_level_and_round_trips_json():
    account = acct.account(AlphaPolicy(), [], "3")
    e = account.entry(challenger="4", p_value=0.01, deployed=True, rows=["a", "b"])
    assert (e.champion, e.level, e.accounting, e.deployed) == ("3", 0.025, "per_champion", True)
    back = LedgerEntry.from_json(e.to_json())
    assert (
        back.to_json()
        == e.to_json()
        == {
            "champion": "3",
            "challenger": "4",
            "accounting": "per_champion",
            "level": 0.025,
            "deployed": True,
            "p_value": 0.01,
            "rows": ["a", "b"],
        }
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"accounting": "per_run"}, "accounting='per_run' must be one of"),
        ({"alpha": 1.5}, "alpha=1.5 must be between 0 and 1"),
        ({"min_fresh_rows": 0}, "min_fresh_rows=0 must be >= 1"),
    ],
)
def test_policy_rejects_bad_values_in_one_line(kwargs, message):
    with pytest.raises(ConfigError, match=message) as err:
        AlphaPolicy(**kwargs)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------------------
# The promise, by simulation (vectorised, small)
# --------------------------------------------------------------------------------------


def retry_until_deploy(levels, replicates=3000, rows=500, seed=0):
    """P(ever a false deploy) when no-better challengers are retried on the same rows
    against one champion, the k-th at levels[k - 1] (gate_sim's shared-rows model)."""
    rng = np.random.default_rng(seed)
    model = RowModel()
    test = contested_rows(rng, replicates, rows, model.contested)
    champion = right_on(rng, model.quality, test)
    ever = np.zeros(replicates, dtype=bool)
    for level in levels:
        b, c = discordant_counts(right_on(rng, model.quality, test), champion, test)
        ever |= mcnemar_greater(b, c) < level
    return float(ever.mean()), math.sqrt(max(ever.mean() * (1 - ever.mean()), 1e-12) / replicates)


def test_per_champion_keeps_ever_a_false_deploy_under_alpha_over_20_retries():
    levels = acct.per_champion_level(0.05, np.arange(1, 21))
    rate, mc_error = retry_until_deploy(levels)
    assert rate <= 0.05 + 3 * mc_error
    today, _ = retry_until_deploy([0.05] * 20)  # the same draws at alpha every time
    assert today > 0.2  # the 28%


def test_mcnemar_greater_matches_stats_mcnemar():
    for b, c in [(0, 0), (0, 5), (5, 0), (12, 30), (30, 12), (250, 290)]:
        assert mcnemar_greater(np.array([b]), np.array([c]))[0] == pytest.approx(
            stats.mcnemar(b, c).pvalue, rel=1e-12
        )


def test_stream_controls_the_false_discovery_rate_on_independent_p_values():
    """LORD++'s guarantee under its assumption: null p-values independent and uniform."""
    rng = np.random.default_rng(1)
    streams, tests, alpha = 4000, 60, 0.05
    null = rng.random((streams, tests)) < 0.8
    p = np.where(null, rng.random((streams, tests)), rng.beta(0.08, 1.0, (streams, tests)))
    deployed = np.zeros((streams, tests), dtype=bool)
    for t in range(tests):
        deployed[:, t] = p[:, t] < acct.lord_levels(alpha, deployed[:, :t])
    false = (deployed & null).sum(1)
    fdp = false / np.maximum(deployed.sum(1), 1)
    assert fdp.mean() <= alpha + 3 * fdp.std() / math.sqrt(streams)
    assert deployed.sum(1).mean() > 1  # and it does deploy


# --------------------------------------------------------------------------------------
# Fresh rows
# --------------------------------------------------------------------------------------


def test_choose_rows_takes_the_fresh_rows_when_enough_remain():
    keys = np.array([f"r{i}" for i in range(1000)])
    choice = acct.choose_rows(keys, keys[:500], min_fresh_rows=300)
    assert choice.which == "fresh" and (choice.fresh, choice.reused) == (500, 500)
    assert choice.use.tolist() == [False] * 500 + [True] * 500
    assert "500 test rows no earlier decision used" in choice.reason
    assert choice.to_json()["rows_used"] == 500


def test_choose_rows_falls_back_to_all_and_says_so():
    keys = np.arange(800)
    few = acct.choose_rows(keys, np.arange(600), min_fresh_rows=300)  # 200 fresh < 300
    assert few.which == "all" and few.use.all()
    assert "only 200 test rows are fresh (fewer than 300)" in few.reason
    # 400 fresh, 1600 reused: the reused rows add more power than their bias removes
    share = acct.choose_rows(np.arange(2000), np.arange(1600), min_fresh_rows=300)
    assert share.which == "all" and "fewer than 800" in share.reason
    new = acct.choose_rows(keys, np.array([], dtype=np.int64), min_fresh_rows=300)
    assert new.which == "all" and new.reason == "no earlier decision used these rows"


def test_used_rows_are_those_of_decisions_this_champion_took_part_in():
    history = [
        entry("1", deployed=True, challenger="2", rows=["a", "b"]),  # promoted champion 2
        entry("2", rows=["b", "c"]),  # an attempt against it
        entry("1", rows=["x"]),  # against another champion
        entry("", rows=["f"]),  # a first run against the baseline
    ]
    assert acct.used_rows(history, "2", "per_champion").tolist() == ["a", "b", "c"]
    assert sorted(acct.used_rows(history, "2", "stream").tolist()) == ["a", "b", "c", "f", "x"]
    assert acct.used_rows(history, "", "per_champion").tolist() == ["f"]
    assert acct.used_rows([], "2", "per_champion").size == 0
    keys = np.array(["a", "b", "c", "d", "e"])
    choice = acct.rows_for(AlphaPolicy(min_fresh_rows=2), history, "2", keys)
    assert choice.which == "fresh" and keys[choice.use].tolist() == ["d", "e"]


# --------------------------------------------------------------------------------------
# The selection-adjusted gain
# --------------------------------------------------------------------------------------


def test_critical_count_is_the_gates_boundary():
    for d in (1, 5, 10, 37, 50, 120):
        for level in (0.05, 0.025, 0.05 / 12, 1e-4):
            k = acct.critical_count(d, level)
            if k <= d:
                assert stats.mcnemar(d - k, k).pvalue < level
            if k >= 1:
                assert stats.mcnemar(d - k + 1, k - 1).pvalue >= level


def test_adjusted_gain_is_below_the_raw_gain_and_equal_far_from_the_threshold():
    near = acct.adjusted_accuracy_gain(16, 34, 500, 0.05)  # p = 0.0077: just past
    assert near.raw == pytest.approx(0.036)
    assert near.estimate < near.raw
    far = acct.adjusted_accuracy_gain(5, 80, 500, 0.05)  # far past: selection is irrelevant
    assert far.estimate == pytest.approx(far.raw, abs=2e-4)
    assert far.to_json()["method"].startswith("hybrid")


def test_adjusted_gain_refuses_a_gain_the_test_did_not_pass():
    with pytest.raises(ValueError, match="does not pass the exact McNemar test"):
        acct.adjusted_accuracy_gain(20, 25, 500, 0.05)
    with pytest.raises(ValueError, match="does not exceed threshold"):
        acct.adjusted_gain(0.01, 0.01, 0.02)


@pytest.mark.parametrize(
    ("gain", "level"), [(0.03, 0.05), (0.03, 0.025), (0.05, 0.05), (0.0, 0.05)]
)
def test_adjusted_gain_is_close_to_the_truth_among_deploys(gain, level):
    """500 rows, 10% discordance: among deploys the raw gain overstates; the adjusted one
    is about median-unbiased and much closer in mean."""
    rng = np.random.default_rng(7)
    n, disc = 500, 0.10
    cells = [0.9 - (disc - gain) / 2, (disc + gain) / 2, (disc - gain) / 2]
    counts = rng.multinomial(n, [*cells, 1 - sum(cells)], size=60_000)
    c, b = counts[:, 1], counts[:, 2]
    deployed = c >= acct.critical_count(b + c, level)
    pairs, inverse = np.unique(np.stack([b, c], 1)[deployed], axis=0, return_inverse=True)
    estimates = np.array([acct.adjusted_accuracy_gain(x, y, n, level).estimate for x, y in pairs])
    adjusted = estimates[inverse.reshape(-1)]
    raw = (c - b)[deployed] / n
    # the winner's curse this corrects: most where power is moderate, little at 97% power
    assert raw.mean() > gain + (0.0005 if gain >= 0.05 else 0.005)
    assert abs(adjusted.mean() - gain) < max(0.45 * (raw.mean() - gain), 0.0025)
    if gain > 0:
        assert np.median(adjusted) == pytest.approx(gain, abs=0.0025)


def test_per_comparison_decides_on_every_row_and_counts_the_fresh_ones():
    history = [entry("2", rows=["a", "b"], accounting="per_comparison")]
    keys = np.array(["a", "b", "c", "d", "e"])
    choice = acct.rows_for(AlphaPolicy("per_comparison", min_fresh_rows=2), history, "2", keys)
    assert choice.which == "all" and choice.use.all()
    assert (choice.fresh, choice.reused) == (3, 2)
    assert choice.reason == (
        "all 5 test rows decide, 2 of them used by earlier decisions: per_comparison decides "
        "on every row, as the gate always has"
    )


def test_the_level_in_words_states_the_rule_applied():
    policy = AlphaPolicy()
    history = [entry("2", level=0.025), entry("2", level=0.05 / 6)]
    third = acct.account(policy, history, "2")
    assert acct.explain_level(third, "version 2") == (
        "Level 0.00417 = alpha 0.05 / (3 x 4), attempt 3 against version 2 (per_champion): "
        "this keeps the chance that a no-better challenger ever replaces version 2 at most 5%, "
        "however many attempts"
    )
    capped = acct.account(policy, [entry("2", level=0.04), entry("2", level=0.009)], "2")
    assert acct.explain_level(capped, "version 2").startswith(
        "Level 0.001 = what is left of alpha 0.05 after 0.049 spent on 2 earlier attempts "
        "(alpha changed during this reign; alpha / (3 x 4) would be 0.00417)"
    )
    first = acct.account(AlphaPolicy("stream"), [], "baseline")
    assert acct.explain_level(first, "the baseline").startswith(
        "Level 0.0125: the LORD++ level of decision 1 of this registry, after 0 deploys (stream)"
    )
