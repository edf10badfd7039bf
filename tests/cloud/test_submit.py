"""`sigdeploy submit vertex|kfp` and `schedule vertex` through the real clients.

google-cloud-aiplatform and kfp.Client talk to recording servers on 127.0.0.1; the pipeline
root bucket lives in the GCS emulator. The recorded request bodies are checked field by field.
"""

from __future__ import annotations

import json

import pytest
import yaml

from pipelines.cli import main
from pipelines.spec import compile_pipeline
from tests.cloud.conftest import PROJECT, REGION, SERVING

ROOT = "gs://runs-bucket/pipeline-root"


@pytest.fixture()
def runs_bucket(gcs):
    return gcs.create_bucket("runs-bucket")


def _vertex_args(compiled, vertex, *extra: str) -> list[str]:
    return [
        "submit",
        "vertex",
        "--project",
        PROJECT,
        "--region",
        REGION,
        "--pipeline-root",
        ROOT,
        "--pipeline",
        str(compiled["vertex"]),
        "--api-endpoint",
        vertex.url,
        *extra,
    ]


def _created_job(vertex) -> dict:
    (call,) = vertex.find("POST", r"/pipelineJobs$")
    return call.json() | {"id": call.query["pipelineJobId"][0]}


def test_submit_vertex_sends_our_spec_parameters_and_settings(
    compiled, vertex, runs_bucket, capsys
):
    rc = main(
        _vertex_args(
            compiled,
            vertex,
            "--service-account",
            f"runner@{PROJECT}.iam.gserviceaccount.com",
            "--network",
            "projects/123/global/networks/ml",
            "--label",
            "team=ml",
            "--label",
            "purpose=nightly",
            "--param",
            "max_epochs=3",
            "--param",
            "alpha=0.01",
            "--param",
            "source=bq://test-proj.sales.orders",
        )
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    job = _created_job(vertex)
    job_id = job["id"]
    assert out.strip() == (
        f"https://console.cloud.google.com/vertex-ai/locations/{REGION}/pipelines/runs/"
        f"{job_id}?project={PROJECT}"
    )
    # the compiled JSON, unchanged: no --no-cache, so the compile-time caching stands
    assert job["pipelineSpec"] == json.loads(compiled["vertex"].read_text())
    runtime = job["runtimeConfig"]
    assert runtime["gcsOutputDirectory"] == ROOT
    values = runtime["parameterValues"]
    assert values["max_epochs"] == 3 and isinstance(values["max_epochs"], int | float)
    assert values["alpha"] == 0.01
    assert values["source"] == "bq://test-proj.sales.orders"
    # Vertex defaults: Model Registry under the pipeline root, serving image beside ours
    assert values["registry"] == (f"vertex://{PROJECT}/{REGION}?artifacts={ROOT}/registry")
    assert values["serving_image"] == SERVING
    assert set(values) == {"max_epochs", "alpha", "source", "registry", "serving_image"}
    assert job["serviceAccount"] == f"runner@{PROJECT}.iam.gserviceaccount.com"
    assert job["network"] == "projects/123/global/networks/ml"
    assert job["labels"]["team"] == "ml" and job["labels"]["purpose"] == "nightly"
    assert vertex.calls[-1].headers.get("authorization") is None  # local server: no token


def test_no_cache_turns_caching_off_for_every_task(compiled, vertex, runs_bucket, capsys):
    assert main(_vertex_args(compiled, vertex, "--no-cache")) == 0
    spec = _created_job(vertex)["pipelineSpec"]
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    options = [t["cachingOptions"] for dag in dags for t in dag["tasks"].values()]
    assert options and all(o.get("enableCache") is False for o in options)


def test_compiled_caching_is_off_for_ingest_and_the_champion_lookup(compiled):
    spec = json.loads(compiled["vertex"].read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert not tasks["ingest"]["cachingOptions"].get("enableCache")
    assert not tasks["evaluate"]["cachingOptions"].get("enableCache")
    assert tasks["train"]["cachingOptions"]["enableCache"] is True


def test_wait_follows_the_run_until_it_succeeds(compiled, vertex, runs_bucket, capsys):
    vertex.job_states = ["PIPELINE_STATE_RUNNING", "PIPELINE_STATE_SUCCEEDED"]
    rc = main(_vertex_args(compiled, vertex, "--wait", "--poll-seconds", "0"))
    err = capsys.readouterr().err
    assert rc == 0
    assert "PIPELINE_STATE_RUNNING" in err and "PIPELINE_STATE_SUCCEEDED" in err


def test_wait_exits_non_zero_when_the_run_fails(compiled, vertex, runs_bucket, capsys):
    vertex.job_states = ["PIPELINE_STATE_RUNNING", "PIPELINE_STATE_FAILED"]
    rc = main(_vertex_args(compiled, vertex, "--wait", "--poll-seconds", "0"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err[-1] == (
        "sigdeploy: error: run ended PIPELINE_STATE_FAILED: "
        "The DAG failed because task train failed."
    )


def test_experiment_is_created_and_the_run_attached(compiled, vertex, runs_bucket, capsys):
    vertex.job_states = ["PIPELINE_STATE_RUNNING"]  # the run context exists once it runs
    assert main(_vertex_args(compiled, vertex, "--experiment", "nightly-digits")) == 0
    (created,) = vertex.find("POST", r"/metadataStores/default/contexts$")
    assert created.query["contextId"] == ["nightly-digits"]
    assert created.json()["schemaTitle"] == "system.Experiment"
    (attach,) = vertex.find("POST", r"/contexts/nightly-digits:addContextChildren$")
    job_id = _created_job(vertex)["id"]
    assert attach.json()["childContexts"][0].endswith(f"/contexts/{job_id}")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--param", "epochs=3"], "parameter 'epochs' is not a pipeline parameter"),
        (["--param", "max_epochs=three"], "parameter max_epochs='three': expected a whole number"),
        (["--param", "alpha=high"], "parameter alpha='high': expected a number"),
        (["--param", "registry=registry"], "on Vertex AI the registry is Model Registry"),
        (["--label", "Team=ML"], "--label Team=ML: keys and values use lowercase"),
        (["--param", "novalue"], "--param 'novalue': write NAME=VALUE"),
        (["--param", "precision=fp64"], "precision='fp64' must be one of"),
        (["--param", "primary_metrics=speed"], "speed"),
        (["--param", "max_epoch=5"], "(did you mean max_epochs?)"),
        # every config a run builds is checked here, not minutes into the run on Vertex
        (["--param", "train_fraction=0.9", "--param", "val_fraction=0.5"], "split fractions"),
        (["--param", "canary_percent=0"], "canary_percent=0 must be 1-100"),
        (["--param", "baseline=nonsense"], "baseline='nonsense' must be one of"),
        (["--param", "min_replicas=3", "--param", "max_replicas=2"], "max_replicas=2 must be"),
        (["--param", "image_size=0"], "image_size=0 must be 1-1024"),
        (["--param", "feature_columns=a", "--param", "id_columns=a"], "both name a"),
    ],
)
def test_bad_input_fails_before_any_request(compiled, vertex, capsys, extra, message):
    rc = main(_vertex_args(compiled, vertex, *extra))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("sigdeploy: error: ")
    assert message in err[0]
    assert vertex.calls == []


def test_every_problem_is_one_line_before_any_request(compiled, vertex, capsys):
    extra = ["--param", "canary_percent=0", "--param", "baseline=x", "--param", "max_epoch=5"]
    assert main(_vertex_args(compiled, vertex, *extra)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("sigdeploy: error: invalid settings: ")
    for part in ("max_epochs?", "canary_percent=0", "baseline='x'"):
        assert part in line
    assert vertex.calls == []


def test_pipeline_root_must_be_on_cloud_storage(compiled, vertex, capsys):
    args = _vertex_args(compiled, vertex)
    args[args.index(ROOT)] = "/tmp/root"
    assert main(args) == 2
    assert "--pipeline-root '/tmp/root': Vertex AI needs a Cloud Storage path" in (
        capsys.readouterr().err
    )
    assert vertex.calls == []


def test_the_built_in_image_name_is_refused_for_vertex(compiled, vertex, tmp_path, capsys):
    local_image = compile_pipeline("vertex", tmp_path / "p.json")
    args = _vertex_args(compiled, vertex)
    args[args.index(str(compiled["vertex"]))] = str(local_image)
    assert main(args) == 2
    assert "uses the built-in image name sigdeploy/python-component" in capsys.readouterr().err
    assert vertex.calls == []


def test_schedule_vertex_creates_a_cron_schedule(compiled, vertex, runs_bucket, capsys):
    args = _vertex_args(compiled, vertex, "--param", "max_epochs=5", "--label", "team=ml")
    args[0:2] = ["schedule", "vertex"]
    args += [
        "--cron",
        "TZ=Europe/Berlin 0 3 * * 1",
        "--max-concurrent-runs",
        "1",
        "--max-runs",
        "10",
    ]
    rc = main(args)
    out, err = capsys.readouterr()
    assert rc == 0, err
    (call,) = vertex.find("POST", r"/schedules$")
    body = call.json()
    assert body["cron"] == "TZ=Europe/Berlin 0 3 * * 1"
    assert body["maxConcurrentRunCount"] == "1" or body["maxConcurrentRunCount"] == 1
    assert int(body["maxRunCount"]) == 10
    job = body["createPipelineJobRequest"]["pipelineJob"]
    assert job["pipelineSpec"] == json.loads(compiled["vertex"].read_text())
    assert job["runtimeConfig"]["parameterValues"]["max_epochs"] == 5
    assert job["runtimeConfig"]["gcsOutputDirectory"] == ROOT
    assert job["labels"]["team"] == "ml"
    assert "/pipelines/schedules/" in out
    assert vertex.find("POST", r"/pipelineJobs$") == []  # a schedule, not a run


def test_a_pipeline_compiled_for_another_target_is_refused(compiled, vertex, kfp_server, capsys):
    args = _vertex_args(compiled, vertex)
    args[args.index(str(compiled["vertex"]))] = str(compiled["kind"])
    assert main(args) == 2
    assert (
        "was compiled for the kind target; compile it with `python compile.py --target "
        "vertex`" in capsys.readouterr().err
    )
    assert main(_kfp_args(kfp_server, compiled["vertex"])) == 2
    assert "was compiled for the vertex target" in capsys.readouterr().err
    assert vertex.calls == [] and kfp_server.calls == []


def test_schedule_refuses_a_bad_cron(compiled, vertex, capsys):
    args = _vertex_args(compiled, vertex)
    args[0:2] = ["schedule", "vertex"]
    assert main([*args, "--cron", "every monday"]) == 2
    assert "--cron 'every monday': write five fields" in capsys.readouterr().err
    assert vertex.calls == []


# ------------------------------------------------------------------------------- KFP


def _kfp_args(server, pipeline, *extra: str) -> list[str]:
    return ["submit", "kfp", "--host", server.url, "--pipeline", str(pipeline), *extra]


def test_submit_kfp_sends_the_kind_spec_and_parameters(compiled, kfp_server, capsys):
    rc = main(
        _kfp_args(
            kfp_server,
            compiled["kind"],
            "--experiment",
            "digits",
            "--param",
            "max_epochs=2",
            "--param",
            "margin=0.01",
        )
    )
    out, err = capsys.readouterr()
    assert rc == 0, err
    (exp,) = kfp_server.find("POST", r"/experiments$")
    assert exp.json()["display_name"] == "digits"
    (call,) = kfp_server.find("POST", r"/runs$")
    run = call.json()
    docs = list(yaml.safe_load_all(compiled["kind"].read_text()))
    assert run["pipeline_spec"]["pipeline_spec"] == docs[0]
    assert run["pipeline_spec"]["platform_spec"] == docs[1]
    assert run["experiment_id"] == "exp-1"
    params = run["runtime_config"]["parameters"]
    # the kind spec mounts the shared volume, so the registry defaults onto it
    assert params == {"max_epochs": 2, "margin": 0.01, "registry": "/mnt/sigdeploy/registry"}
    assert out.strip() == f"{kfp_server.url}/#/runs/details/run-1"


def test_submit_kfp_accepts_a_json_package(compiled, kfp_server, capsys):
    assert main(_kfp_args(kfp_server, compiled["local"], "--no-cache")) == 0
    (call,) = kfp_server.find("POST", r"/runs$")
    run = call.json()
    assert run["pipeline_spec"]["pipelineInfo"]["name"] == "sigdeploy-training"
    assert "registry" not in run["runtime_config"].get("parameters", {})  # no shared volume
    tasks = run["pipeline_spec"]["root"]["dag"]["tasks"]
    # kfp.Client sets enable_cache=false on every root task; proto3 JSON omits a false
    assert tasks["train"]["cachingOptions"] == {}
    assert not any(t["cachingOptions"].get("enableCache") for t in tasks.values())


def test_submit_kfp_wait_reports_failure(compiled, kfp_server, capsys):
    kfp_server.run_states = ["RUNNING", "FAILED"]
    rc = main(_kfp_args(kfp_server, compiled["kind"], "--wait", "--poll-seconds", "0"))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1
    assert err[-1] == "sigdeploy: error: run ended FAILED: task train failed"


def test_submit_kfp_bad_parameter_sends_nothing(compiled, kfp_server, capsys):
    assert main(_kfp_args(kfp_server, compiled["kind"], "--param", "max_epochs=1.5")) == 2
    assert "parameter max_epochs='1.5': expected a whole number" in capsys.readouterr().err
    assert kfp_server.calls == []


def test_submit_kfp_unreachable_host_is_one_line(compiled, capsys):
    rc = main(
        ["submit", "kfp", "--host", "http://127.0.0.1:9", "--pipeline", str(compiled["kind"])]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and "KFP at http://127.0.0.1:9 is not reachable" in err[0]
