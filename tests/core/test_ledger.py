"""Error control across runs through the evaluate step and the local registry's ledger: the
levels repeated attempts get, fresh rows, the selection-adjusted gain, per_comparison as
today's gate, concurrent reservations, and a damaged ledger stopping a run in one line."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

from components.core import steps
from components.core.errors import ConfigError, RegistryError
from components.core.evaluation import alpha as acct
from components.core.evaluation.accounting import Reservation, entries
from components.core.evaluation.alpha import AlphaPolicy
from components.core.evaluation.compare import compare
from components.core.evaluation.gate import GatePolicy
from components.core.model.bundle import load_bundle
from components.core.platforms.deploy_config import DeployConfig
from components.core.registry import LocalRegistry, RegistryConfig
from components.core.registry import ledger as ledger_mod

NAME = "digits-mlp"


@pytest.fixture()
def files(tmp_path, digits_parts):
    """The digits splits as Parquet files, and the test split's first 200 rows alone (the
    data before it grew)."""
    out = {}
    for name, frame in digits_parts.items():
        out[name] = str(tmp_path / f"{name}.parquet")
        frame.to_parquet(out[name], index=False)
    out["test_small"] = str(tmp_path / "test_small.parquet")
    digits_parts["test"].iloc[:200].to_parquet(out["test_small"], index=False)
    return out


def evaluate(tmp_path, bundle, files, policy=None, test="test", registry="reg"):
    ev = steps.evaluate(
        str(bundle), files["train"], files[test], str(tmp_path / registry), NAME,
        policy or GatePolicy(), str(tmp_path / "decision.json"), str(tmp_path / "report.html"),
        str(tmp_path / "summary.md"),
    )  # fmt: skip
    return ev, json.loads((tmp_path / "decision.json").read_text())


def deploy(tmp_path, bundle, registry="reg"):
    where = RegistryConfig(str(tmp_path / registry), NAME)
    return steps.deploy(str(bundle), str(tmp_path / "decision.json"), where, DeployConfig())


def champion_without_ledger(tmp_path, bundle, registry="reg"):
    """A champion registered the way a registry older than the ledger holds it."""
    reg = LocalRegistry(tmp_path / registry, NAME)
    reg.register(bundle, {"deploy": True})
    return reg


# ------------------------------------------------------------------ levels over attempts


def test_attempts_against_one_champion_get_alpha_over_k_k_plus_1(tmp_path, trained_bundle, files):
    reg = champion_without_ledger(tmp_path, trained_bundle)
    levels, reasons, notes = [], [], []
    for _ in range(3):
        ev, decision = evaluate(tmp_path, trained_bundle, files)
        assert not ev.decision.deploy and decision["alpha"] == 0.05
        levels.append(decision["level"])
        reasons.append(decision["reason"])
        notes.append(decision["ledger"]["notes"])
    assert levels == pytest.approx([0.05 / 2, 0.05 / 6, 0.05 / 12])
    assert reasons[2].endswith(
        "Level 0.00417 = alpha 0.05 / (3 x 4), attempt 3 against version 1 (per_champion): "
        "this keeps the chance that a no-better challenger ever replaces version 1 at most "
        "5%, however many attempts. None of the 385 test rows is fresh (an earlier decision "
        "used each), so all of them decide."
    )
    account = decision["accounting"]
    assert (account["accounting"], account["attempt"], account["against"]) == (
        "per_champion",
        3,
        "1",
    )
    assert account["spent_before"] == pytest.approx(0.05 / 2 + 0.05 / 6)
    ledger = reg.ledger()
    assert [d.attempt for d in ledger.decisions] == [1, 2, 3]
    assert [d.deployed for d in ledger.decisions] == [False] * 3
    assert ledger.records == 6  # a decision and its outcome each
    assert decision["ledger"]["id"] == ledger.decisions[-1].id
    # an older registry (a decision, no ledger) started the ledger empty and said so, once
    assert ["predate it, so the account starts empty" in " ".join(n) for n in notes] == [
        True,
        False,
        False,
    ]


def test_a_new_champion_starts_a_new_budget(tmp_path, trained_bundle, files):
    """First run against the baseline at alpha / 2; its deploy makes version 1; the first
    attempt against version 1 is at alpha / 2 again."""
    ev, first = evaluate(tmp_path, trained_bundle, files)
    assert ev.decision.deploy and first["level"] == 0.025
    assert first["accounting"]["against"] == ledger_mod.BASELINE
    assert "attempt 1 against the baseline (per_champion)" in first["reason"]
    said = first["reason"].count("p = ") + first["reason"].count("p < 1e-300")  # underflow
    assert said == 1 and "< level 0.025." in first["reason"]
    assert deploy(tmp_path, trained_bundle)["version"] == "1"
    _, second = evaluate(tmp_path, trained_bundle, files)
    assert second["level"] == 0.025 and second["accounting"]["against"] == "1"
    ledger = LocalRegistry(tmp_path / "reg", NAME).ledger()
    assert [d.version for d in ledger.decisions] == ["1", None]  # register filled it in


def test_stream_uses_lord_levels_over_every_decision(tmp_path, trained_bundle, files):
    policy = GatePolicy(alpha_accounting="stream")
    deployed: list[bool] = []
    levels = []
    for _ in range(3):
        ev, decision = evaluate(tmp_path, trained_bundle, files, policy)
        assert decision["level"] == pytest.approx(acct.lord_levels(0.05, np.array(deployed))[0])
        levels.append(decision["level"])
        deployed.append(ev.decision.deploy)
        if ev.decision.deploy:
            deploy(tmp_path, trained_bundle)
    assert deployed == [True, False, False]  # beats the baseline, then ties itself
    # W0 gamma_1; then gamma_2 W0 + (alpha - W0) gamma_1; then gamma_3 W0 + (alpha - W0) gamma_2
    assert levels == pytest.approx([0.0125, 0.025 / 6 + 0.025 / 2, 0.025 / 12 + 0.025 / 6])
    assert (
        "LORD++ level of decision 3 of this registry, after 1 deploy (stream)"
        in (decision["reason"])
    )
    assert "reuses rows, so for it that holds only approximately" in decision["reason"]


# ------------------------------------------------------------------ fresh rows


def test_grown_data_is_decided_on_the_rows_no_earlier_decision_used(
    tmp_path, trained_bundle, files, digits_parts
):
    """The first run decides on 200 test rows and deploys; the data grows to 385 test rows;
    the next comparison, against the champion those 200 rows promoted, decides on the 185
    new ones only."""
    policy = GatePolicy(min_fresh_rows=50)
    ev, first = evaluate(tmp_path, trained_bundle, files, policy, test="test_small")
    assert ev.decision.deploy and first["counts"]["test_rows"] == 200
    deploy(tmp_path, trained_bundle)
    ev, second = evaluate(tmp_path, trained_bundle, files, policy)
    rows = second["accounting"]["rows"]
    assert (rows["rows"], rows["fresh"], rows["reused"], rows["rows_used"]) == (
        "fresh",
        185,
        200,
        185,
    )
    assert second["counts"]["test_rows"] == 185 and ev.provenance["test_rows"] == 185
    assert (
        "Decided on the 185 test rows no earlier decision used (200 left out)." in second["reason"]
    )
    one, two = LocalRegistry(tmp_path / "reg", NAME).ledger().decisions
    assert len(one.keys) == 200 and len(two.keys) == 185
    assert not set(one.keys.tolist()) & set(two.keys.tolist())
    # per_comparison keeps today's gate: every row, the counts say how many were fresh
    today = GatePolicy(alpha_accounting="per_comparison", min_fresh_rows=50)
    evaluate(tmp_path, trained_bundle, files, today, test="test_small", registry="reg2")
    deploy(tmp_path, trained_bundle, registry="reg2")
    _, third = evaluate(tmp_path, trained_bundle, files, today, registry="reg2")
    rows = third["accounting"]["rows"]
    assert (rows["rows"], rows["fresh"], rows["reused"]) == ("all", 185, 200)
    assert third["counts"]["test_rows"] == 385
    assert "per_comparison decides on every row, as the gate always has" in third["reason"]


# ------------------------------------------------------------------ the adjusted gain


def test_a_deploy_records_its_selection_adjusted_gain(tmp_path, digits_parts, bundle_trainer):
    weak = bundle_trainer(
        tmp_path / "weak", digits_parts["train"], digits_parts["val"], hidden=(8,), max_epochs=2
    )
    strong = bundle_trainer(
        tmp_path / "strong", digits_parts["train"], digits_parts["val"], max_epochs=6
    )
    for name, frame in digits_parts.items():
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    files = {k: str(tmp_path / f"{k}.parquet") for k in digits_parts}
    champion_without_ledger(tmp_path, weak)
    ev, decision = evaluate(tmp_path, strong, files)
    assert ev.decision.deploy
    c = ev.decision.counts
    want = acct.adjusted_accuracy_gain(
        c.only_champion_right, c.only_challenger_right, c.test_rows, 0.025
    )
    gain = decision["accounting"]["gain"]
    assert gain["raw"] == pytest.approx(ev.decision.effect.accuracy_difference)
    assert gain["adjusted"] == pytest.approx(want.estimate) and gain["adjusted"] <= gain["raw"]
    assert gain["method"].startswith("hybrid conditional median")
    assert (
        f"Selection-adjusted accuracy gain {want.estimate * 100:+.1f} points"
        in (decision["reason"])
    )
    assert ev.flat_metrics()["adjusted_accuracy_gain"] == pytest.approx(want.estimate)
    html = (tmp_path / "report.html").read_text()
    assert "Error control across runs" in html and "selection-adjusted" in html
    assert "one-sided 97.5% lower and upper bounds" in html  # the intervals at the level tested
    summary = (tmp_path / "summary.md").read_text()
    assert "- accuracy gain: raw " in summary and "level = 0.025 (per_champion)" in summary


def test_a_not_deployed_decision_has_no_adjusted_gain(tmp_path, trained_bundle, files):
    champion_without_ledger(tmp_path, trained_bundle)
    _, decision = evaluate(tmp_path, trained_bundle, files)
    assert decision["accounting"]["gain"] is None
    assert "Selection-adjusted" not in decision["reason"]


# ------------------------------------------------------------------ per_comparison = today


def test_per_comparison_reproduces_todays_decision(
    tmp_path, digits_parts, bundle_trainer, trained_bundle, files
):
    """At alpha on every row, as the gate always decided: the same verdict, p-value, counts,
    checks, bounds, intervals and power as deciding without any ledger; the reason is
    today's, with the accounting sentence after it."""
    weak = bundle_trainer(
        tmp_path / "weak", digits_parts["train"], digits_parts["val"], hidden=(8,), max_epochs=2
    )
    champion_without_ledger(tmp_path, weak)
    for _ in range(3):  # however many attempts: per_comparison never lowers the level
        ev, decision = evaluate(
            tmp_path, trained_bundle, files, GatePolicy(alpha_accounting="per_comparison")
        )
    today = compare(
        load_bundle(trained_bundle),
        digits_parts["test"],
        GatePolicy(),
        champion=load_bundle(weak),
        champion_version="1",
        excluded=ev.excluded,
    ).decision.to_json()
    assert decision["level"] == decision["alpha"] == 0.05
    keep = ("deploy", "p_value", "test", "alpha", "level", "margin", "counts", "effect")
    keep += ("power", "checks", "champion", "metrics", "improvement_ci")
    assert {k: decision[k] for k in keep} == json.loads(json.dumps({k: today[k] for k in keep}))
    assert decision["reason"].startswith(today["reason"] + " Level 0.05 = alpha, attempt 3")
    assert today["reason"].endswith("< alpha 0.05. The champion has no split record, so "
                                    "these test rows could not be checked against the rows "
                                    "it trained on (a weaker guarantee).")  # fmt: skip


