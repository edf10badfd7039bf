"""The settings layer: pipeline parameters in, every config of a run out (no kfp import).

Every pipeline parameter is a field of exactly one config dataclass in ``CONFIGS``, with the
same name and default; the pipeline declares it with the field's type (a list field is a
comma-separated string, e.g. ``hidden_sizes="256,128"``). From a mapping of parameters,
``Settings.from_params`` coerces each value by its declared type (a compiled spec stores
integer defaults as floats: 28.0 becomes 28, 28.5 is refused), builds every config and
reports every problem in one error. It is the one pre-flight of ``sigdeploy run``,
``submit`` and ``schedule``; the components build their configs through ``build``.

Adding a parameter takes three edits: the field (with its comment) in its config, the
component that reads it, and the pipeline signature; tests/pipelines/test_compile.py checks
that the three agree for every field of every config.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any, TypeVar

from components.core.data.features import FeatureConfig
from components.core.data.sources import SourceConfig
from components.core.data.split import SplitConfig
from components.core.errors import ConfigError, SigdeployError, did_you_mean
from components.core.evaluation.gate import GatePolicy
from components.core.platforms.deploy_config import DeployConfig
from components.core.registry.base import RegistryConfig
from components.core.training.config import TrainConfig

C = TypeVar("C")

# In the order a run uses them; a parameter name appears in exactly one.
CONFIGS: tuple[type, ...] = (
    SourceConfig,
    FeatureConfig,
    SplitConfig,
    TrainConfig,
    GatePolicy,
    RegistryConfig,
    DeployConfig,
)
SCALARS = {"int": int, "float": float, "bool": bool, "str": str}
TRUE, FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class Parameter:
    """One pipeline parameter, as a config field declares it."""

    name: str
    kind: type  # what the pipeline declares: int, float, bool or str
    field_type: str  # the field's annotation, e.g. "tuple[int, ...]"
    default: Any  # in parameter form: a list field's default is its comma-separated text
    config: type  # the config dataclass that owns the field
    help: str  # the field's comment


# ------------------------------------------------------------------ list fields as text


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in _split(text))


def _parse_strs(text: str) -> tuple[str, ...]:
    return tuple(_split(text))


def _parse_pairs(text: str) -> tuple[tuple[str, float], ...]:
    out = []
    for item in _split(text):
        name, _, value = item.partition(":")
        out.append((name.strip(), float(value) if value.strip() else 0.0))
    return tuple(out)


def _format(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(
            ":".join(_fmt_scalar(v) for v in item) if isinstance(item, tuple) else str(item)
            for item in value
        )
    return value


def _fmt_scalar(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


# annotation -> (parser of the text form, what to write, an example)
LIST_FIELDS: dict[str, tuple[Any, str, str]] = {
    "tuple[int, ...]": (_parse_ints, "whole numbers separated by commas", "256,128"),
    "tuple[str, ...]": (_parse_strs, "names separated by commas", "accuracy,auc"),
    "tuple[tuple[str, float], ...]": (
        _parse_pairs,
        "name:number pairs separated by commas",
        "log_loss:0.05,accuracy:0.01",
    ),
}


# ------------------------------------------------------------------ the parameter table


def _field_comments(cls: type) -> dict[str, str]:
    """The comment after each field in the class source, with the comment lines right below
    it that continue it: the field's documentation."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):  # no source (a frozen interpreter): help is optional
        return {}
    out: dict[str, str] = {}
    current = ""
    for line in source.splitlines():
        if m := re.match(r"^\s+(\w+): [^=\n]+=[^#\n]*#\s*(.+)$", line):
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current and (m := re.match(r"^\s+#\s*(.+)$", line)):
            out[current] += " " + m.group(1).strip()
        else:
            current = ""
    return out


@functools.cache
def parameters() -> dict[str, Parameter]:
    """Every pipeline parameter by name, from the config dataclasses."""
    out: dict[str, Parameter] = {}
    for cls in CONFIGS:
        hints = typing.get_type_hints(cls)
        annotations = {f.name: str(f.type) for f in fields(cls)}
        comments = _field_comments(cls)
        for f in fields(cls):
            if f.name in out:
                raise TypeError(f"parameter {f.name} is declared by two configs")
            annotation = annotations[f.name]
            if annotation in LIST_FIELDS:
                kind: type = str
            elif hints[f.name] in (int, float, bool, str):
                kind = hints[f.name]
            else:
                raise TypeError(f"{cls.__name__}.{f.name}: no parameter form for {annotation}")
            default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc,operator]
            out[f.name] = Parameter(
                f.name, kind, annotation, _format(default), cls, comments.get(f.name, "")
            )
    return out


