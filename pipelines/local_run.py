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
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from components.core.errors import ConfigError, SigdeployError
from components.core.progress import parse as progress_line
from pipelines.spec import add_param_option

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TASK_START = re.compile(r"Executing task '([^']+)'")
TASK_END = re.compile(r"Task '([^']+)' finished with status (\w+)")
ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception)): (.+)$")
USER_ERRORS = {"DataError", "ConfigError", "RegistryError", "SchemaMismatchError", "SigdeployError"}
# SIGHUP (the terminal closed) and SIGQUIT (Ctrl-\) as well: the tasks run in sessions of
# their own, so the terminal no longer signals them directly.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
TASK_GRACE_S = 5.0  # a task sent SIGTERM gets this long to end before it is killed
# The task that writes the registry: a signal lets it finish (about a second) rather than
# stop it between copying a version in and moving the champion pointer to it, and no task
# starts after it. It gets FINISH_LIMIT_S at most; a second signal stops it at once.
FINISH_TASKS = ("deploy",)
FINISH_LIMIT_S = 60.0
RUNNERS = ("subprocess", "docker")
# Shared directories a task container writes (the registry, the pipeline root): setgid and
# group-writable, so the container's user, given the directory's group, writes there, and
# what it creates keeps that group (the registry's own modes, components.core.io).
SHARED_DIR_MODE = 0o2775


class TaskError(SigdeployError):
    """A pipeline task failed; the message is the task's own last error line."""


