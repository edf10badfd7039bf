"""Vertex AI as a place to serve and score a registered model version: the SDK pointed at a
project, an endpoint that serves a version with a canary share of the traffic, and batch
prediction jobs.

The functions take a version as plain values: its versioned resource name
(``projects/P/locations/R/models/ID@N``) and its version id. Finding the version (the
champion, a named one) is the registry's job (registry/vertex.py). They work in the project
and region that :func:`init_aiplatform` pointed the SDK at; opening a Vertex registry does
that. Every SDK failure a user can act on becomes one RegistryError line (:func:`errors`).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.core.errors import ConfigError, RegistryError
from components.core.platforms import gcp
from components.core.platforms.deploy_config import DeployConfig

log = logging.getLogger(__name__)

GRANT = "grant the pipeline's service account roles/aiplatform.user"
LABEL_VALUE = re.compile(r"[^a-z0-9_-]")
BATCH_FORMATS = {".jsonl": "jsonl", ".csv": "csv"}
BQ_TABLE = re.compile(rf"^bq://{gcp.PROJECT_ID}\.\w+\.[\w$-]+$")
BQ_PREFIX = re.compile(rf"^bq://{gcp.PROJECT_ID}(\.\w+)?$")


def init_aiplatform(project: str, region: str, api_endpoint: str = "") -> None:
    """Point the SDK at the project; an http:// endpoint is a local server: REST, no token."""
    from google.cloud import aiplatform

    kwargs: dict[str, Any] = {"project": project, "location": region}
    if api_endpoint:
        kwargs["api_endpoint"] = api_endpoint
        if api_endpoint.startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            kwargs |= {"api_transport": "rest", "credentials": AnonymousCredentials()}
    aiplatform.init(**kwargs)


@contextlib.contextmanager
def errors(what: str, project: str = "", region: str = "") -> Iterator[None]:
    """SDK calls inside fail as one RegistryError line naming the project and ``what`` was
    being done; NotFound is left to the caller (it often means "none yet").

    Without ``project`` and ``region``, those the SDK was pointed at."""
    from google.api_core import exceptions as gexc

    if not (project and region):
        from google.cloud.aiplatform import initializer

        project, region = initializer.global_config.project, initializer.global_config.location
    with gcp.google_errors(
        f"Vertex AI ({project}/{region})", what, RegistryError, grant=GRANT, keep=gexc.NotFound
    ):
        yield


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with errors(what):
        return fn(*args, **kwargs)


def label_value(value: Any) -> str:
    """``value`` as a Vertex AI label value: lowercase letters, digits, '-' and '_'."""
    return LABEL_VALUE.sub("-", str(value).lower())[:63]