def defaults() -> dict[str, Any]:
    """Every parameter's default, in parameter form (what the pipeline signature declares)."""
    return {name: p.default for name, p in parameters().items()}


# --------------------------------------------------------------------------- coercion


def coerce(name: str, value: Any, kind: type) -> Any:
    """``value`` as the declared scalar type; never a float where an int is declared."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise ConfigError(f"parameter {name}={value!r}: expected true or false")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"parameter {name}={value!r}: expected a whole number")
        if isinstance(value, int):
            return value
        try:
            number = float(str(value).strip())
        except ValueError:
            number = float("nan")
        if number != number or not number.is_integer():  # NaN, or 28.5
            raise ConfigError(f"parameter {name}={value!r}: expected a whole number")
        return int(number)
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"parameter {name}={value!r}: expected a number")
        try:
            return float(str(value).strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"parameter {name}={value!r}: expected a number") from None
    return "" if value is None else str(value)


def unknown_names(names: Mapping[str, Any], known: Mapping[str, Any]) -> list[str]:
    """A problem for each name that is not a pipeline parameter, with a did-you-mean."""
    return [
        f"parameter '{name}' is not a pipeline parameter{did_you_mean(name, known)}; "
        "`sigdeploy run --help` lists them all"
        for name in names
        if name not in known
    ]


def _field_value(p: Parameter, value: Any) -> Any:
    """A parameter value as its config field holds it (list fields parsed from text)."""
    value = coerce(p.name, value, p.kind)
    if p.field_type in LIST_FIELDS:
        parse, what, example = LIST_FIELDS[p.field_type]
        try:
            return parse(value)
        except ValueError:
            raise ConfigError(
                f"parameter {p.name}={value!r}: expected {what}, e.g. {example}"
            ) from None
    return value


def _build(cls: type[C], params: Mapping[str, Any], problems: list[str]) -> C:
    """One config from the parameters it has; problems are appended, not raised.

    A value that cannot be coerced is reported and replaced by the default, so that the
    config's own checks still run on the rest.
    """
    table = parameters()
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in params:
            continue
        try:
            values[f.name] = _field_value(table[f.name], params[f.name])
        except ConfigError as exc:
            problems.append(str(exc))
    try:
        return cls(**values)
    except SigdeployError as exc:
        problems.append(str(exc))
        return cls()


def raise_problems(problems: list[str]) -> None:
    """One ConfigError for every problem found (one line), or nothing when there are none."""
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError("invalid settings: " + " | ".join(problems))


def build(cls: type[C], params: Mapping[str, Any]) -> C:
    """The config ``cls`` from the parameters among ``params`` that are its fields.

    What a component body calls with its own inputs (``dict(locals())``); names that are not
    fields of ``cls`` are ignored, missing ones take the default.
    """
    problems: list[str] = []
    config = _build(cls, params, problems)
    raise_problems(problems)
    return config


@dataclass(frozen=True)
class Settings:
    """Every config of a run, built from one mapping of pipeline parameters."""

    source: SourceConfig
    features: FeatureConfig
    split: SplitConfig
    train: TrainConfig
    gate: GatePolicy
    registry: RegistryConfig
    deploy: DeployConfig

    @classmethod
    def from_params(cls, params: Mapping[str, Any], *, strict: bool = True) -> Settings:
        """All configs; with ``strict`` a name that is no parameter is a problem too.

        Every problem is reported at once, in one ConfigError.
        """
        problems: list[str] = []
        settings = cls.collect(params, problems, strict=strict)
        raise_problems(problems)
        return settings

    @classmethod
    def collect(
        cls, params: Mapping[str, Any], problems: list[str], *, strict: bool = True
    ) -> Settings:
        """Like ``from_params``, but problems are appended to ``problems`` (the configs that
        had one hold defaults), so that a caller can add its own before raising."""
        if strict:
            problems.extend(unknown_names(params, parameters()))
        return cls(
            **{
                slot: _build(config, params, problems)
                for slot, config in zip(_SLOTS, CONFIGS, strict=True)
            }
        )

    def to_params(self) -> dict[str, Any]:
        """The parameter values these settings were built from (parameter form)."""
        out: dict[str, Any] = {}
        for slot in _SLOTS:
            config = getattr(self, slot)
            for f in fields(config):
                out[f.name] = _format(getattr(config, f.name))
        return out


_SLOTS = tuple(f.name for f in fields(Settings))
