"""Golden structure of the compiled pipeline per target (vertex, kind, kind --gpu).

The compiled spec is loaded back and reduced to what matters: the task graph, the dsl.If,
images, accelerators, caching, and (kind) the Kubernetes settings. The SDK version string
and the embedded component source are ignored.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from components import images
from components.core.platforms import kube
from tests.cloud.conftest import IMAGE

GRAPH = {
    "ingest": [],
    "preprocess": ["ingest"],
    "train": ["preprocess"],
    "evaluate": ["preprocess", "train"],
    "promote": ["evaluate", "train"],
}
# False = the task never comes from the cache (fresh data, the live champion, deploys)
# preprocess reads the champion's split record from the registry: never cached either
CACHING = {"ingest": False, "preprocess": False, "train": True, "evaluate": False, "promote": False}
SERVING_PARAMS = {
    "serving_image": ("STRING", images.SERVING_IMAGE),
    "endpoint_name": ("STRING", ""),
    "machine_type": ("STRING", "n1-standard-2"),
    "min_replicas": ("NUMBER_INTEGER", 1),
    "max_replicas": ("NUMBER_INTEGER", 1),
    "canary_percent": ("NUMBER_INTEGER", 100),
}


def _docs(path) -> list[dict[str, Any]]:
    text = path.read_text()
    if path.suffix == ".json":
        return [json.loads(text)]
    return [d for d in yaml.safe_load_all(text) if d]


def structure(spec: dict[str, Any]) -> dict[str, Any]:
    """The parts of a compiled spec a target decides, without SDK noise."""
    root = spec["root"]["dag"]["tasks"]
    comps = spec["components"]
    executors = spec["deploymentSpec"]["executors"]
    (cond_name, cond), *more = comps["comp-promote"]["dag"]["tasks"].items()
    assert not more, "promote holds exactly one dsl.If"
    inner = comps[cond["componentRef"]["name"]]["dag"]["tasks"]
    deploy = inner["deploy"]

    def executor(task: dict) -> dict:
        return executors[comps[task["componentRef"]["name"]]["executorLabel"]]["container"]

    train = executor(root["train"]).get("resources", {})
    return {
        "graph": {name: sorted(t.get("dependentTasks", [])) for name, t in root.items()},
        "caching": {n: bool(t["cachingOptions"].get("enableCache")) for n, t in root.items()},
        "condition": cond["triggerPolicy"]["condition"],
        "inside_if": sorted(inner),
        "deploy_caching": bool(deploy["cachingOptions"].get("enableCache")),
        "deploy_platform": deploy["inputs"]["parameters"]["platform"]["runtimeValue"]["constant"],
        "images": sorted({e["container"]["image"] for e in executors.values()}),
        "accelerator": (
            train["accelerator"]["resourceType"],
            int(train["accelerator"]["resourceCount"]),
        )
        if "accelerator" in train
        else None,
        "accelerated_tasks": sorted(
            name
            for name, e in executors.items()
            if "accelerator" in e["container"].get("resources", {})
        ),
    }


def expected(platform: str, accelerator: tuple[str, int] | None) -> dict[str, Any]:
    return {
        "graph": GRAPH,
        "caching": CACHING,
        "condition": "inputs.parameter_values['pipelinechannel--deploy_model'] == true",
        "inside_if": ["deploy"],
        "deploy_caching": False,
        "deploy_platform": platform,
        "images": [IMAGE],
        "accelerator": accelerator,
        "accelerated_tasks": ["exec-train"] if accelerator else [],
    }


def test_vertex_structure(compiled):
    (spec,) = _docs(compiled["vertex"])
    assert structure(spec) == expected("vertex", ("NVIDIA_TESLA_T4", 1))
    train = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert (train["resourceCpuLimit"], train["resourceMemoryLimit"]) == ("8", "30G")
    assert "platforms" not in spec


@pytest.mark.parametrize(
    ("name", "accelerator"), [("kind", None), ("kind-gpu", ("nvidia.com/gpu", 1))]
)
def test_kind_structure(compiled, name, accelerator):
    spec, platform = _docs(compiled[name])
    assert structure(spec) == expected("kind", accelerator)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert sorted(executors) == sorted(spec["deploymentSpec"]["executors"])
    for settings in executors.values():
        assert settings["imagePullPolicy"] == "IfNotPresent"  # images come from `kind load`
        (mount,) = settings["pvcMount"]
        assert mount["mountPath"] == kube.SHARED_MOUNT
        assert mount["pvcNameParameter"]["runtimeValue"]["constant"] == kube.SHARED_PVC


@pytest.mark.parametrize("name", ["vertex", "kind"])
def test_serving_parameters_reach_the_deploy_step(compiled, name):
    spec = _docs(compiled[name])[0]
    params = spec["root"]["inputDefinitions"]["parameters"]
    for param, (kind, default) in SERVING_PARAMS.items():
        assert params[param]["parameterType"] == kind
        assert params[param]["defaultValue"] == default
    deploy_inputs = spec["components"]["comp-deploy"]["inputDefinitions"]["parameters"]
    assert set(SERVING_PARAMS) | {"platform", "registry", "model_name"} == set(deploy_inputs)
