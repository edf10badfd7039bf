"""deploy: register the bundle and move the champion pointer (runs only inside dsl.If)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model

from components.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy(
    model: Input[Model],
    decision: Input[Artifact],
    registry: str,
    model_name: str,
) -> str:
    from components.core import steps

    result = steps.deploy(model.path, decision.path, registry, model_name)
    return result["uri"]
