"""Serving the champion on Kubernetes (the kind target): manifests, and applying them.

On kind the registry is a directory on one PersistentVolumeClaim (``sigdeploy-data``) that
every pipeline task mounts at ``/mnt/sigdeploy``. The deploy step registers the bundle there
as usual; :func:`serve` then serves that registry version with a Deployment + Service (and a
KServe InferenceService when KServe is installed) that mount the same claim read-only and
point ``AIP_STORAGE_URI`` at the version's directory: the serving image keeps the Vertex
custom-container contract (serving_contract) on both targets.

Objects are applied with server-side apply (field manager ``sigdeploy``): one idempotent
request per object that creates it or updates it in place, so a new champion rolls out as
an ordinary Deployment update.

Permissions across uids: the pipeline tasks write the registry as the component image's
user, 1000:1000, and the serving pods run as the serving image's, 10001. The registry's
folders are setgid and group-writable (2775) and its files 0664 (``io.SHARED_*``), so all of
it belongs to the writer's group, ``REGISTRY_GID``; the serving pods join that group
(``fsGroup``, which Kubernetes adds to every container's groups whatever the volume type)
and read it, and nothing on the volume is writable by others.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import images
from components.core import serving_contract as contract
from components.core.errors import ConfigError, RegistryError
from components.core.platforms.deploy_config import DeployConfig

log = logging.getLogger(__name__)

SHARED_PVC = "sigdeploy-data"  # created by scripts/kind-up.sh (deploy/kind/storage.yaml)
SHARED_MOUNT = "/mnt/sigdeploy"  # where every task and the serving pods see it
REGISTRY_DIR = f"{SHARED_MOUNT}/registry"  # the registry the kind pipeline uses by default
# The registry's group: the pipeline tasks' group (docker/component.Dockerfile: USER
# 1000:1000), which the registry's setgid folders hand down to everything in them.
REGISTRY_GID = 1000
FIELD_MANAGER = "sigdeploy"
KSERVE_GROUP = "serving.kserve.io"
# kind -> (API path prefix, plural); the only kinds this module writes.
KINDS = {
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Service": ("/api/v1", "services"),
    "InferenceService": (f"/apis/{KSERVE_GROUP}/v1beta1", "inferenceservices"),
}


@dataclass(frozen=True)
class KubeServing:
    """How the champion is served on the cluster; fields map onto pipeline parameters."""

    image: str = images.SERVING_IMAGE  # serving image (loaded into kind, IfNotPresent)
    namespace: str = "kubeflow"  # must be the namespace of the shared claim
    replicas: int = 1  # serving pods
    pvc: str = SHARED_PVC  # claim holding the registry
    mount_path: str = SHARED_MOUNT  # where the claim is mounted in the serving pods
    cpu: str = "250m"  # CPU request per pod
    memory: str = "512Mi"  # memory request and limit per pod
    kserve: str = "auto"  # auto: an InferenceService too when KServe is installed; or on/off
    fs_group: int = REGISTRY_GID  # the registry's group, which the serving pods join (fsGroup)

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ConfigError(f"replicas={self.replicas}: must be at least 1")
        if not self.image:
            raise ConfigError(
                "serving image is empty: pass serving_image, e.g. sigdeploy/python-serving:0.1.0"
            )
        if self.kserve not in ("auto", "on", "off"):
            raise ConfigError(f"kserve={self.kserve!r}: use auto, on or off")
        if isinstance(self.fs_group, bool) or not 0 < self.fs_group < 2**31:
            raise ConfigError(
                f"fs_group={self.fs_group!r}: the registry's group id, a positive integer "
                f"(the pipeline's group is {REGISTRY_GID})"
            )


def resource_name(model_name: str) -> str:
    """A DNS-1123 label for the model's serving objects, e.g. digits-mlp-serving."""
    base = re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-") or "model"
    return f"{base[:50].rstrip('-')}-serving"


