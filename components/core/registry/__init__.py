"""The model registry: which version is the champion, and the history of every decision.

``open_registry`` picks the implementation by URI: a local directory (``local``) or Vertex AI
Model Registry (``vertex``, versions of one parent model with a ``champion`` alias); both
follow ``base.Registry``.
"""

from __future__ import annotations

from components.core.errors import RegistryError
from components.core.registry.base import (
    DEFAULT_MODEL_NAME,
    Champion,
    Registry,
    RegistryConfig,
    VersionInfo,
    check_model_name,
)
from components.core.registry.local import LocalRegistry, model_names

__all__ = [
    "DEFAULT_MODEL_NAME",
    "Champion",
    "LocalRegistry",
    "Registry",
    "RegistryConfig",
    "VersionInfo",
    "check_model_name",
    "model_names",
    "open_registry",
]


def open_registry(
    uri: str, model_name: str, *, existing: bool = False, serving_image: str = ""
) -> Registry:
    """``vertex://PROJECT/REGION`` opens Vertex AI Model Registry; anything else is a directory.

    ``existing``: a local directory must already hold the model (commands that only read or
    roll back; a run creates it when it first deploys). ``serving_image``: the container a
    new Vertex AI version is served with (registering there needs one; a directory has none).
    """
    if not uri:
        raise RegistryError("registry is empty: pass a directory or vertex://PROJECT/REGION")
    if uri.startswith("vertex://"):
        from components.core.registry.vertex import VertexRegistry

        return VertexRegistry.from_uri(uri, model_name, serving_image=serving_image)
    if "://" in uri:
        raise RegistryError(
            f"registry {uri!r}: unsupported scheme; use a directory or vertex://PROJECT/REGION"
        )
    registry = LocalRegistry(uri, model_name)
    if existing and not registry.model_dir.is_dir():
        raise RegistryError(
            f"registry '{uri}': no model '{model_name}' there; check the registry directory and "
            "the model name (a run creates them when it first deploys)"
        )
    return registry
