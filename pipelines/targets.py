"""Compile targets: where the pipeline runs decides images, accelerators and caching.

The one place for accelerator and machine settings. Values are fixed at compile time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from components import images
from components.core.errors import ConfigError
from components.core.platforms import kube

TARGETS = ("local", "vertex", "kind")
VERTEX_DEFAULT_ACCELERATOR = "NVIDIA_TESLA_T4"
KIND_GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True)
class Target:
    name: str  # local | vertex | kind
    image: str  # component image for every task
    accelerator_type: str = ""  # Vertex accelerator name, or the k8s resource on kind
    accelerator_count: int = 0  # GPUs for the train task; 0 = CPU
    cpu_limit: str = ""  # train task CPU limit, e.g. "8"
    memory_limit: str = ""  # train task memory limit, e.g. "32G"
    image_pull_policy: str = ""  # kind: IfNotPresent for images loaded with `kind load`
    shared_pvc: str = ""  # kind: claim every task mounts (the registry lives on it)
    shared_mount: str = ""  # kind: where tasks see that claim
    # The registry parameter's compiled default. Empty on Vertex: a run started without one
    # (from the console, say) must fail at evaluate rather than register into a container's
    # throw-away disk; `sigdeploy submit vertex` fills in Model Registry.
    default_registry: str = "registry"

    def configure_train(self, task: Any) -> None:
        if self.accelerator_count > 0 and self.accelerator_type:
            task.set_accelerator_type(self.accelerator_type)
            task.set_accelerator_limit(self.accelerator_count)
        if self.cpu_limit:
            task.set_cpu_limit(self.cpu_limit)
        if self.memory_limit:
            task.set_memory_limit(self.memory_limit)

    def configure_task(self, task: Any) -> None:
        """Settings every task gets on this target."""
        if self.image_pull_policy:
            from kfp import kubernetes

            kubernetes.set_image_pull_policy(task, self.image_pull_policy)
        if self.shared_pvc:
            from kfp import kubernetes

            kubernetes.mount_pvc(task, pvc_name=self.shared_pvc, mount_path=self.shared_mount)


def get_target(
    name: str,
    *,
    image: str | None = None,
    accelerator_type: str | None = None,
    accelerator_count: int | None = None,
    gpu: bool = False,
    cpu_limit: str = "",
    memory_limit: str = "",
) -> Target:
    if name not in TARGETS:
        raise ConfigError(f"target {name!r}: use one of {', '.join(TARGETS)}")
    if name == "local":
        target = Target("local", images.COMPONENT_IMAGE)
    elif name == "vertex":
        target = Target(
            "vertex",
            images.COMPONENT_IMAGE,
            VERTEX_DEFAULT_ACCELERATOR,
            1,
            cpu_limit="8",
            memory_limit="30G",
            default_registry="",
        )
    else:
        target = Target(
            "kind",
            images.COMPONENT_IMAGE,
            image_pull_policy="IfNotPresent",
            shared_pvc=kube.SHARED_PVC,
            shared_mount=kube.SHARED_MOUNT,
            default_registry=kube.REGISTRY_DIR,
        )
        if gpu:
            target = replace(target, accelerator_type=KIND_GPU_RESOURCE, accelerator_count=1)
    overrides: dict[str, Any] = {}
    if image:
        overrides["image"] = image
    if accelerator_type is not None:
        overrides["accelerator_type"] = accelerator_type
    if accelerator_count is not None:
        if accelerator_count < 0:
            raise ConfigError(f"accelerator count {accelerator_count}: must be >= 0")
        overrides["accelerator_count"] = accelerator_count
    if cpu_limit:
        overrides["cpu_limit"] = cpu_limit
    if memory_limit:
        overrides["memory_limit"] = memory_limit
    return replace(target, **overrides)
