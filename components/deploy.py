"""deploy: register the bundle and serve it (runs only inside dsl.If).

``platform`` is fixed per compile target: local (the local registry; `sigdeploy serve`),
vertex (Model Registry version + endpoint), kind (shared registry + Deployment/Service).
"""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model

from components.describe import documented
from components.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
@documented
def deploy(
    model: Input[Model],
    decision: Input[Artifact],
    registry: str,
    model_name: str,
    serving_image: str,
    endpoint_name: str,
    machine_type: str,
    min_replicas: int,
    max_replicas: int,
    canary_percent: int,
    platform: str = "local",
) -> str:
    """Register the challenger as the champion and serve it.

    Args:
        model: the model bundle to register.
        decision: evaluate's decision JSON; registering refuses one that says not to deploy.
        platform: where to serve, fixed by the compile target: local | vertex | kind.

    Returns:
        Output: the URI of the registered champion version.
    """
    params = dict(locals())  # first line: only the task's inputs are bound yet
    from components.core import settings, steps
    from components.core.platforms.deploy_config import DeployConfig
    from components.core.progress import task_logging
    from components.core.registry import RegistryConfig

    task_logging()
    result = steps.deploy(
        model.path,
        decision.path,
        settings.build(RegistryConfig, params),
        settings.build(DeployConfig, params),
        platform,
    )
    return result["uri"]
