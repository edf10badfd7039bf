"""`sigdeploy submit vertex|kfp` and `sigdeploy schedule vertex`: send the compiled pipeline.

Everything that can be checked locally is checked before the first request: the pipeline
file, parameter names and types (against the compiled spec), the pipeline root, labels, the
images and the cron expression. A bad value ends the command with one line and exit code 2.

Vertex goes through ``google.cloud.aiplatform.PipelineJob`` (and ``create_schedule``); KFP
through ``kfp.Client``. Both print the run's URL on stdout; ``--wait`` follows the run's
state on stderr and exits 1 when it fails.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from components import images
from components.core.errors import ConfigError, SigdeployError
from components.core.platforms import gcp
from pipelines.spec import add_param_option

T = TypeVar("T")

PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
DEFAULT_REGION = "us-central1"
DEFAULT_KFP_HOST = "http://localhost:8080"
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
CRON_FIELD = re.compile(r"^[0-9A-Za-z*?,/\-#LW]+$")
VERTEX_DONE = {
    "PIPELINE_STATE_SUCCEEDED": 0,
    "PIPELINE_STATE_FAILED": 1,
    "PIPELINE_STATE_CANCELLED": 1,
}
KFP_DONE = {"SUCCEEDED": 0, "SKIPPED": 0, "FAILED": 1, "CANCELED": 1, "CANCELLED": 1}


class RunFailedError(SigdeployError):
    """The submitted run ended in failure (--wait)."""

    exit_code = 1


class SubmitError(SigdeployError):
    """The service refused or could not be reached."""


# ---------------------------------------------------------------------------- parsers


def add_parser(sub: argparse._SubParsersAction) -> None:
    submit = sub.add_parser("submit", help="submit the compiled pipeline to Vertex AI or KFP")
    where = submit.add_subparsers(dest="platform", metavar="PLATFORM", required=True)

    vertex = where.add_parser("vertex", help="run once on Vertex AI Pipelines")
    _vertex_arguments(vertex)
    vertex.add_argument("--wait", action="store_true", help="follow the run until it ends")
    vertex.add_argument(
        "--poll-seconds",
        type=float,
        default=30.0,
        help="with --wait: seconds between checks (default: 30)",
    )
    vertex.set_defaults(func=submit_vertex)

    kfp = where.add_parser("kfp", help="run once on a Kubeflow Pipelines cluster (e.g. kind)")
    kfp.add_argument(
        "--host", default=DEFAULT_KFP_HOST, help=f"KFP API (default {DEFAULT_KFP_HOST})"
    )
    kfp.add_argument(
        "--pipeline",
        default=None,
        help="compiled pipeline (default: pipeline-kind.yaml if present, else compile for kind)",
    )
    kfp.add_argument("--image", default=None, help="component image when compiling now")
    kfp.add_argument("--experiment", default=None, help="KFP experiment (created if missing)")
    kfp.add_argument("--run-name", default=None, help="run name (default sigdeploy-TIMESTAMP)")
    _common_run_arguments(kfp)
    kfp.add_argument("--wait", action="store_true", help="follow the run until it ends")
    kfp.add_argument(
        "--poll-seconds",
        type=float,
        default=10.0,
        help="with --wait: seconds between checks (default: 10)",
    )
    kfp.set_defaults(func=submit_kfp)

    schedule = sub.add_parser("schedule", help="run the pipeline on a cron schedule")
    swhere = schedule.add_subparsers(dest="platform", metavar="PLATFORM", required=True)
    sv = swhere.add_parser("vertex", help="a recurring Vertex AI pipeline schedule")
    _vertex_arguments(sv)
    sv.add_argument(
        "--cron",
        required=True,
        help='five-field cron, optionally with a time zone: "TZ=Europe/Berlin 0 3 * * 1"',
    )
    sv.add_argument(
        "--schedule-name",
        default=None,
        help="schedule display name (default: the run display name + -schedule)",
    )
    sv.add_argument(
        "--max-concurrent-runs", type=int, default=1, help="runs at once at most (default: 1)"
    )
    sv.add_argument(
        "--max-runs", type=int, default=None, help="stop after this many runs (default: no limit)"
    )
    sv.add_argument(
        "--start-time", default=None, help="RFC 3339, e.g. 2026-01-01T00:00:00Z (default: now)"
    )
    sv.add_argument("--end-time", default=None, help="RFC 3339; no end by default")
    sv.set_defaults(func=schedule_vertex)


def _common_run_arguments(p: argparse.ArgumentParser) -> None:
    add_param_option(p, "source=gs://b/data.csv")
    p.add_argument("--no-cache", action="store_true", help="run every task, ignore the cache")


def _vertex_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--project", default=None, help=f"GCP project (default ${PROJECT_ENV})")
    p.add_argument("--region", default=DEFAULT_REGION, help=f"default {DEFAULT_REGION}")
    p.add_argument(
        "--pipeline-root", required=True, help="gs://BUCKET/PATH for the run's artifacts"
    )
    p.add_argument(
        "--pipeline",
        default=None,
        help="compiled pipeline JSON (default: compile the vertex target now)",
    )
    p.add_argument("--image", default=None, help="component image when compiling now")
    p.add_argument("--service-account", default=None, help="service account the run uses")
    p.add_argument("--network", default=None, help="VPC: projects/NUMBER/global/networks/NAME")
    p.add_argument("--experiment", default=None, help="Vertex AI experiment (created if missing)")
    p.add_argument("--label", action="append", metavar="KEY=VALUE", help="run label, repeatable")
    p.add_argument(
        "--display-name",
        default=None,
        help="run display name (default: the pipeline name)",
    )
    p.add_argument(
        "--api-endpoint",
        default=None,
        help="Vertex API endpoint (default: the region's); http://HOST:PORT = a local test server",
    )
    _common_run_arguments(p)


# ------------------------------------------------------------------------ preparation


@contextlib.contextmanager
def _pipeline_file(
    path: str | None, target: str, image: str | None, default: str
) -> Iterator[Path]:
    """The given pipeline, the default file if present, or a fresh compile in a temp dir."""
    from pipelines.spec import compile_pipeline

    if path:
        yield Path(path)
        return
    if default and Path(default).is_file():
        yield Path(default)
        return
    with tempfile.TemporaryDirectory(prefix="sigdeploy-submit-") as tmp:
        suffix = ".yaml" if target == "kind" else ".json"
        out = compile_pipeline(target, Path(tmp) / f"pipeline-{target}{suffix}", image=image)
        print(f"sigdeploy: compiled the {target} target -> {out}", file=sys.stderr)
        yield out


def compiled_platform(spec: dict[str, Any]) -> str:
    """The target the spec was compiled for, as its deploy task says (local|vertex|kind)."""
    for component in spec.get("components", {}).values():
        deploy = component.get("dag", {}).get("tasks", {}).get("deploy")
        if deploy:
            value = deploy["inputs"]["parameters"].get("platform", {})
            return str(value.get("runtimeValue", {}).get("constant", "local"))
    return "local"


def check_platform(spec: dict[str, Any], path: Path, allowed: tuple[str, ...]) -> None:
    platform = compiled_platform(spec)
    if platform not in allowed:
        raise ConfigError(
            f"pipeline '{path}' was compiled for the {platform} target; compile it with "
            f"`python compile.py --target {allowed[0]}`"
        )


def spec_images(spec: dict[str, Any]) -> set[str]:
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    return {e["container"]["image"] for e in executors.values() if "container" in e}


def check_labels(pairs: list[str] | None) -> dict[str, str]:
    from pipelines.spec import parse_pairs

    labels = parse_pairs(pairs, "--label")
    for key, value in labels.items():
        if not LABEL_KEY.match(key) or not LABEL_VALUE.match(value):
            raise ConfigError(
                f"--label {key}={value}: keys and values use lowercase letters, digits, '_' and "
                "'-' (keys start with a letter), at most 63 characters"
            )
    if len(labels) > 64:
        raise ConfigError(f"--label: {len(labels)} labels; Vertex allows at most 64")
    return labels


def check_pipeline_root(root: str) -> str:
    if not re.match(r"^gs://[a-z0-9][a-z0-9._-]{1,221}[a-z0-9](/.*)?$", root or ""):
        raise ConfigError(
            f"--pipeline-root {root!r}: Vertex AI needs a Cloud Storage path, gs://BUCKET/PATH"
        )
    return root.rstrip("/")


def check_cron(cron: str) -> str:
    fields = cron.split()
    if fields and re.match(r"^(CRON_)?TZ=\S+$", fields[0]):
        fields = fields[1:]
    if len(fields) != 5 or not all(CRON_FIELD.match(f) for f in fields):
        raise ConfigError(
            f"--cron {cron!r}: write five fields, minute hour day month weekday, e.g. "
            '"0 3 * * 1", optionally after TZ=Area/City'
        )
    return cron


def _project(args: argparse.Namespace) -> str:
    project = args.project or os.environ.get(PROJECT_ENV, "")
    if not project:
        raise ConfigError(f"--project is missing: pass --project or set {PROJECT_ENV}")
    if not gcp.is_project_id(project):
        raise ConfigError(f"--project {project!r}: not a project id (6-30 lowercase characters)")
    return project


def vertex_parameters(
    spec: dict[str, Any], raw: dict[str, str], project: str, region: str, root: str
) -> dict[str, Any]:
    """Checked parameters, with Vertex defaults for the registry and the serving image."""
    from components.core.registry.vertex import registry_uri
    from pipelines.spec import check_parameters, parameter_types

    params = check_parameters(spec, raw)
    known = parameter_types(spec)
    if "registry" in known and "registry" not in params:
        params["registry"] = registry_uri(project, region, f"{root}/registry")
    registry = params.get("registry", "")
    if registry and not registry.startswith("vertex://"):
        raise ConfigError(
            f"parameter registry={registry!r}: on Vertex AI the registry is Model Registry, "
            f"vertex://{project}/{region}?artifacts=gs://BUCKET/PREFIX (the default)"
        )
    used = spec_images(spec)
    if images.COMPONENT_IMAGE in used:
        raise ConfigError(
            f"the pipeline uses the built-in image name {images.COMPONENT_IMAGE}, which Vertex "
            "cannot pull; push the image (make images REGISTRY=...) and compile with --image "
            "or SIGDEPLOY_COMPONENT_IMAGE"
        )
    if "serving_image" in known and "serving_image" not in params:
        component = next((i for i in sorted(used) if "/python-component:" in i), "")
        if not component:
            raise ConfigError(
                "parameter serving_image is not set: pass --param serving_image=REGISTRY/"
                "python-serving:TAG (the image Vertex serves the model with)"
            )
        params["serving_image"] = component.replace("/python-component:", "/python-serving:")
        print(
            f"sigdeploy: serving_image={params['serving_image']} (beside the component image)",
            file=sys.stderr,
        )
    return params


def _quiet_sdk_logs() -> None:
    """Without -v, keep the SDK's INFO chatter (it repeats our own lines) off the terminal."""
    root = logging.getLogger()
    if root.level <= logging.DEBUG:
        return

    def keep(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith(
            "google.cloud.aiplatform"
        )

    for handler in root.handlers:
        if keep not in handler.filters:
            handler.addFilter(keep)


def _google_call(doing: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """One SDK call; refusals and missing credentials become one line (gcp.google_errors)."""
    with gcp.google_errors("Vertex AI", doing, SubmitError):
        return fn(*args, **kwargs)


def _vertex_settings(args: argparse.Namespace) -> tuple[str, str, dict[str, str]]:
    """The checks that need no pipeline file: run them before compiling anything."""
    return _project(args), check_pipeline_root(args.pipeline_root), check_labels(args.label)


def console_url(project: str, region: str, kind: str, resource_name: str) -> str:
    """The Cloud console page of a pipeline run (kind=runs) or schedule (kind=schedules)."""
    resource_id = resource_name.rsplit("/", 1)[-1]
    return (
        f"https://console.cloud.google.com/vertex-ai/locations/{region}/pipelines/{kind}/"
        f"{resource_id}?project={project}"
    )


def _created(job: Any) -> bool:
    try:
        return bool(job.resource_name)
    except RuntimeError:  # the SDK's "resource has not been created"
        return False


def _vertex_job(
    args: argparse.Namespace, pipeline: Path, settings: tuple[str, str, dict[str, str]]
) -> tuple[Any, str]:
    """Parameters checked, the SDK pointed at the project: an unsubmitted PipelineJob and
    its display name."""
    from components.core.platforms.vertex import init_aiplatform
    from pipelines.spec import load_spec, parse_pairs

    project, root, labels = settings
    spec = load_spec(pipeline)
    check_platform(spec, pipeline, ("vertex",))
    params = vertex_parameters(spec, parse_pairs(args.param), project, args.region, root)

    from google.cloud import aiplatform

    _quiet_sdk_logs()
    init_aiplatform(project, args.region, args.api_endpoint or "")
    name = spec.get("pipelineInfo", {}).get("name", "sigdeploy")
    display_name = args.display_name or name
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    job = _google_call(
        "prepare the pipeline job",
        aiplatform.PipelineJob,
        display_name=display_name,
        template_path=str(pipeline),
        job_id=f"{name}-{stamp}-{os.urandom(2).hex()}",
        pipeline_root=root,
        parameter_values=params,
        enable_caching=False if args.no_cache else None,
        labels=labels or None,
        project=project,
        location=args.region,
    )
    return job, display_name


def submit_vertex(args: argparse.Namespace) -> int:
    settings = _vertex_settings(args)
    with _pipeline_file(args.pipeline, "vertex", args.image, "") as pipeline:
        job, _ = _vertex_job(args, pipeline, settings)
        try:
            _google_call(
                "submit the pipeline job",
                job.submit,
                service_account=args.service_account,
                network=args.network,
                experiment=args.experiment,
            )
        except RuntimeError as exc:  # the SDK's wrapper around experiment failures
            if not _created(job):
                raise SubmitError(f"Vertex AI experiment {args.experiment!r}: {exc}") from exc
            print(f"sigdeploy: warning: the run is not in the experiment: {exc}", file=sys.stderr)
    print(f"sigdeploy: submitted {job.resource_name}", file=sys.stderr)
    print(console_url(settings[0], args.region, "runs", job.resource_name))
    if not args.wait:
        return 0
    return _follow(
        lambda: _google_call("get the pipeline job's state", _vertex_state, job),
        VERTEX_DONE,
        args.poll_seconds,
        lambda: str(job.gca_resource.error.message or "no error message"),
    )


def _vertex_state(job: Any) -> str:
    return str(job.state.name)  # the property asks the service for the current state


def schedule_vertex(args: argparse.Namespace) -> int:
    cron = check_cron(args.cron)
    if args.max_concurrent_runs < 1:
        raise ConfigError(f"--max-concurrent-runs {args.max_concurrent_runs}: must be >= 1")
    if args.max_runs is not None and args.max_runs < 1:
        raise ConfigError(f"--max-runs {args.max_runs}: must be >= 1")
    if args.experiment:
        raise ConfigError("--experiment: Vertex schedules cannot attach runs to an experiment")
    settings = _vertex_settings(args)
    with _pipeline_file(args.pipeline, "vertex", args.image, "") as pipeline:
        job, display_name = _vertex_job(args, pipeline, settings)
        name = args.schedule_name or f"{display_name}-schedule"
        schedule = _google_call(
            "create the schedule",
            job.create_schedule,
            cron=cron,
            display_name=name,
            start_time=args.start_time,
            end_time=args.end_time,
            max_run_count=args.max_runs,
            max_concurrent_run_count=args.max_concurrent_runs,
            service_account=args.service_account,
            network=args.network,
        )
    print(f"sigdeploy: created schedule {schedule.resource_name} ({cron})", file=sys.stderr)
    print(console_url(settings[0], args.region, "schedules", schedule.resource_name))
    return 0


# -------------------------------------------------------------------------------- KFP


def kfp_parameters(
    spec: dict[str, Any], platform: dict[str, Any], raw: dict[str, str]
) -> dict[str, Any]:
    """Checked parameters; the registry defaults to the shared volume when the spec mounts it."""
    from components.core.platforms.kube import REGISTRY_DIR, SHARED_MOUNT
    from pipelines.spec import check_parameters, parameter_types

    params = check_parameters(spec, raw)
    executors = platform.get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
    mounts = [
        m.get("mountPath")
        for e in executors.get("executors", {}).values()
        for m in e.get("pvcMount", [])
    ]
    if "registry" in parameter_types(spec) and "registry" not in params and SHARED_MOUNT in mounts:
        params["registry"] = REGISTRY_DIR
    return params


def _platform_spec(path: Path) -> dict[str, Any]:
    """The second YAML document (kfp-kubernetes settings), or {}."""
    if path.suffix.lower() == ".json":
        return {}
    import yaml

    docs = list(yaml.safe_load_all(path.read_text()))
    return docs[1] if len(docs) > 1 and isinstance(docs[1], dict) else {}


@contextlib.contextmanager
def _yaml_package(path: Path) -> Iterator[Path]:
    """kfp.Client accepts only .yaml/.yml/.zip/.tar.gz names; JSON is valid YAML, so copy."""
    if path.suffix.lower() in (".yaml", ".yml"):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="sigdeploy-kfp-") as tmp:
        copy = Path(tmp) / f"{path.stem}.yaml"
        shutil.copyfile(path, copy)
        yield copy


def check_host(host: str) -> str:
    if not re.match(r"^https?://[^/\s]+", host or ""):
        raise ConfigError(f"--host {host!r}: write the KFP API URL, e.g. {DEFAULT_KFP_HOST}")
    return host.rstrip("/")


def _kfp_client(host: str) -> Any:
    """kfp.Client, after a quick health probe (the client itself retries for ~25 s)."""
    import urllib.error
    import urllib.request

    import kfp

    hint = "start it with `make kind-up`, which port-forwards the API to localhost:8080"
    try:
        with urllib.request.urlopen(f"{host}/apis/v2beta1/healthz", timeout=10):
            pass
    except urllib.error.HTTPError as exc:
        raise SubmitError(f"KFP at {host}: health check answered HTTP {exc.code}; {hint}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SubmitError(f"KFP at {host} is not reachable ({reason}); {hint}") from exc
    return kfp.Client(host=host)


def _kfp_call(what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    from kfp_server_api.exceptions import ApiException

    try:
        return fn(*args, **kwargs)
    except ApiException as exc:
        raise SubmitError(f"KFP {what}: HTTP {exc.status} {exc.reason}") from exc


def submit_kfp(args: argparse.Namespace) -> int:
    from pipelines.spec import load_spec, parse_pairs

    host = check_host(args.host)
    with _pipeline_file(args.pipeline, "kind", args.image, "pipeline-kind.yaml") as pipeline:
        spec = load_spec(pipeline)
        check_platform(spec, pipeline, ("kind", "local"))
        params = kfp_parameters(spec, _platform_spec(pipeline), parse_pairs(args.param))
        client = _kfp_client(host)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
        # kfp.Client prints its own links on stdout; stdout is for our one URL line
        with _yaml_package(pipeline) as package, contextlib.redirect_stdout(sys.stderr):
            result = _kfp_call(
                "refused the run",
                client.create_run_from_pipeline_package,
                str(package),
                arguments=params,
                run_name=args.run_name or f"sigdeploy-{stamp}",
                experiment_name=args.experiment,
                enable_caching=False if args.no_cache else None,
            )
    run_id = result.run_id
    print(f"sigdeploy: submitted run {run_id} to {host}", file=sys.stderr)
    print(f"{host}/#/runs/details/{run_id}")
    if not args.wait:
        return 0
    last: dict[str, Any] = {}

    def state() -> str:
        run = _kfp_call("run status", client.get_run, run_id)
        last["run"] = run
        return str(run.state)

    def message() -> str:
        error = getattr(last.get("run"), "error", None)
        return str(getattr(error, "message", "") or "see the run in the KFP UI")

    return _follow(state, KFP_DONE, args.poll_seconds, message)


# ------------------------------------------------------------------------------ --wait


def _follow(
    state: Callable[[], str], done: dict[str, int], poll: float, error: Callable[[], str]
) -> int:
    """Print each new state; return the exit code of the final one."""
    started, last = time.monotonic(), None
    while True:
        current = state()
        if current != last:
            took = time.monotonic() - started
            print(f"  {took:7.0f} s  {current}", file=sys.stderr, flush=True)
            last = current
        if current in done:
            if done[current]:
                raise RunFailedError(f"run ended {current}: {error()}")
            return 0
        time.sleep(max(poll, 0.0))