class Interrupted(KeyboardInterrupt):
    """`sigdeploy run` got SIGINT or SIGTERM (or SIGHUP, SIGQUIT) and has ended its tasks.
    The CLI prints the message as one line and exits 128 + the signal's number (130, 143)."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class _Tasks:
    """The local runner's task processes, ended with the run however it ends.

    While ``started_here`` is active, every process the runner starts (kfp's
    SubprocessRunner uses subprocess.Popen) runs in a session of its own: signalling its
    process group reaches the task and everything it started, and a terminal's Ctrl-C
    reaches sigdeploy alone, which decides. On a STOP_SIGNALS signal (``stop_on_signals``) the
    running task's group gets SIGTERM, then SIGKILL after TASK_GRACE_S, no task starts
    after it, and Interrupted is raised; a deploy in progress is let finish first."""

    def __init__(self, progress: TextIO | None = None) -> None:
        self.live: list[subprocess.Popen[Any]] = []
        self.progress = progress
        self.sink: _RunnerOutput | None = None  # what the runner printed: which task runs
        self.log_path: Path | None = None
        self.signum: int | None = None  # the first stop signal received
        self.stopped: str | None = None  # the task running when it came
        self._starting = False
        self._timer: threading.Timer | None = None

    # ---------------------------------------------------------------- processes

    @contextlib.contextmanager
    def started_here(self) -> Iterator[None]:
        tasks, original = self, subprocess.Popen

        class TaskPopen(original):  # type: ignore[valid-type,misc]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                tasks.raise_if_stopped()  # no task starts once the run is stopping
                kwargs["start_new_session"] = True
                tasks._starting = True
                try:
                    super().__init__(*args, **kwargs)
                    tasks.live.append(self)
                finally:
                    tasks._starting = False
                tasks.raise_if_stopped()  # a signal that came while it started

            def __exit__(self, exc_type: Any, value: Any, traceback: Any) -> None:
                if exc_type is not None:  # interrupted, or its output could not be shown
                    tasks.end(self)
                super().__exit__(exc_type, value, traceback)
                # Not reached when a signal interrupts the wait: started_here ends it then.
                if self in tasks.live:
                    tasks.live.remove(self)

        subprocess.Popen = TaskPopen  # type: ignore[misc]
        try:
            yield
        finally:
            subprocess.Popen = original  # type: ignore[misc]
            for process in list(self.live):
                self.end(process)

    def end(self, process: subprocess.Popen[Any], grace: float = TASK_GRACE_S) -> None:
        """SIGTERM to the process's group, SIGKILL to what is left of it after ``grace``."""
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        _signal_group(process.pid, signal.SIGKILL)  # anything the task started, too
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
        if process in self.live:
            self.live.remove(process)

    # ---------------------------------------------------------------- signals

    @contextlib.contextmanager
    def stop_on_signals(self) -> Iterator[None]:
        """Handle STOP_SIGNALS as described above while the block runs. A signal the caller
        ignores stays ignored (`nohup` keeps SIGHUP ignored, for the tasks too); off the main
        thread nothing is installed."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {}
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, self._on_signal)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self._timer is not None:
                self._timer.cancel()

    def running(self) -> str | None:
        """The task whose process is running now, if any."""
        if self.sink is None or not any(p.poll() is None for p in self.live):
            return None
        return self.sink.current or "?"

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # a second signal: stop now
            killed = self.running()
            for process in list(self.live):
                self.end(process, grace=0)
            raise self._interrupted(signum, killed=killed)
        self.signum, self.stopped = signum, self.running()
        if self._starting:
            return  # raised as soon as the starting task is in self.live, so it is ended
        if self.stopped in FINISH_TASKS:
            self._note(
                f"  {self.stopped:<12} {signal.Signals(signum).name}: letting it finish so the "
                "registry stays whole; signal again to stop it now"
            )
            self._timer = threading.Timer(FINISH_LIMIT_S, os.kill, (os.getpid(), signum))
            self._timer.daemon = True
            self._timer.start()
            return
        raise self._interrupted(signum)

    def raise_if_stopped(self) -> None:
        if self.signum is not None:
            raise self._interrupted(self.signum)

    def _interrupted(self, signum: int, killed: str | None = None) -> Interrupted:
        """The one line: which task was stopped and whether the registry may have changed."""
        name = signal.Signals(signum).name
        if self.sink is None:
            return Interrupted(signum, f"interrupted ({name}) before the pipeline started")
        show = "`sigdeploy registry show` says what it registered"
        if killed in FINISH_TASKS:
            what = f"task '{killed}' was killed before it finished; {show}"
        elif any(t in self.sink.started for t in FINISH_TASKS):
            what = f"the deploy task had run; {show}"
        elif self.stopped:
            what = f"task '{self.stopped}' was stopped; nothing was deployed"
        else:
            what = "nothing was deployed"
        return Interrupted(signum, f"interrupted ({name}): {what} (runner log: {self.log_path})")

    def _note(self, line: str) -> None:
        if self.progress is not None:
            # RuntimeError: the signal came while the main thread was writing to the stream
            with contextlib.suppress(OSError, RuntimeError):
                print(line, file=self.progress, flush=True)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def add_parser(sub: argparse._SubParsersAction) -> None:
    from components.core.registry import DEFAULT_MODEL_NAME
    from components.core.settings import defaults

    d = defaults()
    p = sub.add_parser(
        "run",
        help="run the pipeline on the KFP local runner",
        description="Compile the pipeline, check every setting and the data, then run it on "
        "the KFP local runner: ingest, preprocess, train, evaluate, and deploy when the "
        "challenger is significantly better.",
        epilog=parameter_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--data",
        default=d["source"],
        help="sklearn:digits|breast_cancer|wine, a .csv/.parquet file, a folder of class "
        f"sub-folders of images, gs:// or bq:// (default: {d['source']})",
    )
    p.add_argument("--label", default=d["label"], help=f"label column (default: {d['label']})")
    p.add_argument(
        "--registry", default="registry", help="local registry directory (default: registry)"
    )
    p.add_argument(
        "--model-name",
        default=DEFAULT_MODEL_NAME,
        help=f"model name in the registry (default: {DEFAULT_MODEL_NAME})",
    )
    p.add_argument(
        "--alpha", type=float, default=None, help=f"false-deploy risk (default: {d['alpha']})"
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help=(
            f"maximum training epochs, max_epochs (default: {d['max_epochs']} = set from the "
            "rows: 60 for a few thousand, fewer as the data grows)"
        ),
    )
    p.add_argument("--seed", type=int, default=None, help=f"training seed (default: {d['seed']})")
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help=f"image folders: pixels per side (default: {d['image_size']})",
    )
    p.add_argument(
        "--output-dir",
        default="runs",
        help="pipeline root, logs, report.html and summary (default: runs)",
    )
    p.add_argument(
        "--pipeline",
        default=None,
        help="compiled pipeline JSON to run (default: compile the local target now)",
    )
    add_param_option(p, "margin=0.01")
    p.add_argument(
        "--runner",
        choices=RUNNERS,
        default="subprocess",
        help="subprocess: each task a Python process here; docker: each task a container of "
        "the component image (`make images`), as its non-root user, the registry and the "
        "output directory mounted at their own paths (default: subprocess)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines, only one line per task")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


def parameter_help() -> str:
    """Every pipeline parameter with its default and meaning, grouped by config."""
    from components.core.settings import parameters

    lines = ["pipeline parameters (--param NAME=VALUE), with their defaults:"]
    current = None
    for p in parameters().values():
        if p.config is not current:
            current = p.config
            title = (p.config.__doc__ or p.config.__name__).splitlines()[0]
            lines.append(f"  {title.split(';')[0].rstrip('.')}:")
        default = p.default if p.default != "" else '""'
        if isinstance(default, bool):
            default = str(default).lower()
        lines.append(f"    {p.name}={default}" + (f"  # {p.help}" if p.help else ""))
    return "\n".join(lines)


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


class _RunnerOutput(io.TextIOBase):
    """Receives everything the local runner prints; keeps a log, reports task progress.

    The runner passes each task's output on line by line while the task runs, so the
    progress lines of the steps (components.core.progress) are shown as they come.
    """

    def __init__(self, log: TextIO, progress: TextIO, verbose: bool = True) -> None:
        self.log, self.progress, self.verbose = log, progress, verbose
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

    def _show(self, task: str, text: str) -> None:
        print(f"  {task:<12} {text}", file=self.progress, flush=True)

    def _line(self, line: str) -> None:
        if m := TASK_START.search(line):
            self.current = m.group(1)
            self.started[self.current] = time.perf_counter()
            return
        if m := TASK_END.search(line):
            name, status = m.group(1), m.group(2)
            took = time.perf_counter() - self.started.get(name, time.perf_counter())
            mark = "ok" if status == "SUCCESS" else status.lower()
            self._show(name, f"{mark:<8} {took:5.1f} s")
            if status != "SUCCESS":
                self.failed.append(name)
            return
        if self.verbose and self.current and (found := progress_line(line)):
            self._show(self.current, f"  {found[1]}")
            return
        if self.current and (m := ERROR_LINE.match(line)):
            self.task_errors[self.current] = m.group(2).strip()
            self.user_error[self.current] = m.group(1) in USER_ERRORS


def run(args: argparse.Namespace) -> int:
    """`sigdeploy run`; SIGINT or SIGTERM end it and its tasks (``_Tasks``)."""
    tasks = _Tasks(progress=sys.stderr)
    with tasks.stop_on_signals():
        return _run(args, tasks)


def _run(args: argparse.Namespace, tasks: _Tasks) -> int:
    from components.core import steps
    from pipelines.spec import check_parameters, compile_pipeline, load_spec, run_settings

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
    # The data as ingest will read it, and what the gate and the features need of it.
    notes = steps.preflight(run_settings(spec, params))

    progress = sys.stderr
    runner = getattr(args, "runner", "subprocess")
    docker_runner = None
    where = "the KFP local runner"
    if runner == "docker":
        docker_runner = _docker_runner(spec, params, out_dir)
        where += f" in docker ({_spec_image(spec)})"
    print(f"sigdeploy: running {pipeline_path} on {where}", file=progress)
    if not args.quiet:
        for note in notes:
            print(f"  {'check':<12}   {note}", file=progress)
    log_path = out_dir / "runner.log"
    outputs, sink = _run_local(
        pipeline_path, params, out_dir, log_path, progress, not args.quiet, tasks, docker_runner
    )
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
    pipeline_path: Path,
    params: dict[str, Any],
    out_dir: Path,
    log_path: Path,
    progress: TextIO,
    verbose: bool = True,
    tasks: _Tasks | None = None,
    docker_runner: Any = None,
) -> tuple[dict[str, Any], _RunnerOutput]:
    from kfp import components, local

    tasks = tasks or _Tasks(progress)

    local.init(
        runner=docker_runner or local.SubprocessRunner(use_venv=False),
        pipeline_root=str(out_dir / "pipeline-root"),
        raise_on_error=True,
    )
    pipeline = components.load_component_from_file(str(pipeline_path))
    with open(log_path, "w", encoding="utf-8") as log:
        sink = _RunnerOutput(log, progress, verbose)
        tasks.sink, tasks.log_path = sink, log_path
        try:
            with (
                tasks.started_here(),
                _containers_ended(docker_runner),
                contextlib.redirect_stdout(sink),  # type: ignore[type-var]
            ):
                task = pipeline(**params)
            tasks.raise_if_stopped()  # a deploy that was let finish
        except RuntimeError as exc:
            failed = sink.failed[-1] if sink.failed else "pipeline"
            message = sink.task_errors.get(failed)
            if message and sink.user_error.get(failed):
                raise TaskError(message) from exc
            detail = f": {message}" if message else ""
            raise TaskError(f"task '{failed}' failed{detail} (full log: {log_path})") from exc
    return dict(task.outputs), sink


def _spec_image(spec: dict[str, Any]) -> str:
    """The component image of the compiled pipeline (every task runs the same one)."""
    found = {
        e["container"]["image"]
        for e in spec.get("deploymentSpec", {}).get("executors", {}).values()
        if "container" in e
    }
    if len(found) != 1:
        raise ConfigError(f"the pipeline names {len(found)} task images; --runner docker needs 1")
    return found.pop()


def _shared_dir(path: Path) -> Path:
    """A directory a task container writes: created if missing, setgid and group-writable."""
    path.mkdir(parents=True, exist_ok=True)
    if path.stat().st_uid == os.geteuid():
        path.chmod(SHARED_DIR_MODE)
    return path


def _docker_sdk() -> Any:
    """The Docker SDK (the dev extra). By name, through importlib: in a checkout, the docker/
    folder of Dockerfiles would otherwise stand in for it as a namespace package, to mypy and
    to Python where the SDK is missing."""
    import importlib

    try:
        sdk = importlib.import_module("docker")
        importlib.import_module("docker.types")
        sdk.from_env  # noqa: B018 - the namespace package has no attributes
    except (ImportError, AttributeError):
        raise ConfigError(
            "--runner docker needs the docker Python package: pip install 'docker>=7.1' "
            "(it is in the dev extra)"
        ) from None
    return sdk


def _docker_runner(spec: dict[str, Any], params: dict[str, Any], out_dir: Path) -> Any:
    """kfp.local.DockerRunner for the compiled pipeline's image, checked before any task runs.

    Each task runs as the image's own non-root user with the group of the output directory
    added (its files are SHARED_DIR_MODE), so it writes the pipeline root (kfp mounts it at
    its own path) and the registry (mounted here at its own path, so the `registry` parameter
    means the same path inside and out); a local data file or folder is mounted read-only.
    Containers carry a label with this run's id; an interrupted run stops its own."""
    from kfp import local

    docker = _docker_sdk()
    Mount = docker.types.Mount

    image = _spec_image(spec)
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise ConfigError(
            f"--runner docker: no Docker engine answers ({exc}); start one with `make docker-setup`"
        ) from None
    try:
        labels = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        raise ConfigError(
            f"--runner docker: image {image} is not in the Docker engine; build it with "
            "`make images` (or docker pull it)"
        ) from None
    finally:
        client.close()
    from components import images

    built = labels.get(images.SOURCE_DIGEST_LABEL)
    if built and built != images.source_digest():
        # Other code than this checkout's: its tasks may disagree with the parameters checked
        # here. A released image with a newer client is allowed, so this is a warning.
        print(
            f"sigdeploy: warning: {image} was built from other code than this checkout "
            f"(source digest {built}, here {images.source_digest()}); `make images` rebuilds it",
            file=sys.stderr,
        )

    pipeline_root = _shared_dir(out_dir / "pipeline-root")
    registry = _shared_dir(Path(params["registry"]))
    mounts = [Mount(str(registry), str(registry), type="bind")]
    source = Path(str(params.get("source", ""))).expanduser()
    if "://" not in str(params.get("source", "")) and ":" not in str(source) and source.exists():
        params["source"] = str(source.resolve())
        mounts.append(Mount(params["source"], params["source"], type="bind", read_only=True))
    groups = sorted({pipeline_root.stat().st_gid, registry.stat().st_gid})
    options: dict[str, Any] = {
        "mounts": mounts,
        "group_add": [str(g) for g in groups],
        "labels": {"sigdeploy.run": f"{os.getpid()}-{time.time_ns()}"},
    }
    if "://" not in str(params.get("source", "")):
        # every task reads and writes local paths only (the data, the registry)
        options["network_mode"] = "none"
    return local.DockerRunner(**options)


