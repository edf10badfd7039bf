"""Compiling the pipeline, reading the compiled spec back, and checking parameters against it.

Used by compile.py, ``sigdeploy run`` and the submit commands, so that a bad parameter name or
type is refused before any runner starts or any request is sent.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from components.core.errors import ConfigError
from components.core.io import atomic_path
from components.core.registry import DEFAULT_MODEL_NAME

PARAM_TYPES = {
    "STRING": str,
    "NUMBER_INTEGER": int,
    "NUMBER_DOUBLE": float,
    "BOOLEAN": bool,
}
IMAGE_ENV = "SIGDEPLOY_COMPONENT_IMAGE"


def compile_pipeline(
    target_name: str = "local",
    output: str | os.PathLike[str] = "pipeline.json",
    image: str | None = None,
    **target_options: Any,
) -> Path:
    """Compile for one target and write the IR atomically; JSON unless the path says YAML.

    The image comes from ``image``, else the SIGDEPLOY_COMPONENT_IMAGE environment variable,
    else the default in components/images.py. Output bytes are stable: two compiles with the
    same inputs give identical files.
    """
    from kfp import compiler

    from pipelines.targets import get_target
    from pipelines.training import build_pipeline

    target = get_target(
        target_name, image=image or os.environ.get(IMAGE_ENV) or None, **target_options
    )
    out = Path(output)
    suffix = out.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ConfigError(f"output '{out}': use a .json or .yaml file name")
    if target.image_pull_policy and suffix == ".json":
        raise ConfigError(
            f"target '{target_name}' adds Kubernetes settings, which KFP writes only "
            "as YAML; use an output ending in .yaml"
        )
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / f"pipeline{suffix}"
        compiler.Compiler().compile(build_pipeline(target), str(raw))
        text = raw.read_text()
    if suffix == ".json":
        spec = json.loads(text)
        _set_images(spec, target.image)
        text = json.dumps(spec, indent=2, sort_keys=True) + "\n"
    else:
        import yaml

        docs = list(yaml.safe_load_all(text))
        _set_images(docs[0], target.image)
        text = yaml.safe_dump_all(docs, sort_keys=True)
    with atomic_path(out) as tmp_out:
        tmp_out.write_text(text)
    return out


def _set_images(spec: dict[str, Any], image: str) -> None:
    """Every executor runs the target's component image.

    The components are declared with the default image (components/images.py); the target,
    a compile flag or SIGDEPLOY_COMPONENT_IMAGE picks the real one here, at compile time.
    """
    for executor in spec.get("deploymentSpec", {}).get("executors", {}).values():
        if "container" in executor:
            executor["container"]["image"] = image


def load_spec(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The pipeline spec as a dict (JSON, or the first YAML document)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"pipeline '{p}': no such file; run `python compile.py` first")
    text = p.read_text()
    if p.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"pipeline '{p}': not valid JSON ({exc.msg}); recompile it") from exc
    import yaml

    docs = list(yaml.safe_load_all(text))
    if not docs or not isinstance(docs[0], dict):
        raise ConfigError(f"pipeline '{p}': empty or not a pipeline spec; recompile it")
    return docs[0]


def parameter_types(spec: dict[str, Any]) -> dict[str, str]:
    params = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return {name: p["parameterType"] for name, p in params.items()}


def check_parameters(spec: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The values coerced to the compiled parameter types, after every check that needs no
    data: unknown names (with a did-you-mean), types, and every config a run builds from
    them (split, trainer, gate, registry, serving). All problems are reported at once."""
    from components.core.settings import Settings, coerce, raise_problems, unknown_names

    types = parameter_types(spec)
    problems = unknown_names(values, types)
    out = {}
    for name, value in values.items():
        if name in types:
            try:
                out[name] = coerce(name, value, PARAM_TYPES.get(types[name], str))
            except ConfigError as exc:
                problems.append(str(exc))
    Settings.collect(settings_params(parameter_defaults(spec) | out), problems, strict=False)
    raise_problems(problems)
    return out


def parameter_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """The compiled defaults, as their declared types: the IR stores 28 as 28.0."""
    from components.core.settings import coerce

    params = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return {
        name: coerce(name, p["defaultValue"], PARAM_TYPES.get(p["parameterType"], str))
        for name, p in params.items()
        if "defaultValue" in p
    }


def settings_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters the settings layer knows (a spec compiled by another version of
    sigdeploy may declare others; their tasks check them)."""
    from components.core.settings import parameters

    known = parameters()
    return {k: v for k, v in params.items() if k in known}


def run_settings(spec: dict[str, Any], params: dict[str, Any]) -> Any:
    """The Settings a run of ``spec`` with ``params`` (already checked) would use."""
    from components.core.settings import Settings

    return Settings.from_params(settings_params(parameter_defaults(spec) | params), strict=False)


def add_param_option(parser: Any, example: str) -> None:
    """The repeatable ``--param NAME=VALUE`` option every run and submit command takes."""
    parser.add_argument(
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help=f"pipeline parameter, repeatable (e.g. --param {example})",
    )


def add_registry_options(parser: Any) -> None:
    """``--registry`` and ``--model-name``, as the commands that read a registry take them."""
    parser.add_argument(
        "--registry",
        default="registry",
        help="a local registry directory (default: registry) or "
        "vertex://PROJECT/REGION?artifacts=gs://BUCKET/PREFIX",
    )
    parser.add_argument(
        "--model-name",
        default=DEFAULT_MODEL_NAME,
        help=f"model name in the registry (default: {DEFAULT_MODEL_NAME})",
    )


def parse_pairs(pairs: list[str] | None, what: str = "--param") -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} {pair!r}: write NAME=VALUE")
        out[key.strip()] = value
    return out
