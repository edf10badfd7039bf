"""Vertex AI Model Registry as the sigdeploy registry.

Registry URI: ``vertex://PROJECT/REGION[?artifacts=gs://BUCKET/PREFIX][&api_endpoint=URL]``.

- The champion is the version of the parent model (display name = model name) that carries
  the ``champion`` alias; evaluate copies its artifact directory (gs://) to a local cache.
- ``register`` copies the bundle to ``<artifacts>/<model>/<stamp>/``, uploads it as a new
  version of the parent model with the serving image as its custom container, moves the
  ``champion`` alias to it, and imports the evaluation onto the version. Given the champion
  version its decision was made against, it moves the alias only while the alias still
  names that version (read before the upload and again before the move).
- Every decision (deployed or kept) and every rollback is kept as a JSON object under
  ``<artifacts>/<model>/history/``; ``history`` reads them back, oldest first.
- ``rollback`` moves the ``champion`` alias back to an earlier version (by default the one
  before the current champion, from that history).
- The ledger (registry/ledger.py) is one object per record, ``<artifacts>/<model>/ledger/
  <n>.json``, and the decisions' row keys ``ledger/keys/<sha256>.npy``. A record is created
  only if its number is still free (a generation-0 precondition), so of two evaluations
  racing for the same attempt one writes it and the other reads the ledger again.

Serving a version on an endpoint and batch prediction jobs are platforms/vertex.py's: they
take the version's resource name (``Champion.uri``, ``version_resource``).

``api_endpoint`` is for private endpoints and for tests: an ``http://`` endpoint is a local
test server, so requests go over REST and carry no credentials.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from components.core import serving_contract
from components.core.errors import ConfigError, RegistryError, SigdeployError
from components.core.platforms import gcp
from components.core.platforms import vertex as vertex_ai
from components.core.registry import ledger as ledger_mod
from components.core.registry.base import (
    ANY_CHAMPION,
    Champion,
    Expected,
    VersionInfo,
    champion_moved,
    check_model_name,
    moved_error,
)

log = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
CLASSIFICATION_METRICS_SCHEMA = (
    "gs://google-cloud-aiplatform/schema/modelevaluation/classification_metrics_1.0.0.yaml"
)
REGRESSION_METRICS_SCHEMA = (
    "gs://google-cloud-aiplatform/schema/modelevaluation/regression_metrics_1.0.0.yaml"
)
REGION_RE = re.compile(r"^[a-z]+-[a-z]+\d+$")
LEDGER_RECORD = re.compile(r"^(\d{8})\.json$")
LEDGER_STARTED = "started"  # an object that starts an empty ledger (a new account)
LEDGER_TRIES = 20  # appends overtaken by other evaluations before giving up


def parse_uri(uri: str) -> tuple[str, str, dict[str, str]]:
    """``vertex://PROJECT/REGION?k=v`` -> (project, region, options)."""
    parts = urllib.parse.urlsplit(uri)
    region = parts.path.strip("/")
    if parts.scheme != "vertex" or not parts.netloc or not region or "/" in region:
        raise RegistryError(
            f"registry {uri!r}: write vertex://PROJECT/REGION[?artifacts=gs://BUCKET/PREFIX]"
        )
    if not gcp.is_project_id(parts.netloc):
        raise RegistryError(f"registry {uri!r}: '{parts.netloc}' is not a project id")
    if not REGION_RE.match(region):
        raise RegistryError(f"registry {uri!r}: '{region}' is not a region, e.g. us-central1")
    options = dict(urllib.parse.parse_qsl(parts.query))
    unknown = set(options) - {"artifacts", "api_endpoint"}
    if unknown:
        raise RegistryError(
            f"registry {uri!r}: unknown option(s) {', '.join(sorted(unknown))}; "
            "use artifacts= and api_endpoint="
        )
    if options.get("artifacts") and not options["artifacts"].startswith("gs://"):
        raise RegistryError(f"registry {uri!r}: artifacts= must be a gs:// prefix")
    return parts.netloc, region, options


