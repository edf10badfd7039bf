"""deploy: register the bundle and serve it (runs only inside dsl.If).

``platform`` is fixed per compile target: local (the local registry; `sigdeploy serve`),
vertex (Model Registry version + endpoint), kind (shared registry + Deployment/Service).
"""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model

from components.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy(
    model: Input[Model],
    decision: Input[Artifact],
    registry: str,
    model_name: str,
    platform: str = "local",
    serving_image: str = "",
    endpoint_name: str = "",
    machine_type: str = "n1-standard-2",
    min_replicas: int = 1,
    max_replicas: int = 1,
    canary_percent: int = 100,
) -> str:
    from components.core import steps

    result = steps.deploy(
        model.path,
        decision.path,
        registry,
        model_name,
        platform,
        serving_image,
        endpoint_name,
        machine_type,
        min_replicas,
        max_replicas,
        canary_percent,
    )
    return result["uri"]
