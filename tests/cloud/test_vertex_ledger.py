"""The ledger on a Vertex AI registry: objects under ``<artifacts>/<model>/ledger/`` in the GCS
emulator, evaluate and register through the real clients against the recording server.

GCS creates an object with ``ifGenerationMatch=0`` only if it does not exist (412 otherwise);
the emulator ignores that precondition, so ``preconditions`` teaches it to the emulator: that
is the one behaviour of the real service the concurrent-reservation test relies on.
"""

from __future__ import annotations

import json
from http import HTTPStatus

import numpy as np
import pytest

from components.core import steps
from components.core.errors import RegistryError
from components.core.evaluation.accounting import Reservation
from components.core.evaluation.alpha import AlphaPolicy
from components.core.evaluation.gate import GatePolicy
from components.core.registry import ledger as ledger_mod
from components.core.registry.vertex import VertexRegistry
from tests.cloud.conftest import MODEL, PROJECT, REGION, SERVING

PREFIX = f"registry/{MODEL}/ledger"


@pytest.fixture()
def preconditions(gcs, monkeypatch):
    """The emulator refuses, as GCS does, to create an object that exists when the request
    says ``ifGenerationMatch=0``."""
    from gcp_storage_emulator import server
    from gcp_storage_emulator.handlers import objects
    from gcp_storage_emulator.storage import NotFound

    def insert(request, response, storage, *args, **kwargs):
        if request.query.get("ifGenerationMatch") == ["0"]:
            name = (request.query.get("name") or [None])[0]
            if name is None and isinstance(request.data, dict):
                name = (request.data.get("meta") or {}).get("name")
            try:
                storage.get_file_obj(request.params["bucket_name"], name)
            except NotFound:
                pass
            else:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json({"error": {"code": 412, "message": "conditionNotMet"}})
                return None
        return objects.insert(request, response, storage, *args, **kwargs)

    for _, handlers in server.HANDLERS:
        for method, handler in list(handlers.items()):
            if handler is objects.insert:
                monkeypatch.setitem(handlers, method, insert)
    return gcs


@pytest.fixture()
def files(tmp_path, digits_parts):
    out = {}
    for name, frame in digits_parts.items():
        out[name] = str(tmp_path / f"{name}.parquet")
        frame.to_parquet(out[name], index=False)
    return out


def evaluate(uri, tmp_path, bundle, files, policy=None):
    ev = steps.evaluate(
        str(bundle), files["train"], files["test"], uri, MODEL, policy or GatePolicy(),
        str(tmp_path / "decision.json"),
    )  # fmt: skip
    return ev, json.loads((tmp_path / "decision.json").read_text())


def ledger_objects(gcs):
    return sorted(b.name for b in gcs.list_blobs("reg-bucket", prefix=PREFIX + "/"))


def test_evaluate_and_register_keep_the_ledger_on_gcs(
    uri, registry, vertex, preconditions, trained_bundle, files, tmp_path
):
    ev, first = evaluate(uri, tmp_path, trained_bundle, files)
    assert ev.decision.deploy and first["level"] == 0.025
    assert registry.register(trained_bundle, first, expected=None).version == "1"
    (upload,) = vertex.find("POST", r"/models:upload$")
    assert "(level 0.025, alpha 0.05)" in upload.json()["model"]["versionDescription"]
    (evaluation,) = vertex.find("POST", r"/evaluations:import$")
    assert evaluation.json()["modelEvaluation"]["metadata"]["level"] == 0.025
    _, second = evaluate(uri, tmp_path, trained_bundle, files)
    assert second["accounting"]["against"] == "1" and second["level"] == 0.025
    assert second["accounting"]["rows"]["reused"] == 385  # the rows that promoted version 1

    names = ledger_objects(preconditions)
    records = [n for n in names if not n.startswith(PREFIX + "/keys/")]
    assert records == [f"{PREFIX}/{n:08d}.json" for n in range(1, 6)]
    (keys_object,) = [n for n in names if n.startswith(PREFIX + "/keys/")]  # same rows: one
    kinds = [
        json.loads(preconditions.bucket("reg-bucket").blob(n).download_as_bytes())["kind"]
        for n in records
    ]
    assert kinds == ["decision", "outcome", "promoted", "decision", "outcome"]

    fresh = VertexRegistry.from_uri(uri, MODEL, serving_image=SERVING)  # another process
    one, two = fresh.ledger().decisions
    assert (one.champion, one.deployed, one.version) == (ledger_mod.BASELINE, True, "1")
    assert (two.champion, two.deployed, two.attempt) == ("1", False, 1)
    assert one.rows["sha256"] in keys_object and len(one.keys) == 385
    np.testing.assert_array_equal(one.keys, two.keys)
    assert second["ledger"]["where"] == f"gs://reg-bucket/{PREFIX}"


