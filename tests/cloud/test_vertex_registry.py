"""The Vertex AI registry, endpoint deployment (platforms/vertex.py) and the deploy step on
Vertex, through the real aiplatform client.

Model Registry and Endpoints are a recording server on 127.0.0.1; bundles live in the GCS
emulator. What was verified here is the request sequence and bodies; the real service's
behaviour (alias moves, evaluation schema checks, deployment) is taken from its API docs.
"""

from __future__ import annotations

import json
import re

import pytest

from components.core import steps
from components.core.errors import ChampionMovedError, ConfigError, DataError, RegistryError
from components.core.model.bundle import load_bundle
from components.core.platforms import vertex as vertex_ai
from components.core.platforms.deploy_config import DeployConfig
from components.core.registry import RegistryConfig, open_registry
from components.core.registry.vertex import (
    CHAMPION_ALIAS,
    CLASSIFICATION_METRICS_SCHEMA,
    REGRESSION_METRICS_SCHEMA,
    VertexRegistry,
    parse_uri,
)
from tests.cloud import fakes
from tests.cloud.conftest import MODEL, PROJECT, REGION, SERVING

DECISION = {
    "deploy": True,
    "p_value": 0.0012,
    "test": "mcnemar",
    "alpha": 0.05,
    "margin": 0.0,
    "reason": "the challenger is right on 12 more test rows (p=0.0012 < 0.05)",
    "counts": {"test_rows": 360},
    "metrics": {
        "challenger": {"accuracy": 0.97, "roc_auc": 0.998, "log_loss": 0.11, "macro_f1": 0.97},
        "champion": {"accuracy": 0.93, "roc_auc": float("nan"), "log_loss": 0.2},
    },
    "champion_version": None,  # a first run: against the baseline
}


def _serve(champion, config):
    """What the deploy step and `registry rollback --endpoint` do with a registered version."""
    return vertex_ai.serve(MODEL, champion.version, champion.uri, config)


def _one(server, method, pattern):
    calls = server.find(method, pattern)
    assert len(calls) == 1, [c.path for c in server.calls]
    return calls[0]


def test_first_register_creates_the_model_moves_the_alias_and_attaches_the_evaluation(
    registry, vertex, gcs, trained_bundle
):
    assert registry.champion() is None
    champion = registry.register(trained_bundle, DECISION)
    assert champion.version == "1"
    assert re.fullmatch(rf"projects/{PROJECT}/locations/{REGION}/models/\d+@1", champion.uri)

    upload = _one(vertex, "POST", r"/models:upload$").json()
    assert "parentModel" not in upload
    model = upload["model"]
    assert model["displayName"] == MODEL
    assert model["containerSpec"] == {
        "imageUri": SERVING,
        "predictRoute": "/predict",
        "healthRoute": "/health",
        "ports": [{"containerPort": 8080}],
    }
    artifact = model["artifactUri"]
    assert artifact.startswith(f"gs://reg-bucket/registry/{MODEL}/")
    names = {
        b.name for b in gcs.list_blobs("reg-bucket", prefix=artifact[len("gs://reg-bucket/") :])
    }
    assert {n.rsplit("/", 1)[1] for n in names} >= {"bundle.json", "model.safetensors"}
    assert "p=0.0012" in model["versionDescription"]
    assert model["labels"]["gate-test"] == "mcnemar"

    alias = _one(vertex, "POST", r"@1:mergeVersionAliases$").json()
    assert alias == {"versionAliases": [CHAMPION_ALIAS]}

    evaluation = _one(vertex, "POST", r"@1/evaluations:import$").json()["modelEvaluation"]
    assert evaluation["metricsSchemaUri"] == CLASSIFICATION_METRICS_SCHEMA
    assert evaluation["metrics"] == {"auRoc": 0.998, "logLoss": 0.11}
    meta = evaluation["metadata"]
    assert meta["p_value"] == 0.0012 and meta["test"] == "mcnemar"
    assert meta["challenger_accuracy"] == 0.97 and "champion_roc_auc" not in meta  # NaN left out

    history = [b.name for b in gcs.list_blobs("reg-bucket", prefix=f"registry/{MODEL}/history/")]
    assert len(history) == 1 and history[0].endswith("-deployed.json")


