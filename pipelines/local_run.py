"""`sigdeploy run`: the compiled pipeline, end to end, on the KFP local runner.

The data source is validated first with the same core code that ingest runs, so a bad input
fails in about a second, before the runner starts. The runner's own chatty output goes to a
log file; the terminal gets one progress line per task and a summary (or, with --json, one
JSON object on stdout). A task that fails ends the command with that task's own error line.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from components.core.errors import ConfigError, SigdeployError
from pipelines.spec import add_param_option

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TASK_START = re.compile(r"Executing task '([^']+)'")
TASK_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$")
USER_ERRORS = {"DataError", "ConfigError", "RegistryError", "SchemaMismatchError", "SigdeployError"}


class TaskError(SigdeployError):
    """A pipeline task failed; the message is the task's own last error line."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the pipeline on the KFP local runner")
    p.add_argument(
        "--data",
        default="sklearn:digits",
        help="source: sklearn:digits|breast_cancer|wine, a .csv/.parquet file, a "
        "folder of class sub-folders of images, gs:// or bq:// (default sklearn:digits)",
    )
    p.add_argument("--label", default="label", help="label column (default: label)")
    p.add_argument("--registry", default="registry", help="local registry directory")
    p.add_argument("--model-name", default="digits-mlp", help="model name in the registry")
    p.add_argument("--alpha", type=float, default=None, help="false-deploy risk (default 0.05)")
    p.add_argument("--epochs", type=int, default=None, help="maximum training epochs")
    p.add_argument("--seed", type=int, default=None, help="training seed")
    p.add_argument("--image-size", type=int, default=None, help="image folders: pixels per side")
    p.add_argument("--output-dir", default="runs", help="pipeline root, logs and summary")
    p.add_argument(
        "--pipeline",
        default=None,
        help="compiled pipeline JSON to run (default: compile the local target now)",
    )
    add_param_option(p, "margin=0.01")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


def _arguments(args: argparse.Namespace) -> dict[str, Any]:
    from pipelines.spec import parse_pairs

    if "://" in args.registry:
        raise ConfigError(
            f"--registry {args.registry}: sigdeploy run keeps its registry in a local "
            "directory; use `sigdeploy submit vertex` for Vertex AI Model Registry"
        )
    values: dict[str, Any] = dict(parse_pairs(args.param))
    values |= {
        "source": args.data,
        "label": args.label,
        "model_name": args.model_name,
        "registry": str(Path(args.registry).expanduser().resolve()),
    }
    for flag, name in (
        ("alpha", "alpha"),
        ("epochs", "max_epochs"),
        ("seed", "seed"),
        ("image_size", "image_size"),
    ):
        if getattr(args, flag) is not None:
            values[name] = getattr(args, flag)
    return values


def _precheck(params: dict[str, Any], defaults: dict[str, Any]) -> None:
    """The data validation ingest runs, before the runner spins up (the train and gate
    settings were checked with the parameters)."""
    from components.core import steps
    from components.core.data import SourceOptions
    from components.core.split import SplitConfig

    p = defaults | params
    steps.check_source(
        p["source"],
        p["label"],
        SourceOptions(image_size=p["image_size"], row_limit=p["row_limit"], query=p["query"]),
        SplitConfig(p["train_fraction"], p["val_fraction"], p["split_salt"]),
    )


class _RunnerOutput(io.TextIOBase):
    """Receives everything the local runner prints; keeps a log, reports task progress."""

    def __init__(self, log: TextIO, progress: TextIO) -> None:
        self.log, self.progress = log, progress
        self.buffer_ = ""
        self.current: str | None = None
        self.started: dict[str, float] = {}
        self.task_errors: dict[str, str] = {}
        self.user_error: dict[str, bool] = {}
        self.failed: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.log.write(text)
        self.buffer_ += text
        while "\n" in self.buffer_:
            line, self.buffer_ = self.buffer_.split("\n", 1)
            self._line(ANSI.sub("", line))
        return len(text)

    def _line(self, line: str) -> None:
        if m := TASK_START.search(line):
            self.current = m.group(1)
            self.started[self.current] = time.perf_counter()
            return
        if m := TASK_END.search(line):
            name, status = m.group(1), m.group(2)
            took = time.perf_counter() - self.started.get(name, time.perf_counter())
            mark = "ok" if status == "SUCCESS" else status.lower()
            print(f"  {name:<12} {mark:<8} {took:5.1f} s", file=self.progress, flush=True)
            if status != "SUCCESS":
                self.failed.append(name)
            return
        if self.current and (m := ERROR_LINE.match(line)):
            self.task_errors[self.current] = m.group(2).strip()
            self.user_error[self.current] = m.group(1) in USER_ERRORS