def test_racing_reservations_take_different_attempts(uri, vertex, preconditions, tmp_path):
    """Between this evaluation reading the ledger and creating record 1, another one creates
    it: the create is refused, the ledger read again, and this one becomes attempt 2."""
    ours = VertexRegistry.from_uri(uri, MODEL, cache_dir=tmp_path / "a")
    theirs = VertexRegistry.from_uri(uri, MODEL, cache_dir=tmp_path / "b")
    keys = np.arange(50, dtype=np.uint64)
    other = Reservation(AlphaPolicy(), "1", keys, "k")
    plan = Reservation(AlphaPolicy(), "1", keys, "k")
    calls = []

    def racing(ledger):
        made = plan_call(plan, ledger)
        calls.append(made[0]["attempt"])
        if len(calls) == 1:
            theirs.append_ledger(other)  # lands in the window
        return made

    plan_call = Reservation.__call__
    stored = ours.append_ledger(racing)
    assert calls == [1, 2]
    assert (other.account.attempt, plan.account.attempt) == (1, 2)
    assert plan.account.level == pytest.approx(0.05 / 6) and stored["seq"] == 2
    assert [d.attempt for d in ours.ledger().decisions] == [1, 2]


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda b: b.upload_from_string(b"{not json"), "record 1 is not JSON"),
        (
            lambda b: b.upload_from_string(
                json.dumps(json.loads(b.download_as_bytes()) | {"model": "churn"})
            ),
            "record 1 belongs to model 'churn', not 'digits-mlp'",
        ),
    ],
    ids=["not-json", "foreign"],
)
def test_a_damaged_ledger_on_gcs_is_one_line_and_moves_nothing(
    uri, registry, vertex, preconditions, trained_bundle, files, tmp_path, damage, problem
):
    _, first = evaluate(uri, tmp_path, trained_bundle, files)
    registry.register(trained_bundle, first, expected=None)
    damage(preconditions.bucket("reg-bucket").blob(f"{PREFIX}/00000001.json"))
    objects = {b.name for b in preconditions.list_blobs("reg-bucket")}
    posts = len(vertex.find("POST", r"."))
    (tmp_path / "decision.json").unlink()
    with pytest.raises(RegistryError) as info:
        evaluate(uri, tmp_path, trained_bundle, files)
    message = str(info.value)
    assert "\n" not in message and problem in message
    assert message.startswith(
        f"registry '{registry.uri}' (model {MODEL}): ledger 'gs://reg-bucket/{PREFIX}/': "
    )
    assert f"create an empty object gs://reg-bucket/{PREFIX}/started" in message
    assert {b.name for b in preconditions.list_blobs("reg-bucket")} == objects
    assert len(vertex.find("POST", r".")) == posts  # no upload, no alias move
    assert not (tmp_path / "decision.json").exists()


def test_keys_that_do_not_match_their_sha256_are_refused(
    uri, vertex, preconditions, trained_bundle, files, tmp_path
):
    evaluate(uri, tmp_path, trained_bundle, files)
    (name,) = [n for n in ledger_objects(preconditions) if "/keys/" in n]
    blob = preconditions.bucket("reg-bucket").blob(name)
    blob.upload_from_string(np.zeros(3, np.uint64).tobytes())
    fresh = VertexRegistry.from_uri(uri, MODEL, cache_dir=tmp_path / "other-cache")
    with pytest.raises(RegistryError, match="the row keys of record 1 do not match their sha256"):
        fresh.ledger()


def test_a_lost_ledger_on_gcs_is_one_line_and_a_started_one_is_new(
    uri, registry, vertex, preconditions, trained_bundle, files, tmp_path
):
    _, first = evaluate(uri, tmp_path, trained_bundle, files)
    registry.register(trained_bundle, first, expected=None)
    for name in ledger_objects(preconditions):
        preconditions.bucket("reg-bucket").blob(name).delete()
    with pytest.raises(RegistryError) as info:
        registry.ledger()
    assert "the ledger is missing, yet 1 decision(s) in the history were recorded in it" in (
        str(info.value)
    )
    preconditions.bucket("reg-bucket").blob(f"{PREFIX}/started").upload_from_string(b"")
    assert registry.ledger().records == 0  # a new account, as the error said
    _, again = evaluate(uri, tmp_path, trained_bundle, files)
    assert again["accounting"]["attempt"] == 1


def test_without_an_artifacts_location_only_per_comparison_runs(
    vertex, gcs, trained_bundle, files, tmp_path
):
    uri = f"vertex://{PROJECT}/{REGION}?api_endpoint={vertex.url}"
    with pytest.raises(RegistryError) as info:
        evaluate(uri, tmp_path, trained_bundle, files)
    assert str(info.value) == (
        f"no artifacts= location in {VertexRegistry.from_uri(uri, MODEL).uri}: no ledger is "
        "kept, and alpha_accounting=per_champion needs one to count earlier attempts; use "
        "vertex://PROJECT/REGION?artifacts=gs://BUCKET/PREFIX, or "
        "alpha_accounting=per_comparison (no promise across runs)"
    )
    ev, decision = evaluate(
        uri, tmp_path, trained_bundle, files, GatePolicy(alpha_accounting="per_comparison")
    )
    assert decision["level"] == 0.05 and decision["ledger"]["id"] is None
    assert decision["ledger"]["notes"] == [
        f"no artifacts= location in {VertexRegistry.from_uri(uri, MODEL).uri}: no ledger is kept"
    ]
