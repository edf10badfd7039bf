"""What every registry shares: the champion and version records, the interface, where a
registry is (a pipeline parameter config) and which model names are allowed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from components.core.errors import RegistryError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
DEFAULT_MODEL_NAME = "digits-mlp"  # the embedded data's model


@dataclass(frozen=True)
class Champion:
    version: str  # registry version id
    path: Path  # a local directory holding the bundle
    uri: str  # where the registry keeps it (a path, or a Vertex resource name)


@dataclass(frozen=True)
class VersionInfo:
    """One registered version, as `sigdeploy registry show` lists it."""

    version: str  # registry version id
    created: float | None  # when it was registered, seconds since the epoch
    champion: bool  # whether it is the champion now
    uri: str  # where the registry keeps it
    decision: dict[str, Any]  # the gate's decision that deployed it ({} when unknown)


class Registry(Protocol):
    def champion(self) -> Champion | None: ...

    def register(self, bundle_dir: str | Path, decision: dict[str, Any]) -> Champion: ...

    def record(self, decision: dict[str, Any]) -> None: ...

    def version_infos(self) -> list[VersionInfo]: ...

    def history(self) -> list[dict[str, Any]]: ...

    def rollback(self, version: str | None = None, reason: str = "") -> Champion: ...

    def version_bundle(self, version: str) -> Champion: ...


@dataclass(frozen=True)
class RegistryConfig:
    """Where the champion lives; fields are pipeline parameters."""

    registry: str = "registry"  # a local directory, or vertex://PROJECT/REGION?artifacts=gs://...
    model_name: str = DEFAULT_MODEL_NAME  # the model's name in the registry

    def __post_init__(self) -> None:
        check_model_name(self.model_name)


def check_model_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise RegistryError(
            f"model name {name!r}: use 1-63 letters, digits, '-', '_' or '.', starting with a "
            "letter or digit"
        )
    return name
