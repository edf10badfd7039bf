"""The benchmark scripts run, and print their comparisons in the agreed one-line format.

Tiny sizes: these check the scripts (a GPU session's device time is too dear to spend on a
crashing script), not the figures, which come from the full runs quoted in the README.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
NUMBER = r"[0-9.]+(?:e[+-]?[0-9]+)?"
COMPARISON = re.compile(
    rf"^(?P<name>\w+): ours=(?P<ours>{NUMBER}) (?P<unit>\S+) (?P<peer>\w+)=(?P<peer_value>"
    rf"{NUMBER}) (?P=unit) ratio=(?P<ratio>{NUMBER})$"
)

pytestmark = pytest.mark.slow


def _run(tmp_path: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # not the repo root, whose docker/ folder would shadow a package
    )


def _comparisons(stdout: str) -> dict[str, re.Match[str]]:
    found = {}
    for text in stdout.splitlines():
        if text.startswith("#") or ": ours=" not in text:
            continue
        match = COMPARISON.match(text)
        assert match, f"not in the NAME: ours=V UNIT PEER=V UNIT ratio=R format: {text!r}"
        ours, peer = float(match["ours"]), float(match["peer_value"])
        # printed to 3-4 significant figures: the ratio agrees to that precision
        assert float(match["ratio"]) == pytest.approx(ours / peer, rel=0.02), text
        found[match["name"]] = match
    return found


def test_train_gpu_script_runs_end_to_end_on_a_cpu(tmp_path):
    result = _run(
        tmp_path, "train_gpu.py", "--device", "cpu", "--rows", "2048", "--batches", "1024",
        "--epochs", "2", "--peak-tflops", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = _comparisons(result.stdout)
    assert set(lines) == {"gpu_train_samples_per_s_b1024", "gpu_bf16_roofline_b1024"}
    assert lines["gpu_bf16_roofline_b1024"]["peer"] == "roofline"
    # 1 TFLOP/s over 6 x 265,482 FLOPs per sample
    assert float(lines["gpu_bf16_roofline_b1024"]["peer_value"]) == pytest.approx(0.628, 0.01)
    assert "val accuracy after 2 epochs" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_train_gpu_script_says_it_needs_a_gpu(tmp_path):
    result = _run(tmp_path, "train_gpu.py")
    assert result.returncode == 2
    assert "needs a CUDA GPU" in result.stderr and result.stdout == ""


def test_gate_null_script(tmp_path):
    result = _run(tmp_path, "gate_null.py", "--comparisons", "200", "--rows", "100")
    assert result.returncode == 0, result.stderr
    lines = _comparisons(result.stdout)
    assert {"gate_false_deploy_null", "gate_power_effect_4pts"} <= set(lines)
    assert lines["gate_false_deploy_null"]["peer"] == "naive"
    # issue 13: one line per method and regime at the boundary of its null, beside alpha
    regimes = {name for name in lines if name.startswith("null_")}
    assert {"null_mcnemar_exact_360rows", "null_delong_t_few_positives"} <= regimes
    assert len(regimes) >= 10 and all(lines[r]["peer"] == "alpha" for r in regimes)
    # the bootstrap guardrails at their tolerance with few rows, percentile and BCa
    assert {"null_log_loss_guardrail_bca_30rows", "null_macro_f1_guardrail_bca_30rows"} <= regimes


def test_regression_gate_null_script(tmp_path):
    result = _run(tmp_path, "regression_gate_null.py", "--comparisons", "300", "--rows", "120")
    assert result.returncode == 0, result.stderr + result.stdout
    lines = _comparisons(result.stdout)
    for test in ("ttest", "wilcoxon"):
        null = lines[f"regression_false_deploy_null_{test}"]
        assert null["peer"] == "naive"
        # the naive "lower RMSE wins" rule deploys a no-better model about half the time
        assert float(null["peer_value"]) > 0.3 and float(null["ours"]) < 0.15
        assert lines[f"regression_margin_at_boundary_{test}"]["peer"] == "alpha"
    assert lines["regression_power_at_target"]["peer"] == "analytic"


def test_stats_scale_script(tmp_path):
    result = _run(tmp_path, "stats_scale.py", "--n", "20000", "--repeats", "1", "--scipy-n", "300")
    assert result.returncode == 0, result.stderr
    lines = _comparisons(result.stdout)
    assert {"bootstrap_accuracy_CI"} <= set(lines) and len(lines) >= 3
    assert lines["power_report_20k"]["peer"] == "decision"  # issue 13: timed against it
    assert lines["power_report_holm_20k"]["peer"] == "decision"  # the simulated whole rule
    assert "intervals_agree: yes" in result.stdout


def test_train_speed_script_quick(tmp_path):
    result = _run(tmp_path, "train_speed.py", "--quick")
    assert result.returncode == 0, result.stderr
    lines = _comparisons(result.stdout)
    assert set(lines) == {"train_to_sklearn_accuracy_digits"}
    assert lines["train_to_sklearn_accuracy_digits"]["peer"] == "sklearn"


def test_serve_load_script(tmp_path):
    result = _run(
        tmp_path, "serve_load.py", "--duration", "0.5", "--repeats", "1", "--client", "python"
    )
    assert result.returncode == 0, result.stderr
    lines = _comparisons(result.stdout)
    assert {"single_p50_c8", "batch_rows_per_s"} <= set(lines)
    assert lines["single_p50_c8"]["peer"] == "noop"
    assert "errors (non-2xx responses or socket errors) in all runs: 0" in result.stdout


def test_local_run_script_runs_once(tmp_path):
    """One repeat: `sigdeploy run` against the same five steps in one process."""
    result = _run(tmp_path, "local_run.py", "--repeats", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = _comparisons(result.stdout)
    assert set(lines) == {"local_run_digits", "local_run_digits_target"}
    assert lines["local_run_digits"]["peer"] == "in_process"


def test_gate_lifetime_script_quick(tmp_path):
    result = _run(tmp_path, "gate_lifetime.py", "--quick")
    assert result.returncode == 0, result.stderr + result.stdout[-2000:]
    lines = _comparisons(result.stdout)
    assert {
        "retry20_false_deploy_per_champion",
        "stream52_ever_false_deploy_per_champion",
        "stream52_false_discovery_rate_stream",
        "ratchet_power_fresh_per_champion",
        "adjusted_gain_vs_truth_3pts",
    } <= set(lines)
    assert lines["retry20_false_deploy_per_champion"]["peer"] == "per_comparison"
    assert "agree with the vectorised test on 8/8 comparisons" in result.stdout


def test_serve_load_script_prints_memory_and_before_lines(tmp_path):
    """Peak RSS per MiB of body beside the no-op route (2 MiB bodies), and every figure
    against a baseline checkout (here the repository itself)."""
    result = _run(
        tmp_path, "serve_load.py", "--duration", "0.3", "--repeats", "1", "--client", "python",
        "--body-mib", "2", "--parallel", "2", "--baseline", str(BENCHMARKS.parent),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = _comparisons(result.stdout)
    memory = {"peak_rss_per_mib_floats", "peak_rss_per_mib_lists", "peak_rss_2x_floats"}
    assert memory <= set(lines)
    assert {lines[name]["peer"] for name in memory} == {"noop"}
    assert lines["peak_rss_per_mib_floats"]["unit"] == "MB/MiB"
    before = {f"{name}_vs_before" for name in (*memory, "single_p50_c8", "batch1000_rows_c4")}
    assert before <= set(lines)
    assert {lines[name]["peer"] for name in before} == {"before"}
    assert "unexpected statuses in the memory runs: none" in result.stdout
    assert "errors (non-2xx responses or socket errors) in all runs: 0" in result.stdout


def test_train_defaults_script_small(tmp_path):
    result = _run(
        tmp_path, "train_defaults.py", "--rows", "3000", "--threads", "1", "--repeats", "1"
    )
    assert result.returncode == 0, result.stderr
    lines = _comparisons(result.stdout)
    assert set(lines) == {"train_defaults_time_3k", "train_defaults_epochs_3k"}
    assert lines["train_defaults_time_3k"]["peer"] == "tuned"
    assert "default: batch 128" in result.stdout  # 1,800 training rows: the small-data batch


def test_model_quality_script_quick(tmp_path):
    result = _run(tmp_path, "model_quality.py", "--quick", "--threads", "1")
    assert result.returncode == 0, result.stderr
    lines = _comparisons(result.stdout)
    name = "generated_600"
    assert {f"{name}_log_loss_vs_logistic", f"{name}_log_loss_vs_hgb"} <= set(lines)
    best = lines[f"{name}_log_loss_vs_best"]
    assert best["peer"] in {"logistic", "hgb"}
    # the better peer is the one with the lower log loss
    assert float(best["peer_value"]) == min(
        float(lines[f"{name}_log_loss_vs_{p}"]["peer_value"]) for p in ("logistic", "hgb")
    )
    regression = "generated_regression_600"
    assert {f"{regression}_rmse_vs_linear", f"{regression}_rmse_vs_hgb"} <= set(lines)
    assert lines[f"{regression}_rmse_vs_best"]["unit"] == "rmse"
