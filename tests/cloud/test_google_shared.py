"""What every Google client call shares (platforms/gcp.py): one line for a failed call, and
one project-id pattern that the registry URI, `submit`, BigQuery sources and batch jobs all
accept or refuse alike."""

from __future__ import annotations

import argparse

import pytest
from google.api_core import exceptions as gexc
from google.auth.exceptions import DefaultCredentialsError, TransportError

from components.core.errors import ConfigError, DataError, RegistryError, SigdeployError
from components.core.platforms import gcp
from components.core.platforms import vertex as vertex_ai
from components.core.registry.vertex import parse_uri
from pipelines import submit

HINT = "run `gcloud auth application-default login`, or run where a service account is attached"


def _raise(exc):
    def fn():
        raise exc

    return fn


@pytest.mark.parametrize(
    ("project", "ok"),
    [
        ("test-proj", True),
        ("my-project-123456", True),
        ("abcdef", True),
        ("a" * 30, True),
        ("a" * 31, False),
        ("proj", False),  # too short
        ("P-roject", False),  # upper case
        ("1project", False),  # starts with a digit
        ("my_project", False),
        ("project-", False),
    ],
)
def test_every_caller_agrees_on_what_a_project_id_is(project, ok):
    def accepted(check, *args):
        try:
            check(*args)
        except SigdeployError:
            return False
        return True

    verdicts = {
        "registry URI": accepted(parse_uri, f"vertex://{project}/us-central1"),
        "submit --project": accepted(submit._project, argparse.Namespace(project=project)),
        "batch job source": accepted(vertex_ai.batch_source, f"bq://{project}.ds.rows"),
        "batch job output": accepted(vertex_ai.batch_destination, f"bq://{project}"),
        "the pattern": gcp.is_project_id(project),
    }
    assert verdicts == dict.fromkeys(verdicts, ok)
    if ok:  # BigQuery sources also take the legacy domain-scoped form
        assert gcp.parse_bigquery_uri(f"bq://{project}.ds.t")[0] == project


def test_vertex_lines_name_the_project_what_was_done_and_the_role():
    where = "Vertex AI (test-proj/us-central1)"
    cases = [
        (DefaultCredentialsError("none"), f"{where}: no credentials to list models; {HINT}"),
        (
            gexc.Forbidden("denied"),
            f"{where}: permission denied to list models; {vertex_ai.GRANT}",
        ),
        (
            gexc.InternalServerError("GET https://x/v1/models: backend error\nstack"),
            f"{where}: could not list models: backend error",
        ),
        (
            TransportError("connection refused"),
            f"{where}: could not list models: connection refused",
        ),
    ]
    for exc, line in cases:
        with pytest.raises(RegistryError) as info:
            with vertex_ai.errors("list models", "test-proj", "us-central1"):
                raise exc
        assert str(info.value) == line
    with pytest.raises(gexc.NotFound):  # left to the caller: "no champion yet" is not an error
        with vertex_ai.errors("get the champion", "test-proj", "us-central1"):
            raise gexc.NotFound("no such alias")


def test_storage_and_submit_lines_come_from_the_same_translator():
    with pytest.raises(DataError) as info:
        gcp._call("gs://b/x.csv", None, "b", "read the object", _raise(gexc.Forbidden("no")))
    assert str(info.value) == (
        "'gs://b/x.csv': permission denied to read the object; grant the caller "
        "roles/storage.objectViewer on gs://b (roles/storage.objectAdmin to write)"
    )
    with pytest.raises(DataError) as info:
        gcp._call(
            "gs://b/x.csv", None, "b", "read the object", _raise(gexc.ServiceUnavailable("busy"))
        )
    assert str(info.value) == "'gs://b/x.csv': could not read the object: busy; try again"
    with pytest.raises(submit.SubmitError) as info:
        submit._google_call("submit the pipeline job", _raise(gexc.BadRequest("bad parameter")))
    assert str(info.value) == "Vertex AI: could not submit the pipeline job: bad parameter"
    with pytest.raises(submit.SubmitError) as info:
        submit._google_call("submit the pipeline job", _raise(DefaultCredentialsError("none")))
    assert str(info.value) == f"Vertex AI: no credentials to submit the pipeline job; {HINT}"


def test_a_client_without_credentials_is_one_line(monkeypatch):
    from google.cloud import storage

    def no_credentials(*args, **kwargs):
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.setattr(storage, "Client", no_credentials)
    with pytest.raises(DataError) as info:
        gcp.storage_client()
    assert str(info.value) == f"Google Cloud Storage: no credentials found; {HINT}"


def test_batch_job_settings_are_checked_when_made():
    job = vertex_ai.BatchJob("gs://in/rows.csv", "gs://out/preds/")
    assert (job.machine_type, job.max_replicas, job.wait) == ("n1-standard-4", 1, False)
    with pytest.raises(ConfigError, match="max_replicas=0: must be 1-1000"):
        vertex_ai.BatchJob("gs://in/rows.csv", "gs://out/preds/", max_replicas=0)