def run(args: argparse.Namespace) -> int:
    from pipelines.spec import check_parameters, compile_pipeline, load_spec, parameter_defaults

    started = time.perf_counter()
    out_dir = Path(args.output_dir).expanduser().resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    pipeline_path = (
        Path(args.pipeline)
        if args.pipeline
        else compile_pipeline("local", out_dir / "pipeline.json")
    )
    spec = load_spec(pipeline_path)
    params = check_parameters(spec, _arguments(args))
    _precheck(params, parameter_defaults(spec))

    progress = sys.stderr
    print(f"sigdeploy: running {pipeline_path} on the KFP local runner", file=progress)
    log_path = out_dir / "runner.log"
    outputs, sink = _run_local(pipeline_path, params, out_dir, log_path, progress)
    if "deploy" not in sink.started:  # the dsl.If kept it from running
        print(f"  {'deploy':<12} {'skipped':<8} (the gate said no)", file=progress, flush=True)
    summary = _summary(outputs, params, out_dir, pipeline_path, log_path)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    from components.core.io import write_json

    write_json(out_dir / "summary.json", summary)
    if args.json:
        from components.core.io import dumps

        print(dumps(summary))
    else:
        print(format_summary(summary))
    return 0


def _run_local(
    pipeline_path: Path, params: dict[str, Any], out_dir: Path, log_path: Path, progress: TextIO
) -> tuple[dict[str, Any], _RunnerOutput]:
    from kfp import components, local

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(out_dir / "pipeline-root"),
        raise_on_error=True,
    )
    pipeline = components.load_component_from_file(str(pipeline_path))
    with open(log_path, "w", encoding="utf-8") as log:
        sink = _RunnerOutput(log, progress)
        try:
            with contextlib.redirect_stdout(sink):  # type: ignore[type-var]
                task = pipeline(**params)
        except RuntimeError as exc:
            failed = sink.failed[-1] if sink.failed else "pipeline"
            message = sink.task_errors.get(failed)
            if message and sink.user_error.get(failed):
                raise TaskError(message) from exc
            detail = f": {message}" if message else ""
            raise TaskError(f"task '{failed}' failed{detail} (full log: {log_path})") from exc
    return dict(task.outputs), sink


def _artifact_path(artifact: Any) -> str:
    return getattr(artifact, "path", None) or str(getattr(artifact, "uri", ""))


def _summary(
    outputs: dict[str, Any],
    params: dict[str, Any],
    out_dir: Path,
    pipeline_path: Path,
    log_path: Path,
) -> dict[str, Any]:
    from components.core.io import read_json
    from components.core.registry import LocalRegistry

    decision_path = _artifact_path(outputs["decision"])
    decision = read_json(decision_path)
    registry = LocalRegistry(params["registry"], params["model_name"])
    champion = registry.champion()
    if decision["deploy"] and (
        champion is None or champion.version == decision.get("champion_version")
    ):
        raise ConfigError(
            f"the gate decided to deploy but the registry champion did not move; see {log_path}"
        )
    return {
        "deployed": bool(decision["deploy"]),
        "p_value": decision["p_value"],
        "test": decision["test"],
        "alpha": decision["alpha"],
        "reason": decision["reason"],
        "counts": decision["counts"],
        "power": decision["power"],
        "challenger": decision["metrics"]["challenger"],
        "champion": decision["metrics"]["champion"],
        "compared_with": decision["champion"],
        "champion_version": champion.version if champion else None,
        "model_name": params["model_name"],
        "paths": {
            "model": _artifact_path(outputs["model"]),
            "report": _artifact_path(outputs["report"]),
            "summary_markdown": _artifact_path(outputs["summary"]),
            "decision": decision_path,
            "registry": str(registry.model_dir),
            "champion": str(champion.path) if champion else None,
            "pipeline": str(pipeline_path),
            "log": str(log_path),
            "summary": str(out_dir / "summary.json"),
        },
    }


def format_summary(s: dict[str, Any]) -> str:
    ch, cp = s["challenger"], s["champion"]
    rows = [f"{'metric':<10} {'challenger':>11} {'champion':>11}"]
    for key in ("accuracy", "macro_f1", "log_loss", "roc_auc"):
        rows.append(f"{key:<10} {ch[key]:>11.4f} {cp[key]:>11.4f}")
    verdict = "DEPLOYED" if s["deployed"] else "NOT DEPLOYED"
    paths = s["paths"]
    return "\n".join(
        [
            "",
            f"{verdict}: {s['model_name']} (compared with {s['compared_with']} on "
            f"{s['counts']['test_rows']} test rows)",
            *rows,
            f"test: {s['test']}; p = {s['p_value']:.4g}; alpha = {s['alpha']}",
            f"why: {s['reason']}",
            f"champion: version {s['champion_version']} at {paths['champion']}"
            if s["champion_version"]
            else "champion: none yet",
            f"model:    {paths['model']}",
            f"report:   {paths['report']}",
            f"registry: {paths['registry']}",
            f"({s['seconds']:.1f} s; runner log {paths['log']})",
        ]
    )