@contextlib.contextmanager
def _containers_ended(docker_runner: Any) -> Iterator[None]:
    """Stop this run's task containers when the run ends early (a signal, an error)."""
    try:
        yield
    except BaseException:
        if docker_runner is not None:
            docker = _docker_sdk()

            label = docker_runner.container_run_args["labels"]["sigdeploy.run"]
            with contextlib.suppress(docker.errors.DockerException):
                client = docker.from_env()
                for container in client.containers.list(
                    filters={"label": f"sigdeploy.run={label}"}
                ):
                    with contextlib.suppress(docker.errors.DockerException):
                        container.stop(timeout=int(TASK_GRACE_S))
                client.close()
        raise


def _artifact_path(artifact: Any) -> str:
    return getattr(artifact, "path", None) or str(getattr(artifact, "uri", ""))


def _summary(
    outputs: dict[str, Any],
    params: dict[str, Any],
    out_dir: Path,
    pipeline_path: Path,
    log_path: Path,
) -> dict[str, Any]:
    from components.core.io import dumps, read_json
    from components.core.registry import LocalRegistry

    decision_path = _artifact_path(outputs["decision"])
    decision = read_json(decision_path)
    registry = LocalRegistry(params["registry"], params["model_name"])
    champion = registry.champion()
    # What the deploy step did with this decision is in the registry's history (another run
    # may have deployed since, so the champion alone does not say): the newest entry that
    # carries this very decision.
    outcome: dict[str, Any] = {}
    if decision["deploy"]:
        ours = dumps(decision)
        outcome = next(
            (
                h
                for h in reversed(registry.history())
                if h.get("event") in ("deployed", "kept") and dumps(h.get("decision")) == ours
            ),
            {},
        )
        if not outcome:
            raise ConfigError(
                "the gate decided to deploy but the registry has no record of this decision; "
                f"see {log_path}"
            )
    moved = outcome.get("reason") if outcome.get("event") == "kept" else None
    # The HTML artifact's file is named after the output ("report"), which a browser shows
    # as text: the run's copies get the extensions.
    from components.core.io import atomic_path

    copies = {}
    for key, name in (("report", "report.html"), ("summary", "summary.md")):
        with atomic_path(out_dir / name) as tmp:
            tmp.write_bytes(Path(_artifact_path(outputs[key])).read_bytes())
        copies[key] = str(out_dir / name)
    return {
        "deployed": outcome.get("event") == "deployed",
        # the gate said deploy, but the champion moved since evaluation: why it was kept
        "champion_moved": moved,
        "deployed_version": outcome.get("version") if not moved else None,
        "p_value": decision["p_value"],
        "test": decision["test"],
        "alpha": decision["alpha"],
        "level": decision.get("level", decision["alpha"]),
        "accounting": (decision.get("accounting") or {}).get("accounting"),
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
            "report": copies["report"],
            "summary_markdown": copies["summary"],
            "report_artifact": _artifact_path(outputs["report"]),
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
    # a regressor has rmse / mae / r2; large targets get significant digits, not 4 decimals
    keys = (
        ("rmse", "mae", "r2") if "rmse" in ch else ("accuracy", "macro_f1", "log_loss", "roc_auc")
    )
    for key in keys:
        rows.append(f"{key:<10} {_metric_text(ch[key]):>11} {_metric_text(cp[key]):>11}")
    verdict = "DEPLOYED" if s["deployed"] else "NOT DEPLOYED"
    compared = f"compared with {s['compared_with']} on {s['counts']['test_rows']} test rows"
    why = [f"why: {s['reason']}"]
    if moved := s.get("champion_moved"):
        # the gate said deploy, but against a champion that is no longer the champion
        compared += "; the champion moved since evaluation"
        now = f"version {s['champion_version']}" if s["champion_version"] else "the baseline"
        why = [
            f"why: {moved}; the decision no longer holds: run again to test against {now}",
            f"gate said: {s['reason']}",
        ]
    paths = s["paths"]
    return "\n".join(
        [
            "",
            f"{verdict}: {s['model_name']} ({compared})",
            *rows,
            f"test: {s['test']}; {_p_shown(s['p_value'])}; alpha = {s['alpha']}; "
            f"level = {s['level']:.3g}" + (f" ({s['accounting']})" if s.get("accounting") else ""),
            *why,
            f"champion: version {s['champion_version']} at {paths['champion']}"
            if s["champion_version"]
            else "champion: none yet",
            f"model:    {paths['model']}",
            f"report:   {paths['report']}",
            f"registry: {paths['registry']}",
            f"({s['seconds']:.1f} s; runner log {paths['log']})",
        ]
    )


def _metric_text(value: Any) -> str:
    """A metric to 4 decimals (0.9662), or 6 significant digits where it is large (2923.87)."""
    if value is None:
        return "-"
    value = float(value)
    return f"{value:.4f}" if abs(value) < 100 else f"{value:.6g}"


def _p_shown(p: float) -> str:
    """ "p = 0.0123" to four digits, or the gate's own words where it underflowed."""
    from components.core.evaluation.gate import P_FLOOR, p_text

    return p_text(p) if p < P_FLOOR else f"p = {p:.4g}"
