"""The five pipeline steps as plain functions: one call per component.

Each takes local paths and plain parameters, does the work through the rest of the core
library and returns what the component logs as artifact metadata. A KFP component body only
resolves its artifact paths, calls one of these and writes the outputs.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.core import progress
from components.core.errors import DataError, RegistryError
from components.core.io import read_json, write_json
from components.core.registry import open_registry

if TYPE_CHECKING:
    from components.core.data.features import FeatureConfig
    from components.core.data.sources import SourceConfig
    from components.core.data.split import SplitConfig, SplitDefinition, SplitRecord
    from components.core.evaluation.compare import Evaluation
    from components.core.evaluation.gate import GatePolicy
    from components.core.model.bundle import Bundle
    from components.core.platforms.deploy_config import DeployConfig
    from components.core.registry import Champion, RegistryConfig
    from components.core.settings import Settings
    from components.core.training.config import TrainConfig

# Each pipeline task is a fresh interpreter that runs one of these functions, so heavy
# libraries (pandas, torch, scikit-learn, scipy) are imported inside the functions that use
# them: deploy imports none, ingest and preprocess no torch. That is most of a task's
# start-up on the local runner.

log = logging.getLogger(__name__)


def check_source(
    source: SourceConfig, split: SplitConfig, champion: SplitRecord | None = None
) -> tuple[Any, str]:
    """Load and validate a source exactly as ingest does; returns the frame and the task its
    label asks for (classification | regression).

    ``champion``: the champion's split record, whose key this run's split inherits."""
    from components.core.data import sources as data_mod
    from components.core.data.split import assign_for, resolve_key

    frame = source.load()
    task = data_mod.validate_frame(frame, source.label, source.source, source.task)
    # Every class must reach every split; the split itself is preprocess's job.
    key = resolve_key(frame, split, champion, data_mod.source_kind(source.source))
    assign_for(frame, source.label, split, key, task)
    return frame, task


def _champion_bundle(registry: str, model_name: str) -> tuple[Champion, Bundle] | None:
    """The current champion and its bundle, read only; None without one (or without a
    registry: a component run on its own; evaluate refuses an empty registry)."""
    from components.core.model.bundle import load_bundle

    if not registry:
        return None
    current = open_registry(registry, model_name).champion()
    return None if current is None else (current, load_bundle(current.path))


def check_champion(
    frame: Any, provenance: dict[str, Any], champion: Champion, bundle: Bundle, model_name: str
) -> SplitRecord | None:
    """What comparing with the champion needs of this run's data, checked before training:
    every feature the champion scores with (images at its size), a usable split record and
    every column its key needs. Returns that record (None for a bundle without one)."""
    what = f"champion version {champion.version} of '{model_name}'"
    bundle.check_task(str(provenance.get("task") or "classification"), what)
    bundle.check_inputs(frame, provenance, what)
    record = bundle.split_record(what)
    if record is not None:
        record.definition.key.check(frame, f"the split of {what}")
    return record


def preflight(settings: Settings) -> list[str]:
    """What a run can check before its first task: the data as ingest reads it, whether the
    champion can be compared on it (its features, image size and split key), the split, the
    feature columns and what the gate needs of the data. Every problem found in the data is
    reported at once; returns notes for the user (e.g. the columns left out)."""
    from components.core.data import sources as data_mod
    from components.core.data.features import select_columns
    from components.core.data.split import assign_for, resolve_key
    from components.core.errors import ConfigError, SigdeployError

    source = settings.source
    frame = source.load()
    task = data_mod.validate_frame(frame, source.label, source.source, source.task)
    label = source.label
    problems, notes = [], []
    record = None
    try:
        model_name = settings.registry.model_name
        if found := _champion_bundle(settings.registry.registry, model_name):
            provenance = source.describe() | {"task": task}
            record = check_champion(frame, provenance, *found, model_name)
    except SigdeployError as exc:
        problems.append(str(exc))
    try:
        key = resolve_key(frame, settings.split, record, data_mod.source_kind(source.source))
        assign_for(frame, label, settings.split, key, task)
    except SigdeployError as exc:
        problems.append(str(exc))
    try:
        settings.gate.check_task(task, int(frame[label].nunique()), label)
    except SigdeployError as exc:
        problems.append(str(exc))
    try:
        _, dropped = select_columns(frame, label, settings.features)
        notes = [f"column {c} left out of the features: {why}" for c, why in dropped.items()]
    except SigdeployError as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError(" | ".join(problems))
    return notes


def ingest(source: SourceConfig, split: SplitConfig, out_path: str) -> dict[str, Any]:
    from components.core.data import sources as data_mod

    frame, task = check_source(source, split)
    # the task travels with the rows (the Parquet footer) to preprocess, train and the bundle
    provenance = source.describe() | {"task": task}
    data_mod.write_parquet(frame, out_path, provenance)
    meta = data_mod.dataset_metadata(frame, source.label, task) | provenance
    progress.report(
        "ingest",
        f"read {meta['rows']:,} rows x {meta['columns']:,} columns from {source.source}"
        + (f"; '{source.label}' is a regression target" if task == "regression" else ""),
    )
    return meta


def preprocess(
    dataset_path: str,
    label: str,
    split: SplitConfig,
    features: FeatureConfig,
    train_path: str,
    val_path: str,
    test_path: str,
    preprocessor_path: str,
    registry: str = "",
    model_name: str = "",
) -> dict[str, Any]:
    """Split the rows and fit the preprocessor on train.

    With a champion in ``registry``, first check that it can be compared on this data (before
    any training) and key the split as it did; the split definition travels in each split's
    Parquet footer to the train step, which records it in the bundle."""
    from components.core.data import sources as data_mod
    from components.core.data.features import fit_preprocessor
    from components.core.data.split import SplitDefinition, resolve_key, split_frame

    frame = data_mod.read_parquet(dataset_path)
    provenance = data_mod.read_provenance(dataset_path)
    record = None
    if found := _champion_bundle(registry, model_name):
        record = check_champion(frame, provenance, *found, model_name)
    key = resolve_key(frame, split, record, str(provenance.get("source_kind", "")))
    definition = SplitDefinition(key, split)
    log.info("split: %s", definition.describe())
    task = str(provenance.get("task") or "classification")
    parts = split_frame(frame, label, split, key, task)
    pre = fit_preprocessor(parts["train"], label, features)
    out: dict[str, Any] = {}
    for name, path in (("train", train_path), ("val", val_path), ("test", test_path)):
        data_mod.write_parquet(parts[name], path, provenance, split=definition.to_json())
        out[name] = data_mod.dataset_metadata(parts[name], label, task) | {
            "split": name,
            "split_key": key.describe(),
        }
    write_json(preprocessor_path, pre.to_json())
    out["preprocessor"] = {
        "numeric": len(pre.numeric),
        "categorical": len(pre.categorical),
        "outputs": pre.n_outputs,
        "dropped": len(pre.dropped),
        "fitted_on": "train",
    }
    sizes = " / ".join(f"{out[n]['rows']:,} {n}" for n in ("train", "val", "test"))
    progress.report(
        "preprocess",
        f"split {sizes} rows; {len(pre.features):,} features "
        f"({len(pre.numeric)} numeric, {len(pre.categorical)} categorical)",
    )
    for col, why in pre.dropped:
        progress.report("preprocess", f"column {col} left out of the features: {why}")
    return out


def _classes(frame: Any, label: str) -> list[Any]:
    values = frame[label].dropna().unique().tolist()
    try:
        return sorted(values)
    except TypeError:  # mixed types: order by text
        return sorted(values, key=str)


def train(
    train_path: str,
    val_path: str,
    preprocessor_path: str,
    label: str,
    config: TrainConfig,
    model_dir: str,
    model_name: str = "",
    checkpoint_dir: str | None = None,
) -> tuple[list[dict[str, float]], dict[str, Any]]:
    from components.core.data import sources as data_mod
    from components.core.data.features import Preprocessor
    from components.core.data.split import SplitDefinition

    footer = data_mod.read_split_footer(train_path)
    try:
        split = SplitDefinition.from_json(footer) if footer else None
    except ValueError as exc:
        raise DataError(
            f"train data '{train_path}': its split definition is unreadable ({exc}); run "
            "preprocess again"
        ) from None
    return train_frames(
        data_mod.read_parquet(train_path),
        data_mod.read_parquet(val_path),
        Preprocessor.from_json(read_json(preprocessor_path)),
        label,
        config,
        model_dir,
        model_name,
        checkpoint_dir,
        provenance=data_mod.read_provenance(train_path),
        split=split,
    )


def train_frames(
    train_df: Any,
    val_df: Any,
    pre: Any,
    label: str,
    config: TrainConfig,
    model_dir: str | Path,
    model_name: str = "",
    checkpoint_dir: str | None = None,
    provenance: dict[str, Any] | None = None,
    split: SplitDefinition | None = None,
) -> tuple[list[dict[str, float]], dict[str, Any]]:
    """Train on raw train/validation rows with a fitted preprocessor; write ONE bundle.

    ``provenance`` says how the raw rows were made (source, image size); the bundle keeps it
    with the columns used and left out, so predict and serve read new data the same way.
    ``split``: how the rows were split; the bundle records it with the keys of every train
    and validation row, so a later evaluation can leave out the test rows this model saw.
    Returns the per-epoch history and the training facts stored in bundle.json.
    """
    import numpy as np

    from components.core.data import sources as data_mod
    from components.core.data.features import feature_statistics
    from components.core.data.split import SplitRecord
    from components.core.evaluation.metrics import encode_labels
    from components.core.model.bundle import save_bundle
    from components.core.training.train import train_mlp, train_regressor

    x_train, x_val = pre.transform(train_df), pre.transform(val_df)
    if str((provenance or {}).get("task")) == "regression":
        classes: list[Any] = []
        keep = np.ones(len(val_df), bool)
        result = train_regressor(
            x_train,
            train_df[label].to_numpy(np.float64),
            x_val,
            val_df[label].to_numpy(np.float64),
            config,
            checkpoint_dir=checkpoint_dir,
            loss=config.regression_loss,
        )
    else:
        classes = _classes(train_df, label)
        y_train = encode_labels(train_df[label], classes)
        y_val = encode_labels(val_df[label], classes)
        keep = y_val >= 0  # a validation label unseen in train cannot be learned: leave it out
        result = train_mlp(
            x_train,
            y_train,
            x_val[keep],
            y_val[keep],
            len(classes),
            config,
            checkpoint_dir=checkpoint_dir,
        )
    best = result.history[result.best_epoch - 1] if result.best_epoch else result.history[-1]
    meta: dict[str, Any] = {
        "name": model_name,
        # the automatic (0) batch size, epochs and patience as this run set them
        "train_config": result.extra.get("train_config") or config.to_json(),
        "calibration": result.extra.get("calibration"),  # temperature, validation log loss
        "training": {
            "rows": int(len(train_df)),
            "val_rows": int(keep.sum()),
            "data_sha256": data_mod.content_sha256(train_df),
            "best_epoch": result.best_epoch,
            "epochs_run": len(result.history),
            "val_loss": best["val_loss"],
            # a regressor's validation score is its loss: it has no accuracy
            "val_accuracy": None if result.extra.get("target") else best["val_accuracy"],
            "device": result.device,
            "precision": result.precision,
            "seconds": round(result.seconds, 3),
            "resumed_from_epoch": result.resumed_from_epoch,
            # how it ran: why it stopped, CUDA graph or eager steps, data on the device or
            # streamed from host memory, processes (GPUs) used
            **{k: result.extra[k] for k in ("stop_reason", "cuda_graph", "streamed", "world_size")},
        },
        "training_history": [
            {k: v if isinstance(v, int) else round(float(v), 6) for k, v in row.items()}
            for row in result.history
        ],
        "inputs": (provenance or {})
        | {"columns_used": list(pre.features), "columns_dropped": dict(pre.dropped)},
        "feature_statistics": feature_statistics(train_df, pre),
    }
    if target := result.extra.get("target"):  # regression: the loss, mean, scale and mad
        meta["training"]["target"] = target
    record = SplitRecord.of(split, train_df, val_df) if split is not None else None
    save_bundle(model_dir, result.network, pre, classes, label, extra=meta, split=record)
    if checkpoint_dir:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the bundle now supersedes it
    return result.history, meta["training"]


def evaluate(
    model_dir: str,
    train_path: str,
    test_path: str,
    registry: str,
    model_name: str,
    policy: GatePolicy,
    decision_path: str,
    report_html: str | None = None,
    report_md: str | None = None,
) -> Evaluation:
    """Champion against challenger on the same test rows, at the level the registry's ledger
    gives this comparison (evaluation/alpha.py), on the rows it chooses.

    The ledger is read and checked before anything is decided (a damaged one stops here,
    one line, nothing written). Both models are scored, then the comparison is reserved in
    the ledger under the registry's lock (its attempt, level and rows); the gate decides at
    that level on those rows, and the outcome is appended. A deploy's record carries the
    ledger id, which ``register`` uses to record the version it became."""
    from components.core.data import sources as data_mod
    from components.core.evaluation import accounting as acct_mod
    from components.core.evaluation import report as report_mod
    from components.core.evaluation.compare import judge, keep_unseen, keys_of, ledger_key, score
    from components.core.evaluation.gate import p_text
    from components.core.model.bundle import load_bundle
    from components.core.registry import ledger as ledger_mod

    challenger = load_bundle(model_dir)
    test_df = data_mod.read_parquet(test_path)
    challenger.check_schema(test_df, what=f"model '{model_name}' (the challenger)")
    reg = open_registry(registry, model_name)
    current = reg.champion()
    champion, excluded, record = None, None, None
    if current is not None:
        champion = load_bundle(current.path)
        # the checks preprocess ran on the whole data, for the challenger's task
        provenance = data_mod.read_provenance(test_path) | {"task": challenger.task}
        record = check_champion(test_df, provenance, current, champion, model_name)
    # One key per test row (the champion's key definition, else this run's): it finds the
    # rows the champion saw, and the ledger records which rows decided what.
    key = ledger_key(test_df, record, data_mod.read_split_footer(test_path))
    keys = keys_of(test_df, key)
    if current is not None:
        # Both models on rows neither trained on: leave out every test row the champion
        # trained or validated on, found by its own key definition.
        test_df, kept_keys, excluded = keep_unseen(test_df, keys, record, current.version)
        keys = keys if kept_keys is None else kept_keys
        if excluded["rows"] or excluded["guarantee"] != "full":
            progress.report("evaluate", excluded["why"])
    ledger = reg.ledger()  # before anything is decided: a damaged ledger stops the run here
    alpha_policy = policy.alpha_policy()
    if not ledger.kept and alpha_policy.accounting != "per_comparison":
        raise RegistryError(
            f"{ledger.note}, and alpha_accounting={alpha_policy.accounting} needs one to count "
            "earlier attempts; use vertex://PROJECT/REGION?artifacts=gs://BUCKET/PREFIX, or "
            "alpha_accounting=per_comparison (no promise across runs)"
        )
    scored = score(
        challenger,
        test_df,
        policy,
        champion=champion,
        train_df=data_mod.read_parquet(train_path) if current is None else None,
        champion_version=current.version if current else None,
    )
    against = current.version if current else ledger_mod.BASELINE
    if ledger.kept:
        plan = acct_mod.Reservation(alpha_policy, against, keys, key.describe())
        stored = reg.append_ledger(plan)
        accounting = plan.accounting(stored, ledger.where)
    else:
        accounting = acct_mod.unrecorded(alpha_policy, against, keys, ledger.note)
    for note in accounting.ledger["notes"]:
        progress.report("evaluate", note)
    ev = judge(
        challenger,
        scored.subset(accounting.rows.use),
        policy,
        champion_version=current.version if current else None,
        excluded=excluded,
        accounting=accounting,
    )
    decision = ev.decision
    if ledger.kept:
        outcome = ledger_mod.outcome_record(plan.id, decision.p_value, decision.deploy)
        reg.append_ledger(outcome)
    payload = decision.to_json() | {
        "provenance": {k: v for k, v in ev.provenance.items() if k != "training_history"},
        "excluded": ev.excluded,
        "model_name": model_name,
        "registry": registry,
        "champion_version": ev.champion_version,
        "challenger_training": challenger.meta.get("training", {}),
        "policy": policy.to_json(),
        "ledger": accounting.ledger,
    }
    write_json(decision_path, payload)
    if report_html:
        report_mod.write_html(report_html, ev, model_name)
    if report_md:
        report_mod.write_markdown(report_md, ev, model_name)
    if not decision.deploy:
        reg.record(payload)
    progress.report(
        "evaluate",
        f"{'deploy' if decision.deploy else 'do not deploy'}: {p_text(decision.p_value)}, "
        f"{_level_words(decision.level, policy)}",
    )
    return ev


def _level_words(level: float, policy: GatePolicy) -> str:
    """'level 0.025 (alpha 0.05, per_champion)', or 'alpha 0.05' when they are one."""
    from components.core.evaluation.alpha import level_text

    if level == policy.alpha:
        return f"alpha {policy.alpha} ({policy.alpha_accounting})"
    return f"level {level_text(level)} (alpha {policy.alpha}, {policy.alpha_accounting})"


def register(
    model_dir: str, decision_path: str, registry: str, model_name: str, serving_image: str = ""
) -> dict[str, Any]:
    """Register the bundle as the new champion, if and only if the decision says deploy and
    the champion is still the version the decision was made against (compare-and-swap: a
    champion that moved meanwhile raises ChampionMovedError and is kept).

    ``serving_image``: the container a Vertex AI version is served with (unused locally)."""
    decision = read_json(decision_path)
    if not decision.get("deploy"):
        raise DataError(f"decision '{decision_path}' says not to deploy; refusing to register")
    if "champion_version" not in decision:
        # Without it the decision cannot be checked against the champion now; promoting it
        # anyway could put a worse model over a better one.
        raise DataError(
            f"decision '{decision_path}' does not say which champion it was made against (no "
            "champion_version; written by an older sigdeploy?): nothing registered; run "
            "evaluate again"
        )
    against = decision["champion_version"]
    reg = open_registry(registry, model_name, serving_image=serving_image)
    champion = reg.register(model_dir, decision, expected=None if against is None else str(against))
    return {"version": champion.version, "uri": champion.uri, "model_name": model_name}


def deploy(
    model_dir: str,
    decision_path: str,
    where: RegistryConfig,
    config: DeployConfig,
    platform: str = "local",
) -> dict[str, Any]:
    """Register the champion, then serve it where the compile target runs.

    local: the local registry (served by `sigdeploy serve`); vertex: a Model Registry version
    with the champion alias, served on an endpoint with a canary split; kind: the shared
    registry, served by a Deployment/Service. ``config`` applies to vertex (all of it) and
    kind (image, replicas).

    ``promoted`` in the result is False when the champion moved since evaluate compared
    against it (another deploy or a rollback came first): the champion is kept, the registry
    history says why, nothing is served, ``version`` is None, ``uri`` is "" (the component
    returns it as a string), ``champion`` is the version kept and ``reason`` says why. That is
    an outcome, not a failure: the task succeeds.
    """
    from components.core.errors import ChampionMovedError

    if platform not in ("local", "vertex", "kind"):
        raise DataError(f"platform {platform!r}: use local, vertex or kind")
    if platform == "vertex" and not where.registry.startswith("vertex://"):
        raise RegistryError(
            f"registry {where.registry!r}: the vertex target registers in Model Registry; "
            "write vertex://PROJECT/REGION[?artifacts=gs://BUCKET/PREFIX]"
        )
    if platform == "kind":
        from components.core.platforms import kube

        kube.serving_for(config)  # a setting that cannot serve fails before the champion moves
    # only a Vertex AI version names the image that serves it
    image = config.serving_image if platform == "vertex" else ""
    try:
        result = register(model_dir, decision_path, where.registry, where.model_name, image)
    except ChampionMovedError as exc:
        progress.report("deploy", f"not promoted, the champion is kept: {exc.reason}")
        return {
            "promoted": False,
            "version": None,
            "uri": "",
            "model_name": where.model_name,
            "champion": exc.current,
            "reason": exc.reason,
        }
    if platform == "vertex":
        from components.core.platforms import vertex

        result |= vertex.serve(where.model_name, result["version"], result["uri"], config)
    elif platform == "kind":
        result |= kube.serve(
            where.model_name, result["version"], result["uri"], config, read_json(decision_path)
        )
    progress.report(
        "deploy", f"version {result['version']} of {where.model_name} is the champion ({platform})"
    )
    return result | {"promoted": True}
