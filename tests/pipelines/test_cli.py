"""The CLI: bad input fails fast with one line on stderr, nothing written, exit non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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
        (["--param", "batch_size=-1"], "batch_size=-1 must be >= 1 (0 = from the rows)"),
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
    for flag, default in (
        ("--data", "sklearn:digits"),
        ("--epochs", "0 = set from the rows"),
        ("--image-size", "28"),
    ):
        block = " ".join(text[text.index(f"  {flag} ") :][:300].split())  # argparse wraps
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


# ------------------------------------------------------------------ data edge cases (issue 14)


def _table(n=60):
    import pandas as pd

    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"x1": rng.normal(size=n), "x2": rng.normal(size=n), "label": rng.choice(["a", "b"], n)}
    )


def _csv(path, frame):
    frame.to_csv(path, index=False)


def _dup_label_csv(path):
    body = "".join(f"{i},{'ab'[i % 2]},{'ba'[i % 2]}\n" for i in range(60))
    path.write_text("x1,label,label\n" + body)


def _dup_parquet(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = _table()
    arrays = [pa.array(frame[c]) for c in ("x1", "x2", "label")]
    pq.write_table(pa.Table.from_arrays(arrays, names=["x1", "x1", "label"]), path)


def _list_parquet(path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = _table()
    tags = pa.array([[1, 2]] * len(frame))
    pq.write_table(pa.table({"x1": frame["x1"], "tags": tags, "label": frame["label"]}), path)


def _with(column, values):
    def write(path):
        frame = _table()
        frame[column] = values(frame)
        _csv(path, frame)

    return write


def _images(bad):
    def write(path):
        from PIL import Image

        rng = np.random.default_rng(0)
        for cls in ("a", "b"):
            (path / cls).mkdir(parents=True)
            for i in range(30):
                pixels = rng.integers(0, 255, (10, 10), dtype=np.uint8)
                Image.fromarray(pixels).save(path / cls / f"{i}.png")
        (path / "b" / "bad.png").write_bytes(bad(path / "a" / "0.png"))

    return write


def _inf(frame):
    return frame["x2"].where(frame.index != 3, np.inf)


@pytest.mark.parametrize(
    "name,write,args,pattern",
    [
        ("d.csv", _dup_label_csv, [], "column 'label' appears 2 times in the header"),
        ("d.parquet", _dup_parquet, [], "column 'x1' appears 2 times in the Parquet schema"),
        ("d.parquet", _list_parquet, [], "column 'tags' holds lists (e.g. [1, 2]), not one value"),
        ("d.csv", _with("x2", _inf), [], "column 'x2' has 1 row(s) holding inf, -inf or a num"),
        ("d.csv", lambda p: p.write_text("x1,x2,label\n"), [], "has no rows"),
        ("d.csv", lambda p: p.write_text("x1,x2,label\n1,2,a\n3,4\n"), [], "line 3 has 2 field"),
        ("d.csv", lambda p: p.write_text("x1,label\n1,a,\n2,b,\n"), [], "line 2 has 3 field"),
        (
            "d.csv",
            _with("x2", lambda f: ["?" if i % 9 == 0 else str(v) for i, v in enumerate(f.x2)]),
            [],
            "column 'x2' mixes numbers and text: 53 of its values are numbers, 7 are not",
        ),
        (
            "d.csv",
            _with("label", lambda f: ["rare"] + list(f.label[1:])),
            [],
            "class 'rare' has 1 row(s) and none in the ",
        ),
        (
            "d.csv",
            _with("label", lambda f: [f"row{i}" for i in range(len(f))]),
            [],
            "label 'label' is text with 60 different values in 60 rows: too many to be classes",
        ),
        (
            "d.csv",
            _with("empty", lambda f: np.nan),
            ["--param", "feature_columns=x1,empty"],
            "column 'empty' (in feature_columns) has no values in any of the 60 rows",
        ),
        ("imgs", _images(lambda ok: b""), [], "bad.png': cannot be decoded"),
        ("imgs", _images(lambda ok: ok.read_bytes()[:60]), [], "bad.png': cannot be decoded"),
    ],
    ids=[
        "csv-duplicate-label",
        "parquet-duplicate-column",
        "parquet-list-column",
        "inf",
        "header-only",
        "short-row",
        "trailing-comma",
        "numbers-and-text",
        "one-row-class",
        "label-unique-per-row",
        "empty-feature-named",
        "zero-byte-image",
        "truncated-image",
    ],
)
def test_bad_data_is_one_line_exit_2_and_registry_untouched(
    tmp_path, capsys, name, write, args, pattern
):
    data = tmp_path / name
    write(data)
    runs, reg = tmp_path / "runs", tmp_path / "reg"
    code = main(
        ["run", "--data", str(data), "--registry", str(reg), "--output-dir", str(runs), *args]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("sigdeploy: error: "), err
    assert pattern in err[0]
    assert not reg.exists() and not (runs / "runner.log").exists()


def test_dates_and_empty_columns_are_left_out_with_a_note(tmp_path):
    """Handled, not refused: the check lines say which column and why."""
    import pandas as pd

    from components.core import steps

    frame = _table()
    frame["when"] = pd.date_range("2024-01-01", periods=len(frame), freq="6h").astype(str)
    frame["empty"] = np.nan
    frame["flag"] = [True, False] * (len(frame) // 2)
    _csv(tmp_path / "d.csv", frame)
    spec = load_spec(compile_pipeline("local", tmp_path / "p.json"))
    params = check_parameters(spec, {"source": str(tmp_path / "d.csv")})
    assert steps.preflight(run_settings(spec, params)) == [
        "column when left out of the features: dates or times; to use it, derive number "
        "columns from it (e.g. the weekday)",
        "column empty left out of the features: no values in any row",
    ]


# ------------------------------------------------------------------ output to a closed pipe


def _closed_pipe_run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run sigdeploy with stdout a pipe whose reader has already gone."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [SIGDEPLOY, *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        os.close(write)


@pytest.fixture()
def kept_registry(tmp_path):
    from components.core.registry import LocalRegistry

    reg = LocalRegistry(tmp_path / "reg", "digits-mlp")
    for _ in range(3):
        reg.record({"deploy": False, "p_value": 0.5, "champion_version": None, "reason": "Kept."})
    return reg


@pytest.mark.parametrize(
    "args",
    [["registry", "show"], ["registry", "history"], ["registry", "history", "--json"]],
    ids=["show", "history", "history-json"],
)
def test_output_to_a_closed_pipe_ends_quietly(kept_registry, args):
    result = _closed_pipe_run(*args, "--registry", str(kept_registry.root))
    assert result.returncode == 141  # as a shell reports a process ended by SIGPIPE
    assert result.stderr == ""


def test_a_real_pipe_to_head_ends_quietly(tmp_path):
    """`sigdeploy registry history --json | head -c 10` with more output than a pipe holds."""
    from components.core.registry import LocalRegistry

    reg = LocalRegistry(tmp_path / "reg", "digits-mlp")
    entry = {"deploy": False, "p_value": 0.5, "reason": "Kept. " + "x" * 5000}
    for _ in range(400):  # 2 MB of JSON: more than a pipe and head's buffer hold
        reg.record(entry)
    result = subprocess.run(
        f"'{SIGDEPLOY}' registry history --registry '{reg.root}' --json | head -c 10; "
        'echo " ${PIPESTATUS[0]}"',
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.stdout == '[{"decisio 141\n'
    assert result.stderr == ""


@pytest.mark.slow
@pytest.mark.e2e
def test_run_json_to_a_closed_pipe_ends_quietly_with_the_run_done(tmp_path):
    result = _closed_pipe_run(
        "run",
        "--json",
        "--epochs",
        "2",
        "--registry",
        str(tmp_path / "reg"),
        "--output-dir",
        str(tmp_path / "runs"),
        timeout=600,
    )
    assert result.returncode == 141, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Error" not in result.stderr
    assert (tmp_path / "runs" / "summary.json").exists()  # the run itself finished


@pytest.mark.slow
@pytest.mark.e2e
def test_progress_to_a_closed_pipe_ends_the_run_and_its_tasks(tmp_path):
    """`sigdeploy run 2>&1 | head -3`: the reader leaves mid-run; the run ends quietly and
    takes its task processes with it."""
    out = tmp_path / "runs"
    read, write = os.pipe()
    run = subprocess.Popen(
        [SIGDEPLOY, "run", "--registry", str(tmp_path / "reg"), "--output-dir", str(out)]
        + ["--param", "max_epochs=1000", "--param", "patience=1000"],
        stdout=write,
        stderr=write,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    os.close(write)
    seen = b""
    while b"epoch 1/1000" not in seen:
        chunk = os.read(read, 4096)
        assert chunk, seen.decode()[-2000:]
        seen += chunk
    os.close(read)
    assert run.wait(timeout=60) == 141
    time.sleep(0.5)
    left = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(out).encode() in (proc / "cmdline").read_bytes():
                left.append(int(proc.name))
        except OSError:
            continue
    assert left == []


def test_ctrl_c_in_any_command_is_one_line_and_exit_130(monkeypatch, capsys, tmp_path):
    import pipelines.registry_cmd as registry_cmd

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(registry_cmd, "run_show", interrupted)
    assert main(["registry", "show", "--registry", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "sigdeploy: interrupted\n"


@pytest.mark.parametrize(
    ("p", "shown"), [(0.0, "p < 1e-300"), (1e-320, "p < 1e-300"), (0.01234, "p = 0.01234")]
)
def test_the_run_summary_never_prints_p_equals_zero(p, shown):
    from pipelines.local_run import _p_shown

    assert _p_shown(p) == shown
