"""How a deployed champion is served: one config for the Vertex endpoint and the kind pods.

Torch-, Google- and Kubernetes-free, so that the settings layer can check it before a run.
"""

from __future__ import annotations

from dataclasses import dataclass

from components import images
from components.core.errors import ConfigError


@dataclass(frozen=True)
class DeployConfig:
    """Serving of the new champion; fields are pipeline parameters."""

    serving_image: str = images.SERVING_IMAGE  # the image that serves the model (Vertex, kind)
    endpoint_name: str = ""  # Vertex endpoint display name; empty = the model name
    machine_type: str = "n1-standard-2"  # Vertex serving machine per replica
    min_replicas: int = 1  # replicas always up (kind: the serving pods)
    max_replicas: int = 1  # Vertex autoscaling ceiling
    canary_percent: int = 100  # traffic the new version gets; the rest stays on the old one

    def __post_init__(self) -> None:
        problems = []
        if self.min_replicas < 1:
            problems.append(f"min_replicas={self.min_replicas} must be at least 1")
        if self.max_replicas < self.min_replicas:
            problems.append(
                f"max_replicas={self.max_replicas} must be >= min_replicas={self.min_replicas}"
            )
        if not 1 <= self.canary_percent <= 100:
            problems.append(
                f"canary_percent={self.canary_percent} must be 1-100 (100 = all traffic)"
            )
        if not self.machine_type.strip():
            problems.append("machine_type is empty: use e.g. n1-standard-2")
        if problems:
            raise ConfigError("deploy settings: " + "; ".join(problems))