# ------------------------------------------------------------------ concurrent reservations


def test_concurrent_reservations_never_share_an_attempt(tmp_path, monkeypatch):
    """Eight evaluations reserve against one champion at once; each reads the ledger, waits
    (as scoring would) and appends, but under the registry lock: eight distinct attempts."""
    reg = LocalRegistry(tmp_path / "reg", NAME)
    keys = np.arange(400, dtype=np.uint64)
    real = Reservation.__call__

    def slow(self, ledger):
        made = real(self, ledger)
        time.sleep(0.02)  # the window in which another evaluation would read the same ledger
        return made

    monkeypatch.setattr(Reservation, "__call__", slow)
    plans = [Reservation(AlphaPolicy(), "1", keys, "test keys") for _ in range(8)]
    threads = [threading.Thread(target=reg.append_ledger, args=(plan,)) for plan in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(p.account.attempt for p in plans) == list(range(1, 9))
    assert sorted(p.account.level for p in plans) == pytest.approx(
        sorted(acct.per_champion_level(0.05, np.arange(1, 9)))
    )
    ledger = reg.ledger()
    assert [d.seq for d in ledger.decisions] == list(range(1, 9))
    assert sum(d.level for d in ledger.decisions) < 0.05
    assert len(list(reg.keys_dir.iterdir())) == 1  # the same rows: one content-addressed file


def test_a_reserved_but_undecided_attempt_still_counts(tmp_path):
    """An evaluation that reserved and then crashed spent its level: the next one is
    attempt 2 (counting it is what keeps the bound)."""
    reg = LocalRegistry(tmp_path / "reg", NAME)
    reg.append_ledger(Reservation(AlphaPolicy(), "1", np.arange(5, dtype=np.uint64), "k"))
    (entry,) = entries(reg.ledger())
    assert entry.deployed is False and np.isnan(entry.p_value)
    plan = Reservation(AlphaPolicy(), "1", np.arange(5, dtype=np.uint64), "k")
    reg.append_ledger(plan)
    assert plan.account.attempt == 2 and plan.account.level == pytest.approx(0.05 / 6)


def test_a_spent_budget_refuses_in_one_line_and_reserves_nothing(tmp_path):
    reg = LocalRegistry(tmp_path / "reg", NAME)
    for _ in range(2):
        reg.append_ledger(Reservation(AlphaPolicy(), "1", np.arange(5, dtype=np.uint64), "k"))
    with pytest.raises(ConfigError) as info:  # alpha lowered below what was spent
        reg.append_ledger(
            Reservation(AlphaPolicy(alpha=0.03), "1", np.arange(5, dtype=np.uint64), "k")
        )
    assert "alpha 0.03 is already spent against version 1" in str(info.value)
    assert "\n" not in str(info.value)
    assert reg.ledger().records == 2


# ------------------------------------------------------------------ the ledger on disk


def test_the_ledger_round_trips(tmp_path, trained_bundle, files):
    ev, decision = evaluate(tmp_path, trained_bundle, files)
    reg = LocalRegistry(tmp_path / "reg", NAME)
    lines = [json.loads(line) for line in reg.ledger_path.read_text().splitlines()]
    assert [(r["seq"], r["kind"]) for r in lines] == [(1, "decision"), (2, "outcome")]
    record = lines[0]
    assert record["format"] == ledger_mod.FORMAT and record["model"] == NAME
    assert (record["champion"], record["accounting"], record["attempt"]) == (
        "baseline",
        "per_champion",
        1,
    )
    assert record["level"] == 0.025 and record["alpha"] == 0.05
    keys_file = reg.keys_dir / f"{record['rows']['sha256']}.npy"
    keys = np.load(keys_file, allow_pickle=False)
    assert keys.dtype == np.uint64 and len(keys) == record["rows"]["count"] == 385
    (read,) = reg.ledger().decisions
    assert (read.id, read.level, read.deployed, read.version) == (record["id"], 0.025, True, None)
    assert read.p_value == pytest.approx(ev.decision.p_value)
    np.testing.assert_array_equal(read.keys, keys)
    assert decision["ledger"]["record"] == 1 and decision["ledger"]["where"] == str(reg.ledger_path)


def _damage_cases():
    def bad_json(reg):
        reg.ledger_path.write_text(reg.ledger_path.read_text() + "{not json\n")
        return "record 3 is not JSON"

    def foreign(reg):
        lines = reg.ledger_path.read_text().splitlines()
        record = json.loads(lines[0]) | {"model": "churn"}
        reg.ledger_path.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
        return "record 1 belongs to model 'churn', not 'digits-mlp'"

    def keys_changed(reg):
        (path,) = reg.keys_dir.iterdir()
        path.write_bytes(path.read_bytes()[:-8] + np.zeros(1, np.uint64).tobytes())
        return "the row keys of record 1 do not match their sha256"

    def keys_gone(reg):
        (path,) = reg.keys_dir.iterdir()
        path.unlink()
        return "the row keys of record 1 ("

    def record_gone(reg):
        lines = reg.ledger_path.read_text().splitlines()
        reg.ledger_path.write_text(lines[1] + "\n")
        return "record 1 is numbered 2: a record is missing or out of order"

    return [bad_json, foreign, keys_changed, keys_gone, record_gone]


@pytest.mark.parametrize("damage", _damage_cases(), ids=lambda f: f.__name__)
def test_a_damaged_ledger_is_one_line_before_anything_is_decided(
    tmp_path, trained_bundle, files, damage
):
    evaluate(tmp_path, trained_bundle, files)
    deploy(tmp_path, trained_bundle)  # version 1, its promotion recorded
    reg = LocalRegistry(tmp_path / "reg", NAME)
    lines = reg.ledger_path.read_text().splitlines()
    reg.ledger_path.write_text("\n".join(lines[:2]) + "\n")  # keep decision and outcome
    problem = damage(reg)
    before = {
        p: p.read_bytes() for p in (reg.pointer, reg.history_path, reg.ledger_path)
    }  # fmt: skip
    (tmp_path / "decision.json").unlink()
    with pytest.raises(RegistryError) as info:
        evaluate(tmp_path, trained_bundle, files)
    message = str(info.value)
    assert "\n" not in message and problem in message
    assert message.startswith(f"registry '{reg.model_dir}': ledger '{reg.ledger_path}': ")
    assert "nothing was decided and the champion is untouched: restore the ledger" in message
    assert f"or start a new account (replace {reg.ledger_path} with an empty file)" in message
    assert "over the whole reign up to twice alpha" in message
    assert {p: p.read_bytes() for p in before} == before
    assert not (tmp_path / "decision.json").exists()


def test_an_empty_ledger_starts_a_new_account(tmp_path, trained_bundle, files):
    champion_without_ledger(tmp_path, trained_bundle)
    evaluate(tmp_path, trained_bundle, files)
    reg = LocalRegistry(tmp_path / "reg", NAME)
    reg.ledger_path.write_text("\n")  # what the error says to do (echo > ledger.jsonl)
    _, decision = evaluate(tmp_path, trained_bundle, files)
    assert decision["accounting"]["attempt"] == 1 and decision["level"] == 0.025


def test_a_lost_ledger_is_one_line_and_an_older_registry_starts_empty(
    tmp_path, trained_bundle, files
):
    reg = champion_without_ledger(tmp_path, trained_bundle)
    ev, decision = evaluate(tmp_path, trained_bundle, files)  # history: no ledger ids yet
    (note,) = decision["ledger"]["notes"]
    assert note == (
        f"registry '{reg.model_dir}': no ledger yet, and the 1 earlier decision(s) in the "
        "history predate it, so the account starts empty: attempts made before now do not "
        "lower this level"
    )
    reg.ledger_path.unlink()  # the history now holds a decision made with the ledger
    pointer = reg.pointer.read_bytes()
    with pytest.raises(RegistryError) as info:
        evaluate(tmp_path, trained_bundle, files)
    assert str(info.value).startswith(
        f"registry '{reg.model_dir}': ledger '{reg.ledger_path}': the ledger is missing, yet "
        "1 decision(s) in the history were recorded in it; nothing was decided"
    )
    assert reg.pointer.read_bytes() == pointer


def test_accounting_parameters_are_checked_with_the_gate():
    with pytest.raises(ConfigError) as info:
        GatePolicy(alpha_accounting="per_run", min_fresh_rows=0)
    assert str(info.value) == (
        "gate policy: alpha_accounting='per_run' must be one of per_comparison, per_champion, "
        "stream; min_fresh_rows=0 must be >= 1, e.g. 300"
    )
    assert GatePolicy().alpha_policy() == AlphaPolicy("per_champion", 0.05, 300)