def test_a_regressor_is_evaluated_with_the_regression_schema(registry, vertex, trained_bundle):
    decision = DECISION | {
        "task": "regression",
        "test": "paired t-test on per-row squared errors (one-sided)",
        "metrics": {
            "challenger": {"rmse": 54.07, "mae": 44.3, "r2": 0.456},
            "champion": {"rmse": 74.6, "mae": 65.8, "r2": float("nan")},
        },
    }
    registry.register(trained_bundle, decision)
    evaluation = _one(vertex, "POST", r"@1/evaluations:import$").json()["modelEvaluation"]
    assert evaluation["metricsSchemaUri"] == REGRESSION_METRICS_SCHEMA
    assert evaluation["metrics"] == {
        "rootMeanSquaredError": 54.07,
        "meanAbsoluteError": 44.3,
        "rSquared": 0.456,
    }
    meta = evaluation["metadata"]
    assert meta["task"] == "regression" and meta["challenger_rmse"] == 54.07
    assert "champion_r2" not in meta  # NaN left out


def test_next_register_is_a_new_version_of_the_same_parent(registry, vertex, trained_bundle):
    first = registry.register(trained_bundle, DECISION)
    second = registry.register(trained_bundle, DECISION)
    assert (first.version, second.version) == ("1", "2")
    uploads = [c.json() for c in vertex.find("POST", r"/models:upload$")]
    assert uploads[1]["parentModel"] == first.uri.split("@")[0]
    assert uploads[1]["model"]["artifactUri"] != uploads[0]["model"]["artifactUri"]
    (model_id,) = vertex.models
    aliases = {v["versionId"]: v["versionAliases"] for v in vertex.models[model_id]}
    assert CHAMPION_ALIAS in aliases["2"] and CHAMPION_ALIAS not in aliases["1"]
    assert registry.champion().version == "2"


def test_evaluate_finds_the_champion_through_open_registry(uri, registry, trained_bundle):
    """What the evaluate step does: open_registry(vertex://...).champion() -> a local bundle."""
    registry.register(trained_bundle, DECISION)
    champion = open_registry(uri, MODEL).champion()
    assert champion.version == "1"
    assert champion.path != trained_bundle  # downloaded from the version's artifact URI
    bundle = load_bundle(champion.path)
    assert bundle.classes == load_bundle(trained_bundle).classes


def test_record_keeps_the_decision_and_leaves_the_champion(registry, vertex, gcs, trained_bundle):
    registry.register(trained_bundle, DECISION)
    registry.record(DECISION | {"deploy": False, "reason": "not significant"})
    blobs = sorted(
        gcs.list_blobs("reg-bucket", prefix=f"registry/{MODEL}/history/"), key=lambda b: b.name
    )
    assert [b.name.rsplit("-", 1)[1] for b in blobs] == ["deployed.json", "kept.json"]
    kept = json.loads(blobs[-1].download_as_bytes())
    assert kept["event"] == "kept" and kept["decision"]["reason"] == "not significant"
    assert len(vertex.find("POST", r"/models:upload$")) == 1


