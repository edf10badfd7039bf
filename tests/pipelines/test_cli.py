"""The CLI: bad input fails fast with one line on stderr, nothing written, exit non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.cli import main
from pipelines.spec import (
    check_parameters,
    compile_pipeline,
    load_spec,
    parameter_defaults,
    run_settings,
)

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
        (["--param", "max_epochs=ten"], "expected a whole number"),
        (["--param", "train_fraction=0.9"], "split fractions"),
        (["--registry", "vertex://p/r"], "keeps its registry in a local directory"),
        # trainer settings are checked with the parameters, before any task runs
        (["--param", "precision=fp8"], "precision='fp8' must be one of"),
        (
            ["--param", "hidden_sizes=wide"],
            "hidden_sizes='wide': expected whole numbers separated by commas",
        ),
        (["--param", "batch_size=0"], "batch_size=0 must be >= 1"),
        (["--param", "device=tpu"], "device='tpu' must be auto, cpu, cuda or cuda:N"),
        (["--param", "cuda_graphs=maybe"], "parameter cuda_graphs='maybe': expected true or"),
        # every setting a run builds, and what it needs of the data, before any task runs
        (["--param", "max_epoch=5"], "(did you mean max_epochs?)"),
        (["--data", "{csv}", "--label", "Y"], "label column 'Y' not found (did you mean y?)"),
        (["--param", "primary_metrics=auc"], "ROC AUC needs a binary label and the data has 10"),
        (["--param", "canary_percent=0"], "canary_percent=0 must be 1-100"),
        (["--param", "baseline=nonsense"], "baseline='nonsense' must be one of majority"),
        (["--param", "feature_columns=pixel_0_0,pixel_9"], "column 'pixel_9' (in feature_columns"),
        (["--param", "id_columns=pixel_0_0,nope"], "column 'nope' (in feature_columns or id_c"),
        (["--image-size", "0"], "image_size=0 must be 1-1024"),
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
    assert type(out["max_epochs"]) is int


def test_compiled_integer_defaults_come_back_as_integers(tmp_path):
    """The IR stores 28 as 28.0; a float must never reach Pillow, range() or torch."""
    spec = load_spec(compile_pipeline("local", tmp_path / "p.json"))
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["image_size"]["defaultValue"] == 28.0  # what KFP writes
    defaults = parameter_defaults(spec)
    for name in ("image_size", "max_epochs", "seed", "row_limit", "min_test_rows"):
        assert type(defaults[name]) is int, name


def test_image_folder_checks_with_the_default_size(tmp_path):
    """`run --data <folder of PNGs>` read the folder at 28.0 pixels and crashed in Pillow."""
    from PIL import Image

    from components.core import steps

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(40):
            pixels = rng.integers(0, 255, (10, 10), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / cls / f"{i}.png")
    spec = load_spec(compile_pipeline("local", tmp_path / "p.json"))
    params = check_parameters(spec, {"source": str(tmp_path / "imgs")})
    assert steps.preflight(run_settings(spec, params)) == []  # no pixel looks like an ID


def test_run_help_states_every_default_and_parameter(capsys):
    from components.core.settings import parameters

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for flag, default in (("--data", "sklearn:digits"), ("--epochs", "60"), ("--image-size", "28")):
        block = text[text.index(f"  {flag} ") :][:300]
        assert f"default: {default}" in block, flag
    for name in parameters():
        assert f"    {name}=" in text, name
    assert "    id_columns=auto  # auto = leave out ID-like columns" in text


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


def test_progress_lines_are_shown_under_their_task_as_they_come():
    """The local runner hands each task's output on line by line; the step's progress lines
    reach the terminal at once (not when the task ends), the runner's own chatter does not."""
    import io

    from pipelines.local_run import _RunnerOutput

    log, shown = io.StringIO(), io.StringIO()
    sink = _RunnerOutput(log, shown)
    sink.write("14:55:55.442 - INFO - Executing task \x1b[96m'train'\x1b[0m\n")
    sink.write("    some runner detail\n    2026-11-27 14:55:57,955 INFO components.core")
    assert shown.getvalue() == ""
    sink.write(".progress: [sigdeploy] train: epoch 1/60: val accuracy 0.9\n")
    assert shown.getvalue() == "  train          epoch 1/60: val accuracy 0.9\n"  # before the end
    sink.write("14:56:00.1 - INFO - Task \x1b[96m'train'\x1b[0m finished with status SUCCESS\n")
    assert shown.getvalue().splitlines()[-1].startswith("  train        ok ")
    assert "some runner detail" in log.getvalue() and "some runner" not in shown.getvalue()
    quiet = io.StringIO()
    sink = _RunnerOutput(io.StringIO(), quiet, verbose=False)
    sink.write("Executing task 'train'\n[sigdeploy] train: epoch 1/60\n")
    assert quiet.getvalue() == ""


def test_every_option_with_a_default_states_it_in_help():
    """`--help` of every command shows the defaults (a None default means "not given")."""
    import argparse

    from pipelines.cli import build_parser

    missing = []

    def walk(parser, name):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    walk(child, f"{name} {sub}")
            elif action.option_strings and action.default not in (None, False, "==SUPPRESS=="):
                if "default" not in (action.help or ""):
                    missing.append(f"{name} {action.option_strings[0]}")

    walk(build_parser(), "sigdeploy")
    assert missing == []
