"""Serving on kind: the manifests (strict schema validation), applying them, and the deploy
step's kind branch (register in the shared registry, then serve that version).

The kubernetes client talks to a recording server; the manifests are checked against the
Kubernetes OpenAPI schemas with kubernetes-validate in strict mode (unknown fields fail).
"""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from components.core import serving_contract, steps
from components.core.errors import ConfigError, RegistryError
from components.core.platforms import kube
from components.core.platforms.deploy_config import DeployConfig
from components.core.registry import LocalRegistry, RegistryConfig
from components.serving.config import ServeConfig

K8S_VERSION = "1.31.0"  # kind v0.24+ node images
ROOT = Path(__file__).resolve().parents[2]
BUNDLE = f"{kube.REGISTRY_DIR}/digits-mlp/versions/3"
DECISION = {
    "deploy": True,
    "p_value": 0.004,
    "reason": "better on 9 more rows",
    "champion_version": None,  # a first run: against the baseline
}


def _strict(obj: dict) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_manifests_are_valid_and_serve_that_registry_version():
    serving = kube.KubeServing(image="sigdeploy/python-serving:0.1.0-abc", replicas=2)
    deployment, service = kube.manifests("digits-mlp", "3", BUNDLE, serving, decision=DECISION)
    for obj in (deployment, service):
        _strict(obj)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {
        "AIP_HTTP_PORT": "8080",
        "AIP_HEALTH_ROUTE": "/health",
        "AIP_PREDICT_ROUTE": "/predict",
        "AIP_STORAGE_URI": BUNDLE,
    }
    # the server in the pod reads the port and routes the probes and the Service use
    served = ServeConfig.from_env(env)
    assert container["ports"][0]["containerPort"] == served.port == serving_contract.SERVING_PORT
    assert container["readinessProbe"]["httpGet"]["path"] == served.health_route
    assert container["image"] == "sigdeploy/python-serving:0.1.0-abc"
    assert container["imagePullPolicy"] == "IfNotPresent"  # images come from `kind load`
    assert pod["volumes"][0]["persistentVolumeClaim"] == {
        "claimName": kube.SHARED_PVC,
        "readOnly": True,
    }
    assert container["volumeMounts"][0]["mountPath"] == kube.SHARED_MOUNT
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == "3"
    assert deployment["metadata"]["annotations"]["sigdeploy/p-value"] == "0.004"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert "app.kubernetes.io/version" not in service["spec"]["selector"]  # survives rollouts


def test_kserve_inference_service_carries_the_same_pod():
    serving = kube.KubeServing()
    *_, isvc = kube.manifests("digits-mlp", "3", BUNDLE, serving, kserve=True)
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["kind"] == "InferenceService"
    predictor = isvc["spec"]["predictor"]
    assert predictor["containers"][0]["name"] == "kserve-container"
    # no KServe schema ships with kubernetes-validate: check its pod part as a Pod, strictly
    pod_spec = {k: v for k, v in predictor.items() if k != "minReplicas"}
    meta = {"name": "isvc-pod", "namespace": "kubeflow"}
    _strict({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec})


@pytest.mark.parametrize("path", sorted((ROOT / "deploy" / "kind").glob("*.yaml")))
def test_static_kind_manifests_are_valid(path):
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        if doc.get("apiVersion", "").startswith("kind.x-k8s.io"):
            assert doc["nodes"]  # the kind cluster config, not a Kubernetes object
            continue
        _strict(doc)


def test_names_are_dns_labels():
    assert kube.resource_name("Digits_MLP.v2") == "digits-mlp-v2-serving"
    assert len(kube.resource_name("x" * 80)) <= 63


def test_a_bundle_off_the_shared_volume_is_refused():
    with pytest.raises(RegistryError, match="is not on the shared volume /mnt/sigdeploy"):
        kube.manifests("m", "1", "/tmp/registry/m/versions/1", kube.KubeServing())
    with pytest.raises(ConfigError, match="replicas=0"):
        kube.KubeServing(replicas=0)


