"""`sigdeploy predict`: score a table with the champion (or a named version or bundle).

The data is read by the same loaders as ingest (CSV, Parquet, gs://, bq://, sklearn:...);
the output file gets every input column plus the predicted label and the class
probabilities (a regressor's: its ``predicted_value``). A label column in the data is kept,
not used as a feature, and the accuracy against it is reported (a regressor's RMSE, MAE and
R^2).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from components.core.errors import ConfigError
from components.core.platforms.vertex import BatchJob


def add_parser(sub: argparse._SubParsersAction) -> None:
    from pipelines.spec import add_registry_options

    p = sub.add_parser("predict", help="score a data file with the champion")
    p.add_argument("--data", required=True, help="CSV, Parquet, gs://, bq:// or sklearn: source")
    p.add_argument("--output", required=True, help="predictions file: .csv, .parquet or .jsonl")
    add_registry_options(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--version", default=None, help="a registry version, not the champion")
    which.add_argument("--bundle", default=None, help="a model bundle directory instead")
    p.add_argument("--label", default=None, help="label column, if present (default: the model's)")
    p.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="image folders: pixels per side (default: the size the model was trained at)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    job = p.add_argument_group(
        "on Vertex AI", "--batch-job: a Vertex AI batch prediction job scores gs:// or bq:// data"
    )
    job.add_argument("--batch-job", action="store_true", help="run on Vertex AI, not here")
    job.add_argument(
        "--machine-type",
        default=BatchJob.machine_type,
        help=f"batch job machine type (default: {BatchJob.machine_type})",
    )
    job.add_argument(
        "--max-replicas",
        type=int,
        default=BatchJob.max_replicas,
        help=f"batch job replicas at most (default: {BatchJob.max_replicas})",
    )
    job.add_argument("--wait", action="store_true", help="wait until the batch job ends")
    p.set_defaults(func=run)


def _model(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """The bundle to score with, and how to name it in the summary."""
    from components.core.model.bundle import load_bundle
    from components.core.registry import open_registry

    if args.bundle:
        return load_bundle(args.bundle), {"model": args.bundle}
    registry = open_registry(args.registry, args.model_name, existing=True)
    chosen = registry.version_bundle(args.version) if args.version else registry.champion()
    if chosen is None:
        raise ConfigError(
            f"{args.model_name} has no champion in {args.registry} yet; run the pipeline "
            "first, or score with --bundle DIR"
        )
    return load_bundle(chosen.path), {"model_name": args.model_name, "version": chosen.version}


def image_size(data: str, asked: int | None, bundle: Any) -> int:
    """The pixels per side to read an image folder at: the model's own, as its bundle
    records; a different ``asked`` size, or images for a model of tables, is refused."""
    from components.core.data.sources import source_kind

    if source_kind(data) != "image_folder":
        return asked or 28
    inputs = bundle.inputs
    trained = inputs.get("image_size") if inputs.get("source_kind") == "image_folder" else None
    name = bundle.meta.get("name") or str(bundle.path)
    if inputs and trained is None:
        raise ConfigError(
            f"--data {data}: model '{name}' was trained on {inputs.get('source_kind')} data, "
            "not on images; score it with data of the same columns"
        )
    if trained is not None and asked is not None and asked != trained:
        raise ConfigError(
            f"--image-size {asked}: model '{name}' was trained on {trained}x{trained} images; "
            f"drop --image-size or pass {trained}"
        )
    size = int(trained or asked or 28)
    if len(bundle.features) != size * size:  # a bundle from before sigdeploy kept the size
        side = int(round(len(bundle.features) ** 0.5))
        raise ConfigError(
            f"--data {data}: images read at {size}x{size} give {size * size} pixels, model "
            f"'{name}' takes {len(bundle.features)}; pass --image-size {side}"
        )
    return size


def run_batch_job(args: argparse.Namespace) -> int:
    """`--batch-job`: the scoring runs on Vertex AI; this command only submits (and waits).

    Everything is checked before any request: the data and output URIs, the replicas."""
    from components.core.io import dumps
    from components.core.platforms import vertex
    from components.core.registry import open_registry
    from components.core.registry.vertex import VertexRegistry

    if args.bundle:
        raise ConfigError("--batch-job scores a Model Registry version; drop --bundle")
    registry = open_registry(args.registry, args.model_name)
    if not isinstance(registry, VertexRegistry):
        raise ConfigError(
            f"--registry {args.registry}: --batch-job needs vertex://PROJECT/REGION; score "
            "local registries without --batch-job"
        )
    job = BatchJob(args.data, args.output, args.machine_type, args.max_replicas, args.wait)
    model, version = registry.version_resource(args.version)
    result = vertex.batch_predict(args.model_name, version, model, job)
    if args.json:
        print(dumps(result))
    else:
        print(f"batch prediction job {result['job']}: {result['state']}")
        print(f"  model  {result['model']}\n  output {result['destination']}")
        print(f"  watch  {result['console']}")
    return 0 if result["state"] != "JOB_STATE_FAILED" else 1


def run(args: argparse.Namespace) -> int:
    from components.core.model import batch

    if args.batch_job:
        return run_batch_job(args)
    from components.core.data.sources import load_source
    from components.core.io import dumps

    batch.check_output(args.output)  # a wrong extension fails before anything is read
    bundle, model = _model(args)
    label = args.label or bundle.label
    frame = load_source(args.data, label, image_size=image_size(args.data, args.image_size, bundle))
    result = batch.score_file(bundle, frame, args.output, label)
    metrics: dict[str, float] | None = None
    scores: dict[str, Any] = {"accuracy": result.accuracy}
    if bundle.regression:
        from components.core.evaluation.regression import METRICS, regression_metrics

        if result.labelled_values is not None:
            metrics = regression_metrics(*result.labelled_values)
        scores = dict.fromkeys(METRICS) | (metrics or {})  # in place of accuracy
    summary = {"rows": result.rows, "output": result.output, "labelled_rows": result.labelled_rows}
    summary |= scores | model
    if args.json:
        print(dumps(summary))
        return 0
    who = model.get("model") or f"{model['model_name']} version {model['version']}"
    print(f"scored {result.rows:,} rows with {who} -> {result.output}")
    against = f"against column {label!r} ({result.labelled_rows:,} labelled rows)"
    if result.accuracy is not None:
        print(f"accuracy {result.accuracy:.4f} {against}", file=sys.stderr)
    if metrics is not None:
        rmse, mae, r2 = (metrics[k] for k in METRICS)
        print(f"rmse {rmse:.6g}, mae {mae:.6g}, r2 {r2:.4f} {against}", file=sys.stderr)
    return 0
