"""`sigdeploy predict --batch-job`: a Vertex AI batch prediction job of the champion, through
the real aiplatform client against the recording server (the job itself is not run here)."""

from __future__ import annotations

import json

import pytest

from pipelines.cli import main
from tests.cloud.conftest import MODEL, PROJECT, REGION
from tests.cloud.test_vertex_registry import DECISION


@pytest.fixture()
def two_versions(registry, trained_bundle):
    registry.register(trained_bundle, DECISION)
    return registry.register(trained_bundle, DECISION)


def _args(uri, *extra):
    return ["predict", "--batch-job", "--registry", uri, "--model-name", MODEL, *extra]


def test_batch_job_scores_the_champion_with_its_serving_container(
    uri, vertex, two_versions, capsys
):
    vertex.batch_states = ["JOB_STATE_RUNNING"] * 5 + ["JOB_STATE_SUCCEEDED"]
    code = main(
        _args(uri, "--data", "gs://in/new.jsonl", "--output", "gs://out/preds/", "--json",
              "--machine-type", "n1-highmem-8", "--max-replicas", "4")
    )  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    (created,) = vertex.find("POST", r"/batchPredictionJobs$")
    body = created.json()
    assert body["model"] == two_versions.uri  # the champion version, by its versioned name
    assert body["inputConfig"] == {
        "instancesFormat": "jsonl",
        "gcsSource": {"uris": ["gs://in/new.jsonl"]},
    }
    assert body["outputConfig"] == {
        "predictionsFormat": "jsonl",
        "gcsDestination": {"outputUriPrefix": "gs://out/preds"},
    }
    assert body["dedicatedResources"]["machineSpec"] == {"machineType": "n1-highmem-8"}
    assert body["dedicatedResources"]["startingReplicaCount"] == 1
    assert body["dedicatedResources"]["maxReplicaCount"] == 4
    assert body["labels"] == {"sigdeploy-model": MODEL}
    job_id = result["job"].rsplit("/", 1)[1]
    assert result["job"] == f"projects/{PROJECT}/locations/{REGION}/batchPredictionJobs/{job_id}"
    assert result["console"].endswith(
        f"/locations/{REGION}/batch-predictions/{job_id}?project={PROJECT}"
    )
    # Without --wait the command returns once the job exists, without polling to the end.
    assert result["state"] == "JOB_STATE_RUNNING"
    assert len(vertex.find("GET", r"/batchPredictionJobs/[^/]+$")) < 5


def test_batch_job_of_a_named_version_from_bigquery_waits_for_the_end(
    uri, vertex, two_versions, registry, capsys
):
    vertex.batch_states = ["JOB_STATE_FAILED"]
    first = registry.version_infos()[0]
    code = main(
        _args(uri, "--data", f"bq://{PROJECT}.scoring.rows", "--output", f"bq://{PROJECT}",
              "--version", first.version, "--wait")
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2  # the job failed: one line and a non-zero exit
    body = vertex.find("POST", r"/batchPredictionJobs$")[0].json()
    assert body["model"].endswith(f"@{first.version}")
    assert body["inputConfig"]["bigquerySource"] == {"inputUri": f"bq://{PROJECT}.scoring.rows"}
    assert body["outputConfig"]["predictionsFormat"] == "bigquery"
    assert err.startswith(f"sigdeploy: error: batch prediction of {MODEL} failed on Vertex AI")
    assert "instance 0 has an unexpected field: id" in err  # the service's own reason
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--data", "gs://in/new.parquet", "--output", "gs://o/"], "reads gs://BUCKET/PATH.jsonl"),
        (["--data", "local.csv", "--output", "gs://o/"], "score local files without --batch-job"),
        (["--data", "gs://in/a.csv", "--output", "/tmp/x.csv"], "writes to a gs://BUCKET/PREFIX"),
        (["--data", "gs://in/a.csv", "--output", "gs://o", "--max-replicas", "0"], "1-1000"),
    ],
)
def test_bad_batch_job_input_sends_nothing(uri, vertex, two_versions, capsys, extra, message):
    before = len(vertex.calls)
    assert main(_args(uri, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert len(vertex.calls) == before


def test_batch_job_of_a_missing_version_is_one_line(uri, vertex, two_versions, capsys):
    code = main(_args(uri, "--data", "gs://in/new.jsonl", "--output", "gs://o/", "--version", "77"))
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "no version '77'; `sigdeploy registry show` lists them" in err
    assert vertex.find("POST", r"/batchPredictionJobs$") == []


def test_batch_job_needs_a_vertex_registry(tmp_path, capsys):
    args = ["predict", "--batch-job", "--registry", str(tmp_path), "--data", "gs://a/b.csv",
            "--output", "gs://o/"]  # fmt: skip
    assert main(args) == 2
    assert "--batch-job needs vertex://PROJECT/REGION" in capsys.readouterr().err


def test_a_vertex_version_scored_here(uri, two_versions, registry, digits_parts, tmp_path, capsys):
    """Without --batch-job, a Model Registry version is copied down and scored locally."""
    import pandas as pd

    data = tmp_path / "test.csv"
    digits_parts["test"].to_csv(data, index=False)
    first = registry.version_infos()[0].version
    out = tmp_path / "scored.csv"
    args = ["predict", "--registry", uri, "--model-name", MODEL, "--data", str(data),
            "--output", str(out), "--version", first, "--json"]  # fmt: skip
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["version"] == first and summary["accuracy"] >= 0.9
    assert len(pd.read_csv(out)) == len(digits_parts["test"])
    assert main([*args[:-3], "--version", "77"]) == 2
    assert "no version '77'" in capsys.readouterr().err