def test_deploy_creates_the_endpoint_then_canaries_and_retires(registry, vertex, trained_bundle):
    config = DeployConfig(
        endpoint_name="digits", machine_type="n1-standard-4", min_replicas=1, max_replicas=3
    )
    v1 = registry.register(trained_bundle, DECISION)
    first = _serve(v1, config)
    created = _one(vertex, "POST", r"/endpoints$").json()
    assert created["displayName"] == "digits"
    body = vertex.find("POST", r":deployModel$")[0].json()
    assert body["trafficSplit"] == {"0": 100}  # nothing to share traffic with yet
    deployed = body["deployedModel"]
    assert deployed["model"] == v1.uri
    assert deployed["dedicatedResources"] == {
        "machineSpec": {"machineType": "n1-standard-4"},
        "minReplicaCount": 1,
        "maxReplicaCount": 3,
    }
    assert first["traffic_split"] == {first["deployed_model_id"]: 100}

    canary = DeployConfig(endpoint_name="digits", canary_percent=10)
    v2 = registry.register(trained_bundle, DECISION)
    second = _serve(v2, canary)
    body = vertex.find("POST", r":deployModel$")[1].json()
    assert body["trafficSplit"] == {"0": 10, first["deployed_model_id"]: 90}
    assert second["previous_deployed_model_id"] == first["deployed_model_id"]
    assert len(vertex.find("POST", r"/endpoints$")) == 1  # found by display name, not re-made
    assert vertex.find("POST", r":undeployModel$") == []

    v3 = registry.register(trained_bundle, DECISION)
    third = _serve(v3, canary)
    # the old champion (90 %) keeps its share; the v2 canary is left with nothing: retired
    assert third["traffic_split"] == {
        third["deployed_model_id"]: 10,
        first["deployed_model_id"]: 90,
    }
    (undeploy,) = vertex.find("POST", r":undeployModel$")
    assert undeploy.json()["deployedModelId"] == second["deployed_model_id"]


