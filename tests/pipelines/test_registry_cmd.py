"""`sigdeploy registry show | history | rollback` on a local registry."""

from __future__ import annotations

import json

import pytest

from components.core.registry import LocalRegistry
from pipelines.cli import main


@pytest.fixture()
def registry(tmp_path, trained_bundle):
    reg = LocalRegistry(tmp_path / "reg", "digits-mlp")
    for p, acc in ((1e-30, 0.95), (0.004, 0.97)):
        reg.register(
            trained_bundle,
            {
                "deploy": True,
                "p_value": p,
                "champion": "majority-class baseline",
                "metrics": {"challenger": {"accuracy": acc}, "champion": {"accuracy": 0.1}},
                "reason": "Deployed: the challenger is significantly better.",
                "challenger_training": {
                    "rows": 1082,
                    "epochs_run": 17,
                    "device": "cpu",
                    "precision": "fp32",
                },
            },
        )
    reg.record({"deploy": False, "p_value": 1.0, "champion_version": "2", "reason": "Kept."})
    return reg


def _cli(capsys, *args):
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_show_lists_versions_and_marks_the_champion(registry, capsys):
    code, out, _ = _cli(capsys, "registry", "show", "--registry", str(registry.root))
    assert code == 0
    lines = out.splitlines()
    assert lines[1] == f"champion: version 2  {registry.model_dir / 'versions' / '2'}"
    assert lines[3].startswith("        1  ") and "p=1.0e-30; accuracy 0.950 vs 0.100" in lines[3]
    assert lines[4].startswith("*       2  ") and "p=0.004; accuracy 0.970" in lines[4]
    assert lines[4].endswith("[trained: 1,082 rows, 17 epochs, cpu fp32]")


def test_show_json(registry, capsys):
    code, out, _ = _cli(capsys, "registry", "show", "--registry", str(registry.root), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["champion"] == "2"
    assert [v["version"] for v in doc["versions"]] == ["1", "2"]
    assert doc["versions"][1]["metrics"] == {"accuracy": 0.97}
    assert doc["versions"][1]["training"]["epochs_run"] == 17


def test_history_prints_one_line_per_event(registry, capsys):
    code, out, _ = _cli(capsys, "registry", "history", "--registry", str(registry.root))
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert "deployed     v1 (over the baseline)" in lines[0]
    assert "deployed     v2 (over v1)" in lines[1]
    assert "kept         champion v2 stays" in lines[2] and "p=1" in lines[2]
    code, out, _ = _cli(
        capsys, "registry", "history", "--registry", str(registry.root), "--last", "1", "--json"
    )
    assert [e["event"] for e in json.loads(out)] == ["kept"]


def test_rollback_moves_the_champion_and_history_says_why(registry, capsys):
    code, out, err = _cli(
        capsys, "registry", "rollback", "--registry", str(registry.root), "--reason", "bad v2"
    )
    assert code == 0
    assert out.strip() == "champion of digits-mlp: version 1 (was 2)"
    assert "switches to it at its next poll" in err
    assert registry.champion().version == "1"
    code, out, _ = _cli(capsys, "registry", "history", "--registry", str(registry.root))
    assert "rolled back  v1 (was v2)" in out.splitlines()[-1]
    assert out.splitlines()[-1].endswith('"bad v2"')


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--to", "9"], "no version '9'; versions: 1, 2"),
        (["--to", "2"], "version 2 is already the champion"),
        (["--endpoint", "ep"], "--endpoint is for Vertex AI registries"),
        (["--model-name", "other"], "no model 'other' there"),
        (["--reason", " "], "--reason is empty"),
    ],
)
def test_rollback_errors_are_one_line_and_change_nothing(registry, capsys, extra, message):
    before = registry.pointer.read_bytes(), registry.history_path.read_bytes()
    args = ["registry", "rollback", "--registry", str(registry.root), "--reason", "why"]
    code, out, err = _cli(capsys, *args, *extra)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [err.strip()] and message in err
    assert (registry.pointer.read_bytes(), registry.history_path.read_bytes()) == before


def test_history_and_show_state_the_level_each_decision_ran_at(tmp_path, trained_bundle, capsys):
    """A decision made under an accounting of alpha across runs names its level."""
    reg = LocalRegistry(tmp_path / "reg", "digits-mlp")
    decision = {"deploy": True, "p_value": 0.004, "alpha": 0.05, "level": 0.025}
    reg.register(trained_bundle, decision)
    reg.record({"deploy": False, "p_value": 0.3, "level": 0.05 / 6, "champion_version": "1"})
    _, out, _ = _cli(capsys, "registry", "history", "--registry", str(reg.root))
    first, second = out.splitlines()
    assert "p=0.004 (level 0.025)" in first and "p=0.3 (level 0.00833)" in second
    _, out, _ = _cli(capsys, "registry", "show", "--registry", str(reg.root))
    assert "p=0.004 (level 0.025)" in out.splitlines()[-1]
    _, out, _ = _cli(capsys, "registry", "show", "--registry", str(reg.root), "--json")
    assert json.loads(out)["versions"][0]["level"] == 0.025


def _decisions(gains, rows=400, discordant=60, seed=0):
    """History entries whose decisions carry paired counts with the given true gains."""
    rng = __import__("numpy").random.default_rng(seed)
    entries = []
    for gain in gains:
        c = int(rng.binomial(discordant, 0.5 + gain * rows / (2 * discordant)))
        counts = {
            "test_rows": rows,
            "only_challenger_right": c,
            "only_champion_right": discordant - c,
        }
        deploy = c - (discordant - c) > 12
        entries.append(
            {
                "event": "deployed" if deploy else "kept",
                "decision": {"counts": counts, "deploy": deploy},
            }
        )
    return entries


def test_history_states_the_estimated_share_of_deploys_not_better_once_it_can():
    from components.core.evaluation.bayes import history_not_better
    from pipelines.registry_cmd import not_better_line

    few = _decisions([0.02] * 5)
    assert not_better_line(few) == ""  # below the minimum history: no estimate
    many = _decisions([0.0, 0.03] * 15)
    line = not_better_line(many)
    found = history_not_better([e["decision"] for e in many])
    assert found is not None
    assert f"{found['share_of_deploys_not_better']:.2f}" in line
    assert f"these {found['deploys']} deploys" in line and "not a guarantee" in line
