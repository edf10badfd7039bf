"""What every registry shares: the champion and version records, the interface, where a
registry is (a pipeline parameter config) and which model names are allowed."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from components.core.errors import ChampionMovedError, RegistryError

if TYPE_CHECKING:
    from components.core.registry.ledger import Append, Ledger

# \A and \Z, not ^ and $: "$" also matches before a trailing newline ("model\n").
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")
DEFAULT_MODEL_NAME = "digits-mlp"  # the embedded data's model


class Unchecked(enum.Enum):
    """``register(expected=ANY_CHAMPION)``: promote over whatever the champion is."""

    ANY = "any"


# The default of ``register``'s ``expected``: no compare-and-swap. The deploy step always
# passes the champion version its decision was made against instead.
ANY_CHAMPION = Unchecked.ANY
Expected = str | None | Unchecked  # a champion version, None for "no champion", or ANY_CHAMPION


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

    def register(
        self, bundle_dir: str | Path, decision: dict[str, Any], *, expected: Expected = ...
    ) -> Champion: ...

    def record(self, decision: dict[str, Any]) -> None: ...

    def version_infos(self) -> list[VersionInfo]: ...

    def history(self) -> list[dict[str, Any]]: ...

    def rollback(self, version: str | None = None, reason: str = "") -> Champion: ...

    def version_bundle(self, version: str) -> Champion: ...

    # The ledger (registry/ledger.py): what error control across runs reads and appends.
    def ledger(self) -> Ledger: ...

    def append_ledger(self, make: Append) -> dict[str, Any]: ...


@dataclass(frozen=True)
class RegistryConfig:
    """Where the champion lives; fields are pipeline parameters."""

    registry: str = "registry"  # a local directory, or vertex://PROJECT/REGION?artifacts=gs://...
    model_name: str = DEFAULT_MODEL_NAME  # the model's name in the registry

    def __post_init__(self) -> None:
        check_model_name(self.model_name)


def champion_moved(expected: Expected, current: str | None) -> str | None:
    """Why a promotion made against ``expected`` must not happen now that the champion is
    ``current`` (the history's and the run's words), or None when it still may."""
    if expected is ANY_CHAMPION or expected == current:
        return None
    against = f"version {expected}" if expected is not None else "the baseline"
    now = (
        f"the champion is now version {current}"
        if current is not None
        else "there is no champion now"
    )
    return f"the champion moved since evaluation: the decision was made against {against}, {now}"


def moved_error(
    where: str, reason: str, expected: Expected, current: str | None, done: str = ""
) -> ChampionMovedError:
    """The one-line error of a refused promotion; ``done``: what did happen, if anything."""
    return ChampionMovedError(
        f"{where}: {reason}; {done or 'nothing registered'}, the champion is kept: run the "
        "pipeline again to compare against it",
        reason=reason,
        against=None if expected is ANY_CHAMPION else expected,
        current=current,
    )


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise RegistryError(
            f"model name {name!r}: use 1-63 letters, digits, '-', '_' or '.', starting with a "
            "letter or digit"
        )
    return name