def test_the_deploy_step_registers_and_serves(uri, vertex, trained_bundle, tmp_path):
    decision = tmp_path / "decision.json"
    decision.write_text(json.dumps(DECISION))
    where = RegistryConfig(uri, MODEL)

    def deploy(config):
        return steps.deploy(str(trained_bundle), str(decision), where, config, "vertex")

    result = deploy(DeployConfig(serving_image=SERVING))
    assert result["version"] == "1" and result["uri"].endswith("@1")
    assert result["model_name"] == MODEL
    upload = _one(vertex, "POST", r"/models:upload$").json()
    assert upload["model"]["containerSpec"]["imageUri"] == SERVING  # the deploy settings' image
    endpoint = _one(vertex, "POST", r"/endpoints$").json()
    assert endpoint["displayName"] == MODEL  # empty endpoint_name: the model's name
    deployed = _one(vertex, "POST", r":deployModel$").json()["deployedModel"]
    assert deployed["model"] == result["uri"]
    assert result["traffic_split"] == {result["deployed_model_id"]: 100}
    (served,) = vertex.endpoints.values()
    assert [d["model"] for d in served["deployedModels"]] == [result["uri"]]

    before = len(vertex.calls)
    decision.write_text(json.dumps(DECISION | {"deploy": False}))
    with pytest.raises(DataError, match="says not to deploy"):
        deploy(DeployConfig(serving_image=SERVING))
    with pytest.raises(RegistryError, match="the vertex target registers in Model Registry"):
        steps.deploy(str(trained_bundle), str(decision), RegistryConfig(str(tmp_path)),
                     DeployConfig(serving_image=SERVING), "vertex")  # fmt: skip
    assert len(vertex.calls) == before  # refused before any request


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("vertex://test-proj", "write vertex://PROJECT/REGION"),
        ("vertex://test-proj/Central", "'Central' is not a region"),
        ("vertex://P/us-central1", "'P' is not a project id"),
        ("vertex://test-proj/us-central1?bucket=x", "unknown option(s) bucket"),
        ("vertex://test-proj/us-central1?artifacts=/tmp/x", "artifacts= must be a gs:// prefix"),
    ],
)
def test_bad_registry_uris_are_one_line(bad, message):
    with pytest.raises(RegistryError) as info:
        parse_uri(bad)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"canary_percent": 0}, "canary_percent=0 must be 1-100"),
        ({"min_replicas": 2, "max_replicas": 1}, "max_replicas=1 must be >= min_replicas=2"),
        ({"min_replicas": 0}, "min_replicas=0 must be at least 1"),
    ],
)
def test_endpoint_config_is_checked(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        DeployConfig(**kwargs)


def test_register_needs_a_serving_image_and_a_place_for_the_bundle(uri, vertex, trained_bundle):
    with pytest.raises(ConfigError, match="serving_image is empty"):
        VertexRegistry.from_uri(uri, MODEL).register(trained_bundle, DECISION)
    no_artifacts = f"vertex://{PROJECT}/{REGION}?api_endpoint={vertex.url}"
    reg = VertexRegistry.from_uri(no_artifacts, MODEL, serving_image=SERVING)
    with pytest.raises(RegistryError, match="no artifacts= location for the bundle"):
        reg.register(trained_bundle, DECISION)


def test_permission_denied_is_one_line(registry, vertex):
    vertex.routes.insert(
        0, ("GET", re.compile(r".*/models$"), lambda c, m: fakes.error(403, "denied"))
    )
    with pytest.raises(RegistryError) as info:
        registry.champion()
    assert str(info.value) == (
        f"Vertex AI ({PROJECT}/{REGION}): permission denied to list models; grant the "
        "pipeline's service account roles/aiplatform.user"
    )


# ------------------------------------------------------------------ history and rollback


def _aliases(vertex) -> dict[str, list[str]]:
    (model_id,) = vertex.models
    return {v["versionId"]: v["versionAliases"] for v in vertex.models[model_id]}


def _alias_moves(vertex) -> list[tuple[str, dict]]:
    """(version, body) of every mergeVersionAliases request, in order."""
    calls = vertex.find("POST", r":mergeVersionAliases$")
    return [(re.search(r"@([^/:]+):", c.path).group(1), c.json()) for c in calls]


def _register(registry, trained_bundle, count: int) -> list:
    return [
        registry.register(trained_bundle, DECISION | {"p_value": 0.001 * (n + 1)})
        for n in range(count)
    ]


def test_rollback_without_a_version_restores_the_previous_champion(
    registry, vertex, trained_bundle
):
    v1, v2 = _register(registry, trained_bundle, 2)
    before = len(_alias_moves(vertex))

    champion = registry.rollback(reason="canary errors")

    assert (champion.version, champion.uri) == ("1", v1.uri)
    assert champion.path != trained_bundle  # downloaded from version 1's artifact URI
    assert load_bundle(champion.path).classes == load_bundle(trained_bundle).classes
    assert _alias_moves(vertex)[before:] == [("1", {"versionAliases": [CHAMPION_ALIAS]})]
    aliases = _aliases(vertex)
    assert CHAMPION_ALIAS in aliases["1"] and CHAMPION_ALIAS not in aliases["2"]
    assert registry.champion().version == "1"

    entry = registry.history()[-1]
    assert set(entry) == {"time", "event", "version", "previous", "reason", "decision"}
    assert entry["event"] == "rolled_back"
    assert (entry["version"], entry["previous"], entry["reason"]) == ("1", "2", "canary errors")
    assert entry["decision"] == {}

    # a second rollback undoes the first
    assert registry.rollback().version == "2"
    assert _alias_moves(vertex)[-1] == ("2", {"versionAliases": [CHAMPION_ALIAS]})
    last = registry.history()[-1]
    assert (last["event"], last["version"], last["previous"]) == ("rolled_back", "2", "1")


def test_rollback_to_a_named_version(registry, vertex, trained_bundle):
    v1, _, v3 = _register(registry, trained_bundle, 3)
    champion = registry.rollback("1", reason="v2 and v3 drift")
    assert (champion.version, champion.uri) == ("1", v1.uri)
    assert _alias_moves(vertex)[-1] == ("1", {"versionAliases": [CHAMPION_ALIAS]})
    assert registry.history()[-1]["previous"] == "3"
    # undoing it goes back to 3 (the newest entry for version 1), not to 1's own predecessor
    assert registry.rollback().uri == v3.uri


def test_rollback_refusals_are_one_line_and_move_no_alias(registry, vertex, trained_bundle):
    with pytest.raises(RegistryError) as info:
        registry.rollback()
    assert "there is no model to roll back" in str(info.value)

    _register(registry, trained_bundle, 1)
    with pytest.raises(RegistryError) as info:
        registry.rollback()
    assert "version 1 has no recorded predecessor; name the version to restore (versions: 1)" in (
        str(info.value)
    )

    _register(registry, trained_bundle, 1)
    moves = _alias_moves(vertex)
    cases = [
        ("7", "no version '7'; versions: 1, 2"),
        ("2", "version 2 is already the champion"),
    ]
    for version, message in cases:
        with pytest.raises(RegistryError) as info:
            registry.rollback(version)
        text = str(info.value)
        assert message in text and "\n" not in text
        assert text.startswith(f"registry '{registry.uri}' (model {MODEL})")
    assert _alias_moves(vertex) == moves
    assert registry.champion().version == "2"
    assert [h["event"] for h in registry.history()] == ["deployed", "deployed"]


def test_rollback_with_no_champion_alias_is_refused(registry, vertex, trained_bundle):
    _register(registry, trained_bundle, 2)
    for version in vertex.models[next(iter(vertex.models))]:
        version["versionAliases"] = [a for a in version["versionAliases"] if a != CHAMPION_ALIAS]
    with pytest.raises(RegistryError, match="no version carries the 'champion' alias"):
        registry.rollback("1")
    assert len(_alias_moves(vertex)) == 2  # only the two registrations


@pytest.mark.parametrize(
    ("removed", "message"),
    [
        ("bundle.json", "holds no bundle.json"),
        ("model.safetensors", "lacks model.safetensors"),
    ],
)
def test_rollback_refuses_a_version_that_cannot_serve(
    registry, vertex, gcs, trained_bundle, removed, message
):
    _register(registry, trained_bundle, 2)
    (model_id,) = vertex.models
    artifact = vertex.models[model_id][0]["artifactUri"]  # version 1
    gcs.bucket("reg-bucket").blob(f"{artifact[len('gs://reg-bucket/') :]}/{removed}").delete()
    moves = _alias_moves(vertex)
    with pytest.raises(RegistryError) as info:
        registry.rollback("1")
    assert message in str(info.value)
    assert str(info.value).endswith("it cannot serve, so the champion stays version 2")
    assert _alias_moves(vertex) == moves
    assert CHAMPION_ALIAS in _aliases(vertex)["2"]
    assert "rolled_back" not in [h["event"] for h in registry.history()]


def test_version_infos_lists_every_version_oldest_first(registry, vertex, trained_bundle):
    assert registry.version_infos() == []  # no parent model yet
    v1, v2 = _register(registry, trained_bundle, 2)
    registry.record(DECISION | {"deploy": False, "p_value": 0.3})

    infos = registry.version_infos()

    # the fake lists versions newest first, as the API may: the order is ours
    assert [i.version for i in infos] == ["1", "2"]
    assert [i.uri for i in infos] == [v1.uri, v2.uri]
    assert [i.champion for i in infos] == [False, True]
    assert [i.decision["p_value"] for i in infos] == [0.001, 0.002]  # the deploying decisions
    assert [i.created for i in infos] == [1767225600.0, 1767225660.0]  # versionCreateTime

    registry.rollback("1")
    assert [i.champion for i in registry.version_infos()] == [True, False]


def test_history_reads_back_every_entry_oldest_first(registry, trained_bundle):
    assert registry.history() == []
    _register(registry, trained_bundle, 2)
    registry.record(DECISION | {"deploy": False, "reason": "not significant"})
    registry.rollback(reason="why not")
    history = registry.history()
    assert [h["event"] for h in history] == ["deployed", "deployed", "kept", "rolled_back"]
    assert [h.get("version") for h in history] == ["1", "2", None, "1"]
    assert [h.get("previous") for h in history] == [None, "1", None, "2"]
    assert history[2]["decision"]["reason"] == "not significant"
    assert [h["time"] for h in history] == sorted(h["time"] for h in history)


def test_history_without_an_artifacts_location_is_empty_and_warns_once(vertex, caplog):
    reg = VertexRegistry.from_uri(f"vertex://{PROJECT}/{REGION}?api_endpoint={vertex.url}", MODEL)
    with caplog.at_level("WARNING"):
        assert reg.history() == [] and reg.history() == []
    warnings = [r for r in caplog.records if "no decision history" in r.getMessage()]
    assert len(warnings) == 1


def test_version_listing_permission_denied_is_one_line(registry, vertex, trained_bundle):
    _register(registry, trained_bundle, 1)
    vertex.routes.insert(
        0, ("GET", re.compile(r".*:listVersions$"), lambda c, m: fakes.error(403, "denied"))
    )
    with pytest.raises(RegistryError) as info:
        registry.version_infos()
    assert str(info.value) == (
        f"Vertex AI ({PROJECT}/{REGION}): permission denied to list the model versions; grant "
        "the pipeline's service account roles/aiplatform.user"
    )


def test_redeploy_after_rollback_serves_only_the_restored_version(registry, vertex, trained_bundle):
    v1 = registry.register(trained_bundle, DECISION)
    first = _serve(v1, DeployConfig(endpoint_name="digits"))
    v2 = registry.register(trained_bundle, DECISION)
    second = _serve(v2, DeployConfig(endpoint_name="digits", canary_percent=10))
    assert second["traffic_split"] == {
        second["deployed_model_id"]: 10,
        first["deployed_model_id"]: 90,
    }

    champion = registry.rollback(reason="canary errors")
    served = _serve(champion, DeployConfig(endpoint_name="digits", canary_percent=100))

    body = vertex.find("POST", r":deployModel$")[-1].json()
    assert body["deployedModel"]["model"] == v1.uri
    assert body["trafficSplit"] == {"0": 100}
    assert served["traffic_split"] == {served["deployed_model_id"]: 100}
    undeployed = {c.json()["deployedModelId"] for c in vertex.find("POST", r":undeployModel$")}
    assert undeployed == {first["deployed_model_id"], second["deployed_model_id"]}
    (endpoint,) = vertex.endpoints.values()
    assert [d["model"] for d in endpoint["deployedModels"]] == [v1.uri]


def test_registry_cli_on_vertex_shows_rolls_back_and_moves_the_traffic(
    uri, registry, vertex, trained_bundle, capsys
):
    """`sigdeploy registry` through the real aiplatform client: show, then rollback with
    --endpoint, then the history that records it."""
    from pipelines.cli import main

    v1 = registry.register(trained_bundle, DECISION)
    _serve(v1, DeployConfig(endpoint_name="digits"))
    v2 = registry.register(trained_bundle, DECISION)
    _serve(v2, DeployConfig(endpoint_name="digits"))
    base = ["--registry", uri, "--model-name", MODEL]

    assert main(["registry", "show", *base, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["champion"] == v2.version
    assert [v["version"] for v in shown["versions"]] == [v1.version, v2.version]

    args = ["registry", "rollback", *base, "--reason", "v2 errors", "--endpoint", "digits"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"version {v1.version} (was {v2.version})" in out
    assert f"endpoint digits: all traffic on version {v1.version}" in out
    assert vertex.find("POST", r":deployModel$")[-1].json()["deployedModel"]["model"] == v1.uri

    assert main(["registry", "history", *base]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert f"rolled back  v{v1.version} (was v{v2.version})" in last and '"v2 errors"' in last


def test_registry_cli_bad_endpoint_settings_move_nothing(
    uri, registry, vertex, trained_bundle, capsys
):
    from pipelines.cli import main

    registry.register(trained_bundle, DECISION)
    registry.register(trained_bundle, DECISION)
    before = len(vertex.calls)
    args = ["registry", "rollback", "--registry", uri, "--model-name", MODEL, "--reason", "x",
            "--endpoint", "digits", "--min-replicas", "0"]  # fmt: skip
    assert main(args) == 2
    assert "min_replicas=0 must be at least 1" in capsys.readouterr().err
    assert len(vertex.calls) == before  # refused before any request


# ------------------------------------------------------------ compare-and-swap promotion

MOVED = (
    "the champion moved since evaluation: the decision was made against version 1, "
    "the champion is now version 2"
)


def _aliases(vertex):
    (model_id,) = vertex.models
    return {v["versionId"]: v["versionAliases"] for v in vertex.models[model_id]}


def test_the_deploy_step_keeps_a_champion_that_moved_and_uploads_nothing(
    uri, registry, vertex, gcs, trained_bundle, tmp_path, capsys
):
    """A decision made against version 1 while the alias names version 2: no upload, no
    alias move, nothing served; a "kept" history object says why."""
    from pipelines.cli import main

    registry.register(trained_bundle, DECISION)
    registry.register(trained_bundle, DECISION)
    decision = tmp_path / "decision.json"
    decision.write_text(json.dumps(DECISION | {"champion_version": "1"}))
    staged = {b.name for b in gcs.list_blobs("reg-bucket")}
    before = len(vertex.calls)

    config = DeployConfig(serving_image=SERVING, endpoint_name="digits")
    result = steps.deploy(str(trained_bundle), str(decision), RegistryConfig(uri, MODEL), config,
                          "vertex")  # fmt: skip
    assert result == {
        "promoted": False,
        "version": None,
        "uri": "",
        "model_name": MODEL,
        "champion": "2",
        "reason": MOVED,
    }
    calls = vertex.calls[before:]
    assert [c for c in calls if c.method == "POST"] == []  # no upload, alias move, endpoint
    assert CHAMPION_ALIAS in _aliases(vertex)["2"] and set(_aliases(vertex)) == {"1", "2"}
    new = {b.name for b in gcs.list_blobs("reg-bucket")} - staged
    (kept,) = new  # the history object, and no staged copy of the bundle
    assert kept.startswith(f"registry/{MODEL}/history/") and kept.endswith("-kept.json")
    entry = json.loads(gcs.bucket("reg-bucket").blob(kept).download_as_bytes())
    assert (entry["event"], entry["champion"], entry["reason"]) == ("kept", "2", MOVED)
    assert entry["decision"]["champion_version"] == "1"

    assert main(["registry", "history", "--registry", uri, "--model-name", MODEL]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert "kept         champion v2 stays" in last and last.endswith(f'"{MOVED}"')


def test_a_champion_that_moves_during_the_upload_keeps_its_alias(registry, vertex, trained_bundle):
    """Another deploy lands while this one uploads: the alias is read again before it would
    move, so the uploaded version is left without it, and the error and history say so."""
    registry.register(trained_bundle, DECISION)  # version 1, the champion
    upload = next(h for m, _, h in vertex.routes if h == vertex._upload)

    def racing_upload(call, m):
        upload(call, m)  # the other deploy's version 2 ...
        (model_id,) = vertex.models
        for v in vertex.models[model_id]:  # ... takes the alias
            v["versionAliases"] = [a for a in v["versionAliases"] if a != CHAMPION_ALIAS]
        vertex.models[model_id][-1]["versionAliases"].append(CHAMPION_ALIAS)
        return upload(call, m)  # this deploy's version 3

    vertex.routes = [(m, p, racing_upload if h == upload else h) for m, p, h in vertex.routes]
    with pytest.raises(ChampionMovedError) as info:
        registry.register(trained_bundle, DECISION, expected="1")
    assert str(info.value) == (
        f"registry '{registry.uri}' (model {MODEL}): {MOVED}; version 3 was uploaded but does "
        f"not carry the '{CHAMPION_ALIAS}' alias, the champion is kept: run the pipeline again "
        "to compare against it"
    )
    assert CHAMPION_ALIAS in _aliases(vertex)["2"]
    assert CHAMPION_ALIAS not in _aliases(vertex)["3"]
    assert vertex.find("POST", r"@3:mergeVersionAliases$") == []
    assert vertex.find("POST", r"@3/evaluations:import$") == []
    last = registry.history()[-1]
    assert (last["event"], last["champion"], last["unpromoted_version"]) == ("kept", "2", "3")
    assert last["reason"] == MOVED
