"""Compile tests: load the IR back and check its structure (not the SDK version string)."""

from __future__ import annotations

import json

import pytest

from components import images
from pipelines.spec import IMAGE_ENV, compile_pipeline, load_spec

ROOT_TASKS = {"ingest", "preprocess", "train", "evaluate", "promote"}


def _executor(spec, task_name, dag=None):
    dag = dag or spec["root"]["dag"]
    component = dag["tasks"][task_name]["componentRef"]["name"]
    executor = spec["components"][component]["executorLabel"]
    return spec["deploymentSpec"]["executors"][executor]["container"]


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compile")
    return {t: load_spec(compile_pipeline(t, tmp / f"{t}.json")) for t in ("local", "vertex")}


def test_task_graph(specs):
    spec = specs["local"]
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == ROOT_TASKS
    assert tasks["preprocess"]["dependentTasks"] == ["ingest"]
    assert set(tasks["evaluate"]["dependentTasks"]) == {"preprocess", "train"}
    assert set(tasks["promote"]["dependentTasks"]) == {"evaluate", "train"}
    deploy_input = tasks["promote"]["inputs"]["parameters"]["deploy_model"]
    assert deploy_input["taskOutputParameter"] == {
        "outputParameterKey": "deploy",
        "producerTask": "evaluate",
    }


def test_deploy_sits_inside_a_dsl_if_on_the_gate(specs):
    spec = specs["local"]
    promote = spec["components"]["comp-promote"]["dag"]["tasks"]
    (cond_name,) = promote
    cond = promote[cond_name]
    assert "deploy_model" in cond["triggerPolicy"]["condition"]
    assert "== true" in cond["triggerPolicy"]["condition"]
    inner = spec["components"][cond["componentRef"]["name"]]["dag"]["tasks"]
    assert set(inner) == {"deploy"}


def test_evaluate_exposes_deploy_and_p_value(specs):
    params = specs["local"]["components"]["comp-evaluate"]["outputDefinitions"]["parameters"]
    assert params["deploy"]["parameterType"] == "BOOLEAN"
    assert params["p_value"]["parameterType"] == "NUMBER_DOUBLE"


def test_vertex_trains_on_a_gpu_and_local_does_not(specs):
    vertex = _executor(specs["vertex"], "train")["resources"]
    assert vertex["accelerator"]["resourceType"] == "NVIDIA_TESLA_T4"
    assert vertex["accelerator"]["resourceCount"] in ("1", 1)
    assert "accelerator" not in _executor(specs["local"], "train").get("resources", {})


def test_train_is_retried_after_preemption(specs):
    retry = specs["vertex"]["root"]["dag"]["tasks"]["train"]["retryPolicy"]
    assert retry["maxRetryCount"] == 3
    assert retry["backoffDuration"] == "60s"


def test_fresh_data_and_champion_never_come_from_cache(specs):
    tasks = specs["vertex"]["root"]["dag"]["tasks"]
    assert tasks["ingest"]["cachingOptions"].get("enableCache", False) is False
    assert tasks["evaluate"]["cachingOptions"].get("enableCache", False) is False
    assert tasks["preprocess"]["cachingOptions"].get("enableCache", False) is False
    assert tasks["train"]["cachingOptions"]["enableCache"] is True


def test_every_component_uses_the_project_image(specs):
    for container in specs["local"]["deploymentSpec"]["executors"].values():
        assert container["container"]["image"] == images.COMPONENT_IMAGE


def test_two_compiles_give_identical_bytes(tmp_path):
    a = compile_pipeline("vertex", tmp_path / "a.json").read_bytes()
    b = compile_pipeline("vertex", tmp_path / "b.json").read_bytes()
    assert a == b


def test_image_from_flag_then_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(IMAGE_ENV, "example.org/env-image:1")
    env_spec = json.loads(compile_pipeline("local", tmp_path / "e.json").read_text())
    flag_spec = json.loads(
        compile_pipeline("local", tmp_path / "f.json", image="example.org/flag:2").read_text()
    )
    for spec, want in ((env_spec, "example.org/env-image:1"), (flag_spec, "example.org/flag:2")):
        found = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
        assert found == {want}


def test_registry_default_per_target(specs):
    assert (
        specs["local"]["root"]["inputDefinitions"]["parameters"]["registry"]["defaultValue"]
        == "registry"
    )
    # On Vertex a run started without a registry must fail, not register into a throw-away
    # container disk: the compiled default is empty and evaluate refuses it.
    vertex = specs["vertex"]["root"]["inputDefinitions"]["parameters"]["registry"]
    assert vertex.get("defaultValue", "") == ""


SPEC_TYPES = {int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", bool: "BOOLEAN", str: "STRING"}


def _tasks(spec):
    """Every task in the spec (nested pipelines too), with the component it runs."""
    for component in [spec["root"], *spec["components"].values()]:
        for name, task in component.get("dag", {}).get("tasks", {}).items():
            yield name, task, spec["components"][task["componentRef"]["name"]]


def test_every_config_field_is_a_pipeline_parameter_that_reaches_its_task(specs):
    """Pipeline parameters map onto the fields of every config one to one: same name, type
    and default (the registry's default depends on the target), and each one reaches a task
    under its own name. A field left out would silently keep its default in the task."""
    from components.core.settings import parameters

    table = parameters()
    for target, spec in specs.items():
        root = spec["root"]["inputDefinitions"]["parameters"]
        assert set(root) == set(table), target
        for name, p in table.items():
            assert root[name]["parameterType"] == SPEC_TYPES[p.kind], name
            if name != "registry":
                assert root[name].get("defaultValue", "") == p.default, name
        consumed = set()
        for _, task, component in _tasks(spec):
            declared = component.get("inputDefinitions", {}).get("parameters", {})
            for key, source in task.get("inputs", {}).get("parameters", {}).items():
                name = key.removeprefix("pipelinechannel--")
                if name in table and "componentInputParameter" in source:
                    # a task input named like a parameter comes from that parameter
                    fed_by = source["componentInputParameter"].removeprefix("pipelinechannel--")
                    assert fed_by == name, (target, key)
                    if key in declared:
                        consumed.add(name)
        executors = {
            name
            for c in spec["components"].values()
            if "executorLabel" in c
            for name in c.get("inputDefinitions", {}).get("parameters", {})
        }
        assert set(table) <= executors, set(table) - executors  # each one reaches a component
        assert set(table) <= consumed | {"deploy_model"}, set(table) - consumed


def _undescribed(definitions):
    """The parameters and artifacts in an input or output definition without a description."""
    return sorted(
        name
        for kind in ("parameters", "artifacts")
        for name, spec in definitions.get(kind, {}).items()
        if not spec.get("description", "").strip()
    )


def test_every_parameter_and_artifact_has_a_description(specs):
    """The Vertex console shows each pipeline parameter's description: KFP parses them from
    the `Args:` (and `Returns:`) docstring sections of the pipeline and component functions.
    Only the components KFP generates for a dsl.If are exempt (their inputs are channels)."""
    for target, spec in specs.items():
        root = spec["root"]
        assert _undescribed(root["inputDefinitions"]) == [], target
        assert _undescribed(root["outputDefinitions"]) == [], target
        for name, component in spec["components"].items():
            if name.startswith("comp-condition-"):
                continue
            for section in ("inputDefinitions", "outputDefinitions"):
                assert _undescribed(component.get(section, {})) == [], (target, name, section)