def registry_uri(project: str, region: str, artifacts: str = "") -> str:
    query = f"?{urllib.parse.urlencode({'artifacts': artifacts}, safe=':/')}" if artifacts else ""
    return f"vertex://{project}/{region}{query}"


def _epoch(value: Any) -> float | None:
    """A create time from the SDK (a datetime, or unset) as seconds since the epoch."""
    if value is None or not hasattr(value, "timestamp"):
        return None
    seconds = float(value.timestamp())
    return seconds if seconds > 0 else None


def _version_order(info: Any) -> tuple[float, int, str]:
    """Oldest first: by create time, then by version id (ids count up)."""
    vid = str(info.version_id)
    return (_epoch(info.version_create_time) or 0.0, int(vid) if vid.isdigit() else 0, vid)


class VertexRegistry:
    """Versions of one parent model in Vertex AI Model Registry, with a ``champion`` alias."""

    def __init__(
        self,
        project: str,
        region: str,
        model_name: str,
        *,
        artifacts: str = "",
        serving_image: str = "",
        api_endpoint: str = "",
        cache_dir: str | Path | None = None,
    ) -> None:
        self.project, self.region = project, region
        self.model_name = check_model_name(model_name)
        self.artifacts = artifacts.rstrip("/")
        self.serving_image = serving_image
        self.api_endpoint = api_endpoint
        self.cache_dir = Path(cache_dir or Path(tempfile.gettempdir()) / "sigdeploy-vertex")
        self._warned_no_history = False
        vertex_ai.init_aiplatform(project, region, api_endpoint)

    @classmethod
    def from_uri(cls, uri: str, model_name: str, **kwargs: Any) -> VertexRegistry:
        project, region, options = parse_uri(uri)
        return cls(
            project,
            region,
            model_name,
            artifacts=options.get("artifacts", ""),
            api_endpoint=options.get("api_endpoint", ""),
            **kwargs,
        )

    @property
    def uri(self) -> str:
        return registry_uri(self.project, self.region, self.artifacts)

    # ---------------------------------------------------------------- lookups

    def parent(self) -> Any:
        """The parent model (its default version), or None before the first register."""
        from google.cloud import aiplatform

        found = self._call(
            "list models",
            aiplatform.Model.list,
            filter=f'display_name="{self.model_name}"',
            order_by="create_time",
        )
        if len(found) > 1:
            log.warning(
                "%d models are named %s; using the oldest, %s",
                len(found),
                self.model_name,
                found[0].resource_name,
            )
        return found[0] if found else None

    def champion_model(self, parent: Any = None) -> Any:
        from google.api_core import exceptions as gexc
        from google.cloud.aiplatform.models import ModelRegistry

        parent = parent or self.parent()
        if parent is None:
            return None
        try:
            return ModelRegistry(parent.resource_name).get_model(version=CHAMPION_ALIAS)
        except gexc.NotFound:
            return None

    def champion(self) -> Champion | None:
        """The version with the ``champion`` alias, copied to a local directory."""
        model = self._call("get the champion", self.champion_model)
        if model is None:
            return None
        return self._local_champion(
            model,
            not_gcs="re-register the champion with sigdeploy",
            no_bundle="it was not registered by sigdeploy",
        )

    def _local_champion(
        self, model: Any, *, not_gcs: str, no_bundle: str, complete: bool = False
    ) -> Champion:
        """``model`` (one version) with its artifact directory copied to the local cache;
        ``not_gcs`` / ``no_bundle`` say what to do when it is not a sigdeploy bundle, and
        ``complete`` also requires the preprocessor and the weights (what serving needs)."""
        from components.core.bundle_format import BUNDLE_JSON, missing_files

        uri = (model.uri or "").rstrip("/")  # the version's artifact directory
        if not uri.startswith("gs://"):
            raise RegistryError(
                f"Vertex model {model.versioned_resource_name}: artifact URI {uri!r} is not on "
                f"gs://; {not_gcs}"
            )
        model_id = model.resource_name.rsplit("/", 1)[1]
        local = self.cache_dir / f"{model_id}-v{model.version_id}"
        if not (local / BUNDLE_JSON).is_file():
            if not gcp.exists(f"{uri}/{BUNDLE_JSON}"):
                raise RegistryError(
                    f"Vertex model {model.versioned_resource_name}: {uri} holds no "
                    f"{BUNDLE_JSON}; {no_bundle}"
                )
            gcp.download_dir(uri, local)
        missing = missing_files(local)
        if not complete:
            missing = [n for n in missing if n == BUNDLE_JSON]
        if missing:
            raise RegistryError(
                f"Vertex model {model.versioned_resource_name}: {uri} lacks "
                f"{', '.join(missing)}; {no_bundle}"
            )
        return Champion(
            version=str(model.version_id), path=local, uri=model.versioned_resource_name
        )

    def history(self) -> list[dict[str, Any]]:
        """Every decision and rollback kept under ``artifacts``, oldest first."""
        if not self.artifacts:
            if not self._warned_no_history:
                self._warned_no_history = True
                log.warning(
                    "no artifacts= location in %s: no decision history is kept there", self.uri
                )
            return []
        prefix = f"{self.artifacts}/{self.model_name}/history"
        entries = []
        for object_uri, entry in gcp.list_json(prefix):  # stamped names sort by time
            if isinstance(entry, dict):
                entries.append(entry)
            else:
                log.warning("%s is not a history entry; skipped", object_uri)
        return entries

    def version_infos(self) -> list[VersionInfo]:
        """Every version of the parent model, oldest first."""
        from google.cloud.aiplatform.models import ModelRegistry

        parent = self.parent()
        if parent is None:
            return []
        versions = self._call(
            "list the model versions", ModelRegistry(parent.resource_name).list_versions
        )
        deployed = {
            str(h["version"]): h
            for h in self.history()
            if h.get("event") == "deployed" and h.get("version") is not None
        }
        infos = []
        for v in sorted(versions, key=_version_order):
            version = str(v.version_id)
            entry = deployed.get(version, {})
            infos.append(
                VersionInfo(
                    version=version,
                    created=_epoch(v.version_create_time) or entry.get("time"),
                    champion=CHAMPION_ALIAS in (v.version_aliases or ()),
                    uri=f"{v.model_resource_name}@{version}",
                    decision=entry.get("decision") or {},
                )
            )
        return infos

    def rollback(self, version: str | None = None, reason: str = "") -> Champion:
        """Move the ``champion`` alias back to an earlier version and record why. Without
        ``version``, the champion before the current one (so a second rollback undoes the
        first). The endpoint is not touched: serve the result with platforms.vertex.serve."""
        from google.api_core import exceptions as gexc
        from google.cloud.aiplatform.models import ModelRegistry

        where = f"registry '{self.uri}' (model {self.model_name})"
        parent = self.parent()
        if parent is None:
            raise RegistryError(
                f"{where}: there is no model to roll back; nothing has been registered under "
                "this model name in this project and region"
            )
        current = self._call("get the champion", self.champion_model, parent)
        if current is None:
            raise RegistryError(
                f"{where}: no version carries the '{CHAMPION_ALIAS}' alias, so there is no "
                "champion to roll back; deploy a model first"
            )
        current_version = str(current.version_id)
        registry = ModelRegistry(parent.resource_name)
        versions = self._call("list the model versions", registry.list_versions)
        known = [str(v.version_id) for v in sorted(versions, key=_version_order)]
        if version is None:
            before = [
                h.get("previous")
                for h in self.history()
                if str(h.get("version")) == current_version
            ]
            if not before or before[-1] is None:
                raise RegistryError(
                    f"{where}: version {current_version} has no recorded predecessor; name the "
                    f"version to restore (versions: {', '.join(known)})"
                )
            version = str(before[-1])
        version = str(version).strip()
        if version not in known:
            raise RegistryError(f"{where}: no version {version!r}; versions: {', '.join(known)}")
        if version == current_version:
            raise RegistryError(f"{where}: version {version} is already the champion")
        try:
            target = self._call(f"get version {version}", registry.get_model, version=version)
        except gexc.NotFound as exc:
            raise RegistryError(
                f"{where}: version {version} has gone (deleted meanwhile?); versions were: "
                f"{', '.join(known)}"
            ) from exc
        stays = f"it cannot serve, so the champion stays version {current_version}"
        champion = self._local_champion(target, not_gcs=stays, no_bundle=stays, complete=True)
        self._call(
            "move the champion alias",
            registry.add_version_aliases,
            [CHAMPION_ALIAS],
            version=version,
        )
        self._history("rolled_back", {}, version=version, previous=current_version, reason=reason)
        log.info(
            "%s: champion rolled back from %s to %s", self.model_name, current_version, version
        )
        return champion

    def version_bundle(self, version: str) -> Champion:
        """Version ``version``, its bundle copied to the local cache (to score it here)."""
        from google.api_core import exceptions as gexc
        from google.cloud.aiplatform.models import ModelRegistry

        where = f"registry '{self.uri}' (model {self.model_name})"
        parent = self.parent()
        if parent is None:
            raise RegistryError(f"{where}: no model is registered under this name")
        version = str(version).strip()
        try:
            model = self._call(
                f"get version {version}",
                ModelRegistry(parent.resource_name).get_model,
                version=version,
            )
        except gexc.NotFound as exc:
            raise RegistryError(
                f"{where}: no version {version!r}; `sigdeploy registry show` lists them"
            ) from exc
        fix = "it was not registered by sigdeploy"
        return self._local_champion(model, not_gcs=fix, no_bundle=fix, complete=True)

    def version_resource(self, version: str | None = None) -> tuple[str, str]:
        """(versioned resource name, version id) of ``version``, or of the champion: what
        platforms/vertex.py serves and scores. Nothing is copied down."""
        from google.api_core import exceptions as gexc
        from google.cloud.aiplatform.models import ModelRegistry

        where = f"registry '{self.uri}' (model {self.model_name})"
        parent = self.parent()
        if parent is None:
            raise RegistryError(f"{where}: no model to score with; deploy one first")
        if version is None:
            model = self._call("get the champion", self.champion_model, parent)
            if model is None:
                raise RegistryError(
                    f"{where}: no version carries the '{CHAMPION_ALIAS}' alias; name a version"
                )
        else:
            try:
                model = self._call(
                    f"get version {version}",
                    ModelRegistry(parent.resource_name).get_model,
                    version=str(version),
                )
            except gexc.NotFound as exc:
                raise RegistryError(
                    f"{where}: no version {version!r}; `sigdeploy registry show` lists them"
                ) from exc
        return str(model.versioned_resource_name), str(model.version_id)

    # ---------------------------------------------------------------- changes

    def _stage(self, bundle_dir: Path) -> str:
        """A gs:// directory holding the bundle: a copy under ``artifacts`` or, without one,
        the pipeline's own artifact when it sits on the gcsfuse mount (/gcs/BUCKET/...)."""
        if self.artifacts:
            uri = f"{self.artifacts}/{self.model_name}/{vertex_ai.stamp()}"
            gcp.upload_dir(bundle_dir, uri)
            return uri
        text = str(bundle_dir.resolve())
        if text.startswith("/gcs/"):  # a Vertex pipeline artifact, mounted through gcsfuse
            return "gs://" + text[len("/gcs/") :]
        raise RegistryError(
            f"registry {self.uri!r}: no artifacts= location for the bundle; use "
            "vertex://PROJECT/REGION?artifacts=gs://BUCKET/PREFIX"
        )

    def register(
        self, bundle_dir: str | Path, decision: dict[str, Any], *, expected: Expected = ANY_CHAMPION
    ) -> Champion:
        """Upload a new version, move the ``champion`` alias to it, attach the evaluation.

        ``expected``: the champion version the decision was made against (None: no champion).
        The alias is read before the upload (a champion that moved costs no orphan version)
        and again right before it is moved; when it no longer names ``expected``, the alias
        stays, the history says why and ChampionMovedError is raised. Vertex AI has no
        conditional alias move, so a deploy landing between that last read and the move can
        still be overtaken; the local registry's check is exact (under its lock).
        """
        from google.cloud import aiplatform
        from google.cloud.aiplatform.models import ModelRegistry

        from components.core.model.mlp_numpy import verify_bundle

        src = Path(bundle_dir)
        if not (src / "bundle.json").is_file():
            raise RegistryError(f"model bundle '{src}': bundle.json missing; nothing registered")
        verify_bundle(src)  # manifest, parts and weights, before anything is staged
        if not self.serving_image:
            raise ConfigError(
                "serving_image is empty: Vertex needs a serving container image for the model, "
                "e.g. REGION-docker.pkg.dev/PROJECT/sigdeploy/python-serving:TAG"
            )
        parent = self.parent()
        previous = self._call("get the champion", self.champion_model, parent) if parent else None
        self._check_unmoved(decision, expected, previous)
        artifact_uri = self._stage(src)
        model = self._call(
            "upload the model",
            aiplatform.Model.upload,
            display_name=self.model_name,
            parent_model=parent.resource_name if parent else None,
            is_default_version=True,
            artifact_uri=artifact_uri,
            serving_container_image_uri=self.serving_image,
            serving_container_predict_route=serving_contract.PREDICT_ROUTE,
            serving_container_health_route=serving_contract.HEALTH_ROUTE,
            serving_container_ports=[serving_contract.SERVING_PORT],
            version_description=_description(decision, previous),
            labels=_labels(decision),
            sync=True,
        )
        if expected is not ANY_CHAMPION:  # the upload took a while: has the alias moved since?
            previous = self._call("get the champion", self.champion_model)
            self._check_unmoved(decision, expected, previous, uploaded=str(model.version_id))
        self._call(
            "move the champion alias",
            ModelRegistry(model.resource_name).add_version_aliases,
            [CHAMPION_ALIAS],
            version=model.version_id,
        )
        if decided := ledger_mod.promoted_id(decision):
            self._promoted(decided, str(model.version_id))
        self._import_evaluation(model, decision)
        self._history(
            "deployed",
            decision,
            version=model.version_id,
            previous=previous.version_id if previous else None,
        )
        log.info("registered %s as champion", model.versioned_resource_name)
        return Champion(version=str(model.version_id), path=src, uri=model.versioned_resource_name)

    def _check_unmoved(
        self, decision: dict[str, Any], expected: Expected, champion: Any, uploaded: str = ""
    ) -> None:
        """Raise ChampionMovedError (after recording why) when ``champion``, the version the
        alias names now, is not the one the decision was made against. ``uploaded``: the
        version already uploaded for this decision, which is then left without the alias."""
        current = str(champion.version_id) if champion is not None else None
        reason = champion_moved(expected, current)
        if reason is None:
            return
        extra = {"unpromoted_version": uploaded} if uploaded else {}
        self._history("kept", decision, champion=current, reason=reason, **extra)
        done = (
            f"version {uploaded} was uploaded but does not carry the '{CHAMPION_ALIAS}' alias"
            if uploaded
            else ""
        )
        where = f"registry '{self.uri}' (model {self.model_name})"
        raise moved_error(where, reason, expected, current, done)

    def record(self, decision: dict[str, Any]) -> None:
        """Keep a decision that did not deploy; the champion is untouched."""
        self._history("kept", decision)

    # ---------------------------------------------------------------- the ledger

    @property
    def ledger_prefix(self) -> str:
        return f"{self.artifacts}/{self.model_name}/ledger"

    def ledger(self, *, keys: bool = True) -> ledger_mod.Ledger:
        """The ledger, checked (registry/ledger.py): RegistryError, one line, when it is
        damaged, belongs to another model, or is gone though the history used one. Without
        an artifacts= location there is nowhere to keep one (``kept`` is False). ``keys``:
        also read and check the decisions' row keys."""
        if not self.artifacts:
            return ledger_mod.Ledger(
                kept=False, note=f"no artifacts= location in {self.uri}: no ledger is kept"
            )
        prefix = self.ledger_prefix
        where = f"registry '{self.uri}' (model {self.model_name}): ledger '{prefix}/'"
        restore = f"the objects under {prefix}/, e.g. from earlier object generations"
        restart = (
            f"move the objects under {prefix}/ aside and create an empty object "
            f"{prefix}/{LEDGER_STARTED}"
        )
        names = gcp.list_names(prefix)
        try:
            found = self._record_names(names)
            if not found and LEDGER_STARTED not in names:  # none yet, or lost
                decisions, recorded = ledger_mod.history_check(self.history())
                if recorded:
                    raise ledger_mod.lost(where, recorded, restore=restore, restart=restart)
                note = ledger_mod.older_note(f"registry '{self.uri}'", decisions)
                return ledger_mod.Ledger(where=prefix, note=note if decisions else "")
            records = []
            for number, name in enumerate(found, 1):
                data = gcp.read_bytes(f"{prefix}/{name}")
                records.append(ledger_mod.parse_line(data.decode("utf-8", "replace"), number))
            read = self._key_file if keys else None
            decisions_, count = ledger_mod.fold(records, self.model_name, read)
        except ledger_mod.Damaged as exc:
            raise ledger_mod.damaged(where, str(exc), restore=restore, restart=restart) from None
        return ledger_mod.Ledger(tuple(decisions_), count, prefix)

    @staticmethod
    def _record_names(names: list[str]) -> list[str]:
        """The record objects, in order; anything else directly under the prefix (but the
        start marker) is not ours."""
        records = []
        for name in names:
            if LEDGER_RECORD.match(name):
                records.append(name)
            elif "/" not in name and name != LEDGER_STARTED:
                raise ledger_mod.Damaged(f"object {name!r} is not a ledger record")
        return records

    def _key_file(self, digest: str) -> bytes | None:
        """A keys file, from the local cache when it was read before (its name is its
        sha256, checked again by the caller)."""
        cached = self.cache_dir / "ledger-keys" / f"{digest}.npy"
        if cached.is_file():
            return cached.read_bytes()
        uri = f"{self.ledger_prefix}/keys/{digest}.npy"
        if not gcp.exists(uri):
            return None
        data = gcp.read_bytes(uri)
        from components.core.io import atomic_path

        with atomic_path(cached) as tmp:
            tmp.write_bytes(data)
        return data

    def append_ledger(self, make: ledger_mod.Append) -> dict[str, Any]:
        """Append a record, or the record ``make(ledger)`` returns, as the next numbered
        object, created only if that number is still free; when another evaluation took it
        first, the ledger is read again (and ``make`` called again on it). Returns the record
        as stored."""
        import json

        if not self.artifacts:
            raise RegistryError(
                f"registry '{self.uri}': no artifacts= location, so the ledger that alpha "
                "accounting needs cannot be kept; use vertex://PROJECT/REGION?artifacts="
                "gs://BUCKET/PREFIX, or alpha_accounting=per_comparison"
            )
        for _ in range(LEDGER_TRIES):
            current = self.ledger(keys=callable(make))
            record, keys = make(current) if callable(make) else (make, None)
            record, data = ledger_mod.with_keys(record, keys)
            if data:  # named by its content: an existing one is the same file
                digest = record["rows"]["sha256"]
                gcp.create(
                    f"{self.ledger_prefix}/keys/{digest}.npy", data, "application/octet-stream"
                )
            seq = current.records + 1
            stored = ledger_mod.stamped(record, self.model_name, seq)
            text = json.dumps(stored, sort_keys=True, allow_nan=False)
            if gcp.create(
                f"{self.ledger_prefix}/{seq:08d}.json", text.encode(), "application/json"
            ):
                return stored
            log.info("ledger record %d was taken by another evaluation; reading it again", seq)
        raise RegistryError(
            f"registry '{self.uri}' (model {self.model_name}): {LEDGER_TRIES} appends to the "
            f"ledger were each overtaken by another evaluation; run again"
        )

    def _promoted(self, decided: str, version: str) -> None:
        """Record which version decision ``decided`` made: the rows that promoted it now
        count as used against it. The alias has already moved, so a ledger that cannot take
        the record is logged, not raised (the next evaluation stops on it)."""
        try:
            self.append_ledger(ledger_mod.promotion_record(decided, version))
        except SigdeployError as exc:
            log.warning(
                "version %s is the champion, but the ledger was not updated: %s", version, exc
            )

    def _history(self, event: str, decision: dict[str, Any], **extra: Any) -> None:
        if not self.artifacts:
            log.warning(
                "no artifacts= location in %s: the %s decision is not kept", self.uri, event
            )
            return
        stamp = vertex_ai.stamp()
        entry = {"time": time.time(), "event": event, "decision": decision} | extra
        gcp.write_json(f"{self.artifacts}/{self.model_name}/history/{stamp}-{event}.json", entry)

    def _import_evaluation(self, model: Any, decision: dict[str, Any]) -> None:
        """The challenger's test metrics as a model evaluation of the new version."""
        from google.cloud.aiplatform_v1.types import model_evaluation as gca_eval
        from google.protobuf import json_format, struct_pb2

        evaluation = gca_eval.ModelEvaluation(
            display_name=f"sigdeploy-gate-{model.version_id}",
            metrics_schema_uri=REGRESSION_METRICS_SCHEMA
            if decision.get("task") == "regression"
            else CLASSIFICATION_METRICS_SCHEMA,
            metrics=json_format.ParseDict(_schema_metrics(decision), struct_pb2.Value()),
            metadata=json_format.ParseDict(_evaluation_metadata(decision), struct_pb2.Value()),
        )
        self._call(
            "import the model evaluation",
            model.api_client.import_model_evaluation,
            parent=model.versioned_resource_name,
            model_evaluation=evaluation,
        )

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one SDK call; a failure a user can act on becomes a one-line RegistryError
        (NotFound passes through: it often means "none yet")."""
        with vertex_ai.errors(what, self.project, self.region):
            return fn(*args, **kwargs)


# ---------------------------------------------------------------------- decision text


def _description(decision: dict[str, Any], previous: Any) -> str:
    against = f"version {previous.version_id}" if previous else "the baseline"
    level = decision.get("level")
    tested = f"level {level:.3g}, alpha" if isinstance(level, int | float) else "alpha"
    text = (
        f"sigdeploy: deployed over {against}; {decision.get('test', 'test')} "
        f"p={decision.get('p_value', float('nan')):.3g} ({tested} {decision.get('alpha')}). "
        f"{decision.get('reason', '')}"
    )
    return text[:1000]


def _labels(decision: dict[str, Any]) -> dict[str, str]:
    return {
        "sigdeploy": "champion",
        "gate-test": vertex_ai.label_value(decision.get("test", "unknown")),
        "test-rows": vertex_ai.label_value(decision.get("counts", {}).get("test_rows", "")),
    }


# ours -> the schema's field: classification_metrics_1.0.0 (AU-ROC, log loss) and
# regression_metrics_1.0.0 (RMSE, MAE, R^2)
SCHEMA_FIELDS = {
    "classification": (("roc_auc", "auRoc"), ("log_loss", "logLoss")),
    "regression": (
        ("rmse", "rootMeanSquaredError"),
        ("mae", "meanAbsoluteError"),
        ("r2", "rSquared"),
    ),
}


def _schema_metrics(decision: dict[str, Any]) -> dict[str, Any]:
    """The fields of the task's model-evaluation schema that the gate measured."""
    challenger = decision.get("metrics", {}).get("challenger", {})
    out: dict[str, Any] = {}
    task = "regression" if decision.get("task") == "regression" else "classification"
    for ours, theirs in SCHEMA_FIELDS[task]:
        value = challenger.get(ours)
        if isinstance(value, int | float) and value == value:  # NaN has no JSON form
            out[theirs] = float(value)
    return out


def _evaluation_metadata(decision: dict[str, Any]) -> dict[str, Any]:
    """Everything else the gate decided, kept with the evaluation (a free-form field)."""
    keep: tuple[str, ...] = ("deploy", "task", "p_value", "test", "alpha", "level", "margin")
    keep += ("reason", "counts", "champion")
    out: dict[str, Any] = {k: decision[k] for k in keep if k in decision}
    for who, values in decision.get("metrics", {}).items():
        for name, value in values.items():
            if isinstance(value, int | float) and value == value:
                out[f"{who}_{name}"] = float(value)
    return out