def test_apply_uses_server_side_apply(kube_server):
    objects = kube.manifests("digits-mlp", "3", BUNDLE, kube.KubeServing())
    applied = kube.apply(objects, kube.api_client(kube_server.url))
    assert applied == [
        "Deployment/kubeflow/digits-mlp-serving",
        "Service/kubeflow/digits-mlp-serving",
    ]
    calls = kube_server.find("PATCH", r"/namespaces/kubeflow/")
    assert [c.path for c in calls] == [
        "/apis/apps/v1/namespaces/kubeflow/deployments/digits-mlp-serving",
        "/api/v1/namespaces/kubeflow/services/digits-mlp-serving",
    ]
    for call, obj in zip(calls, objects, strict=True):
        assert call.headers["content-type"] == "application/apply-patch+yaml"
        assert call.query == {"fieldManager": ["sigdeploy"], "force": ["true"]}
        assert call.json() == obj


def test_register_then_serve_with_kserve_when_installed(kube_server, trained_bundle, tmp_path):
    """The deploy step's kind branch: steps.register, then kube.serve of that version."""
    kube_server.kserve = True
    # on kind the registry lives on the shared mount; a temp dir stands in for it here
    shared = tmp_path / "mnt"
    registry = shared / "registry"
    decision = tmp_path / "decision.json"
    decision.write_text(json.dumps(DECISION))
    serving = kube.KubeServing(mount_path=str(shared))
    api = kube.api_client(kube_server.url)
    config = DeployConfig(serving_image="example.org/serving:7", min_replicas=2, max_replicas=2)
    result = steps.register(str(trained_bundle), str(decision), str(registry), "digits-mlp")
    result |= kube.serve("digits-mlp", result["version"], result["uri"], config, DECISION,
                         serving, api)  # fmt: skip
    assert result["version"] == "1"
    assert LocalRegistry(registry, "digits-mlp").champion().version == "1"
    assert result["applied"][-1] == "InferenceService/kubeflow/digits-mlp-serving-isvc"
    deployment = kube_server.objects[("kubeflow", "deployments", "digits-mlp-serving")]
    assert deployment["spec"]["replicas"] == 2  # the deploy settings reach the pods
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "example.org/serving:7"
    env = container["env"]
    version_dir = str(registry / "digits-mlp" / "versions" / "1")
    assert {"name": "AIP_STORAGE_URI", "value": version_dir} in env
    assert deployment["metadata"]["annotations"]["sigdeploy/p-value"] == "0.004"


def test_the_deploy_step_on_kind_checks_the_serving_settings_before_registering(
    kube_server, trained_bundle, tmp_path
):
    decision = tmp_path / "decision.json"
    decision.write_text(json.dumps(DECISION))
    where = RegistryConfig(str(tmp_path / "registry"), "digits-mlp")
    with pytest.raises(ConfigError, match="serving image is empty"):
        steps.deploy(
            str(trained_bundle), str(decision), where, DeployConfig(serving_image=""), "kind"
        )
    assert LocalRegistry(where.registry, "digits-mlp").champion() is None
    assert kube_server.calls == []


def test_forbidden_names_the_role_to_grant(kube_server):
    kube_server.forbidden = True
    objects = kube.manifests("m", "1", BUNDLE, kube.KubeServing())
    with pytest.raises(RegistryError) as info:
        kube.apply(objects, kube.api_client(kube_server.url))
    assert str(info.value) == (
        "Kubernetes: applying Deployment kubeflow/m-serving failed (HTTP 403 Forbidden); "
        "grant the pipeline's service account the sigdeploy-deployer Role (deploy/kind/rbac.yaml)"
    )


def test_a_stale_decision_neither_registers_nor_applies(kube_server, trained_bundle, tmp_path):
    """Evaluated against version 1, but version 2 is the champion now: the kind deploy keeps
    it, records why and serves nothing."""
    registry = LocalRegistry(tmp_path / "registry", "digits-mlp")
    registry.register(trained_bundle, {"deploy": True})
    registry.register(trained_bundle, {"deploy": True})
    decision = tmp_path / "decision.json"
    decision.write_text(json.dumps(DECISION | {"champion_version": "1"}))
    where = RegistryConfig(str(registry.root), "digits-mlp")
    config = DeployConfig(serving_image="example.org/serving:7")
    result = steps.deploy(str(trained_bundle), str(decision), where, config, "kind")
    assert result["promoted"] is False and result["champion"] == "2"
    assert result["reason"].endswith("made against version 1, the champion is now version 2")
    assert registry.versions() == [1, 2] and registry.champion().version == "2"
    assert registry.history()[-1]["event"] == "kept"
    assert kube_server.calls == []