def manifests(
    model_name: str,
    version: str,
    bundle_path: str | Path,
    serving: KubeServing,
    *,
    kserve: bool = False,
    decision: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Deployment + Service (+ InferenceService) serving one registry version."""
    bundle = Path(bundle_path)
    mount = Path(serving.mount_path)
    if mount not in bundle.parents:
        raise RegistryError(
            f"bundle '{bundle}' is not on the shared volume {serving.mount_path}; on kind the "
            f"registry must live there (registry={REGISTRY_DIR})"
        )
    name = resource_name(model_name)
    selector = {"app.kubernetes.io/name": "sigdeploy-serving", "app.kubernetes.io/instance": name}
    labels = selector | {
        "app.kubernetes.io/version": re.sub(r"[^A-Za-z0-9_.-]", "-", str(version))[:63],
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
    }
    annotations = {"sigdeploy/model-name": model_name, "sigdeploy/bundle": str(bundle)}
    if decision:
        annotations["sigdeploy/p-value"] = f"{decision.get('p_value', float('nan')):.6g}"
        annotations["sigdeploy/reason"] = str(decision.get("reason", ""))[:1000]
    env = [
        {"name": contract.PORT_ENV, "value": str(contract.SERVING_PORT)},
        {"name": contract.HEALTH_ROUTE_ENV, "value": contract.HEALTH_ROUTE},
        {"name": contract.PREDICT_ROUTE_ENV, "value": contract.PREDICT_ROUTE},
        {"name": contract.STORAGE_URI_ENV, "value": str(bundle)},
    ]
    volume = {
        "name": "registry",
        "persistentVolumeClaim": {"claimName": serving.pvc, "readOnly": True},
    }
    mount_spec = {"name": "registry", "mountPath": serving.mount_path, "readOnly": True}
    probe = {
        "httpGet": {"path": contract.HEALTH_ROUTE, "port": "http"},
        "periodSeconds": 5,
        "failureThreshold": 3,
    }
    container = {
        "name": "server",
        "image": serving.image,
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "ports": [{"name": "http", "containerPort": contract.SERVING_PORT, "protocol": "TCP"}],
        "volumeMounts": [mount_spec],
        "readinessProbe": probe,
        "livenessProbe": probe | {"initialDelaySeconds": 30, "periodSeconds": 10},
        "resources": {
            "requests": {"cpu": serving.cpu, "memory": serving.memory},
            "limits": {"memory": serving.memory},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    # The pod joins the registry's group: it reads what the pipeline wrote under another
    # uid. OnRootMismatch: where the volume type lets Kubernetes set its group, it does so
    # once, not on every start.
    pod_security = {
        "runAsNonRoot": True,
        "fsGroup": serving.fs_group,
        "fsGroupChangePolicy": "OnRootMismatch",
    }
    meta = {"namespace": serving.namespace, "labels": labels, "annotations": annotations}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name} | meta,
        "spec": {
            "replicas": serving.replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": {
                    "securityContext": pod_security,
                    "containers": [container],
                    "volumes": [volume],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name} | meta,
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [
                {
                    "name": "http",
                    "port": contract.SERVING_PORT,
                    "targetPort": "http",
                    "protocol": "TCP",
                }
            ],
        },
    }
    out = [deployment, service]
    if kserve:
        predictor_container = {k: v for k, v in container.items() if k != "name"} | {
            "name": "kserve-container"
        }
        out.append(
            {
                "apiVersion": f"{KSERVE_GROUP}/v1beta1",
                "kind": "InferenceService",
                "metadata": {"name": f"{name}-isvc"}
                | meta
                | {
                    "annotations": annotations
                    | {"serving.kserve.io/deploymentMode": "RawDeployment"}
                },
                "spec": {
                    "predictor": {
                        "minReplicas": serving.replicas,
                        "securityContext": pod_security,
                        "containers": [predictor_container],
                        "volumes": [volume],
                    }
                },
            }
        )
    return out


# ------------------------------------------------------------------------------ apply


def api_client(host: str = "") -> Any:
    """A client for this cluster: in-cluster config inside a pod, else the kubeconfig.

    ``host`` (e.g. http://127.0.0.1:PORT) talks to that server without credentials (tests).
    """
    from kubernetes import client, config

    if host:
        configuration = client.Configuration()
        configuration.host = host
        return client.ApiClient(configuration)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, FileNotFoundError) as exc:
            raise ConfigError(
                "Kubernetes: no in-cluster service account and no kubeconfig; run inside the "
                "cluster or point KUBECONFIG at it (make kind-up writes one)"
            ) from exc
    return client.ApiClient()


def kserve_installed(api: Any) -> bool:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        groups = client.ApisApi(api).get_api_versions().groups or []
    except ApiException as exc:
        log.warning("API discovery failed (HTTP %s); not creating an InferenceService", exc.status)
        return False
    return any(g.name == KSERVE_GROUP for g in groups)


def apply(objects: list[dict[str, Any]], api: Any) -> list[str]:
    """Server-side apply each object; returns ``kind/namespace/name`` for each."""
    from kubernetes.client.exceptions import ApiException

    applied = []
    for obj in objects:
        prefix, plural = KINDS[obj["kind"]]
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        path = f"{prefix}/namespaces/{ns}/{plural}/{name}"
        try:
            api.call_api(
                path,
                "PATCH",
                query_params=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                header_params={
                    "Content-Type": "application/apply-patch+yaml",
                    "Accept": "application/json",
                },
                body=obj,
                response_type="object",
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
            )
        except ApiException as exc:
            hint = (
                "grant the pipeline's service account the sigdeploy-deployer Role "
                "(deploy/kind/rbac.yaml)"
                if exc.status == 403
                else "check the manifest and the cluster"
            )
            raise RegistryError(
                f"Kubernetes: applying {obj['kind']} {ns}/{name} failed "
                f"(HTTP {exc.status} {exc.reason}); {hint}"
            ) from exc
        applied.append(f"{obj['kind']}/{ns}/{name}")
        log.info("applied %s %s/%s", obj["kind"], ns, name)
    return applied


def serving_for(config: DeployConfig, serving: KubeServing | None = None) -> KubeServing:
    """``serving`` (default: the defaults) with the image and replica count of ``config``;
    a ConfigError when they cannot work, so a deploy can check before it registers."""
    return dataclasses.replace(
        serving or KubeServing(), image=config.serving_image, replicas=config.min_replicas
    )


def serve(
    model_name: str,
    version: str,
    bundle_path: str | Path,
    config: DeployConfig,
    decision: dict[str, Any] | None = None,
    serving: KubeServing | None = None,
    api: Any = None,
) -> dict[str, Any]:
    """Serve ``version`` of ``model_name``, registered at ``bundle_path`` on the shared volume;
    returns ``{"applied": [kind/namespace/name, ...]}``.

    The serving image and replica count come from ``config``; ``serving`` holds the
    cluster-side settings (namespace, claim, requests); ``decision`` is shown on the objects.
    """
    serving = serving_for(config, serving)
    api = api or api_client()
    kserve = serving.kserve == "on" or (serving.kserve == "auto" and kserve_installed(api))
    objects = manifests(model_name, version, bundle_path, serving, kserve=kserve, decision=decision)
    return {"applied": apply(objects, api)}