def stamp() -> str:
    """A time-ordered, unique name for an object, a version's directory or a job."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- endpoints


def endpoint(display_name: str, model_name: str) -> Any:
    """The endpoint with this display name (the oldest, if several), or a new one."""
    from google.cloud import aiplatform

    found = _call(
        "list endpoints",
        aiplatform.Endpoint.list,
        filter=f'display_name="{display_name}"',
        order_by="create_time",
    )
    if found:
        return found[0]
    log.info("creating endpoint %s", display_name)
    return _call(
        "create the endpoint",
        aiplatform.Endpoint.create,
        display_name=display_name,
        labels={"sigdeploy-model": label_value(model_name)},
        sync=True,
    )


def serve(model_name: str, version: str, model: str, config: DeployConfig) -> dict[str, Any]:
    """Serve ``version`` of ``model_name`` (versioned resource name ``model``) on the endpoint
    ``config.endpoint_name`` (default: the model name) with ``canary_percent`` of the traffic.

    The rest of the traffic stays on the deployed model that had the most; models left with
    no traffic are undeployed (they would only cost money).
    """
    from google.cloud import aiplatform

    where = endpoint(config.endpoint_name or model_name, model_name)
    before = {d.id for d in where.list_models()}
    traffic = {k: int(v) for k, v in where.traffic_split.items() if v}
    old = max(traffic, key=lambda k: traffic[k]) if traffic else None
    percent = config.canary_percent if old else 100
    split = {"0": percent} | ({old: 100 - percent} if old and percent < 100 else {})
    _call(
        "deploy the model",
        where.deploy,
        model=aiplatform.Model(model),
        deployed_model_display_name=f"{model_name}-v{version}",
        traffic_split=split,
        machine_type=config.machine_type,
        min_replica_count=config.min_replicas,
        max_replica_count=config.max_replicas,
        sync=True,
    )
    where = aiplatform.Endpoint(where.resource_name)
    (new_id,) = {d.id for d in where.list_models()} - before
    final = {k: int(v) for k, v in where.traffic_split.items()}
    for deployed_id in sorted(before):
        if not final.get(deployed_id):
            log.info("undeploying %s from %s: no traffic left", deployed_id, where.display_name)
            _call("undeploy an old model", where.undeploy, deployed_model_id=deployed_id)
    return {
        "endpoint": where.resource_name,
        "deployed_model_id": new_id,
        "traffic_split": final,
        "previous_deployed_model_id": old,
    }


# ---------------------------------------------------------------------- batch prediction


@dataclass(frozen=True)
class BatchJob:
    """What a batch prediction job reads, writes and runs on; checked when made, so that a
    bad value is refused before any request."""

    source: str  # gs://.../*.jsonl or *.csv, or bq://PROJECT.DATASET.TABLE
    destination: str  # a gs:// prefix (JSON lines) or bq://PROJECT[.DATASET]
    machine_type: str = "n1-standard-4"  # machine per replica
    max_replicas: int = 1  # replicas at most, 1-1000
    wait: bool = False  # return when the job ends, not when it is created

    def __post_init__(self) -> None:
        batch_source(self.source)
        batch_destination(self.destination)
        if not 1 <= self.max_replicas <= 1000:
            raise ConfigError(f"max_replicas={self.max_replicas}: must be 1-1000")


def batch_source(uri: str) -> dict[str, Any]:
    """The batch job keyword arguments that read ``uri``; ConfigError when unusable."""
    if uri.startswith("gs://"):
        fmt = BATCH_FORMATS.get(Path(uri).suffix.lower())
        if fmt is None or len(uri) <= len("gs://x/") or uri.endswith("/"):
            raise ConfigError(
                f"--data {uri}: a batch job reads gs://BUCKET/PATH.jsonl or .csv files "
                "(or bq://PROJECT.DATASET.TABLE)"
            )
        return {"gcs_source": [uri], "instances_format": fmt}
    if BQ_TABLE.match(uri):
        return {"bigquery_source": uri, "instances_format": "bigquery"}
    raise ConfigError(
        f"--data {uri}: a batch job on Vertex AI reads gs://BUCKET/PATH.jsonl, .csv or "
        "bq://PROJECT.DATASET.TABLE; score local files without --batch-job"
    )


def batch_destination(uri: str) -> dict[str, Any]:
    """The batch job keyword arguments that write to ``uri``; ConfigError when unusable."""
    if uri.startswith("gs://") and uri[len("gs://") :].strip("/"):
        return {"gcs_destination_prefix": uri.rstrip("/"), "predictions_format": "jsonl"}
    if BQ_PREFIX.match(uri):
        return {"bigquery_destination_prefix": uri, "predictions_format": "bigquery"}
    raise ConfigError(
        f"--output {uri}: a batch job writes to a gs://BUCKET/PREFIX or bq://PROJECT[.DATASET]"
    )


def batch_predict(model_name: str, version: str, model: str, job: BatchJob) -> dict[str, Any]:
    """A Vertex AI batch prediction job of ``version`` of ``model_name`` (versioned resource
    name ``model``) over ``job.source``.

    A gs:// source is JSON lines (one instance object per line, the model's feature names as
    keys) or CSV (a header, then the features in the model's order). The job runs the
    version's serving container: the same image and predict route as the endpoint.
    """
    from google.cloud import aiplatform
    from google.cloud.aiplatform import initializer

    try:
        created = _call(
            "create the batch prediction job",
            aiplatform.BatchPredictionJob.create,
            model_name=model,
            job_display_name=f"{model_name}-v{version}-{stamp()}"[:128],
            machine_type=job.machine_type,
            starting_replica_count=1,
            max_replica_count=job.max_replicas,
            labels={"sigdeploy-model": label_value(model_name)},
            sync=job.wait,
            **batch_source(job.source),
            **batch_destination(job.destination),
        )
    except RuntimeError as exc:  # raised by the SDK when a waited-for job fails
        detail = " ".join(str(exc).split())[:400]  # "Job failed with: code: 3 ..."
        raise RegistryError(
            f"batch prediction of {model_name} failed on Vertex AI: {detail}; see the job in "
            "the console"
        ) from exc
    if not job.wait:
        created.wait_for_resource_creation()
    job_id = created.resource_name.rsplit("/", 1)[1]
    project, region = initializer.global_config.project, initializer.global_config.location
    return {
        "job": created.resource_name,
        "state": created.state.name,
        "model": model,
        "destination": job.destination,
        "console": "https://console.cloud.google.com/vertex-ai/locations/"
        f"{region}/batch-predictions/{job_id}?project={project}",
    }
