"""The CLI: bad input fails fast with one line on stderr, nothing written, exit non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.spec import check_parameters, compile_pipeline, load_spec

SIGDEPLOY = str(Path(sys.executable).with_name("sigdeploy"))


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["--data", "no/such/file.csv"], "no such file or folder"),
        (["--data", "sklearn:iris"], "unknown bundled data set"),
        (["--data", "{csv}", "--label", "target"], "label column 'target' not found"),
        (["--alpha", "1.5"], "alpha=1.5"),
        (["--model-name", "bad name"], "model name"),
        (["--param", "nosuch=1"], "parameter 'nosuch' is not a pipeline parameter"),
        (["--param", "max_epochs=ten"], "expected an integer"),
        (["--param", "train_fraction=0.9"], "split fractions"),
        (["--registry", "vertex://p/r"], "keeps its registry in a local directory"),
        # trainer settings are checked with the parameters, before any task runs
        (["--param", "precision=fp8"], "precision='fp8' must be one of"),
        (["--param", "hidden_sizes=wide"], "hidden_sizes='wide': give layer widths"),
        (["--param", "batch_size=0"], "batch_size=0 must be >= 1"),
        (["--param", "device=tpu"], "device='tpu' must be auto, cpu, cuda or cuda:N"),
        (["--param", "cuda_graphs=maybe"], "parameter cuda_graphs='maybe': expected true or"),
    ],
)
def test_bad_input_one_line_and_registry_untouched(tmp_path, capsys, args, pattern):
    csv = tmp_path / "data.csv"
    csv.write_text("a,b,y\n1,2,x\n3,4,z\n")
    args = [a.replace("{csv}", str(csv)) for a in args]
    code = main(
        ["run", "--registry", str(tmp_path / "reg"), "--output-dir", str(tmp_path / "runs"), *args]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("sigdeploy: error:")
    assert pattern in err[-1]
    assert not (tmp_path / "reg").exists() and not (tmp_path / "vertex:").exists()
    # It failed before the runner started: the runner's log was never opened.
    assert not (tmp_path / "runs" / "runner.log").exists()


def test_cli_prints_no_traceback(tmp_path):
    result = subprocess.run(
        [
            SIGDEPLOY,
            "run",
            "--data",
            str(tmp_path / "missing.csv"),
            "--output-dir",
            str(tmp_path / "runs"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"sigdeploy: error: data source '{tmp_path / 'missing.csv'}': no such file or folder; "
        "check the path (or use sklearn:digits for the embedded data)"
    ]


def test_bad_trainer_setting_fails_without_loading_torch(tmp_path):
    """The settings check is cheap: a typo costs a second, not a torch import."""
    code = (
        "import sys; from pipelines.cli import main; "
        f"rc = main(['run', '--output-dir', {str(tmp_path)!r}, '--param', 'schedule=linear']); "
        "sys.exit(rc if 'torch' not in sys.modules else 99)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert "schedule='linear' must be one of onecycle, cosine, constant" in result.stderr


def test_check_parameters_coerces_types(tmp_path):
    spec = load_spec(compile_pipeline("local", tmp_path / "p.json"))
    out = check_parameters(spec, {"alpha": "0.01", "max_epochs": "7", "source": "x"})
    assert out == {"alpha": 0.01, "max_epochs": 7, "source": "x"}


def test_compile_py_writes_json(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "pipeline.json"
    result = subprocess.run(
        [sys.executable, str(repo / "compile.py"), "--target", "vertex", "--output", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert load_spec(out)["pipelineInfo"]["name"] == "sigdeploy-training"
