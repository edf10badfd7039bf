"""Descriptions of the pipeline's parameters, from one place: each config field's comment.

KFP turns a function's Google-style ``Args:`` / ``Returns:`` docstring into the descriptions
the Vertex console shows beside each parameter and artifact. ``documented`` completes a
component's or pipeline's ``Args:`` with the comment of the config field behind each
parameter (components/core/settings.py), so a parameter is described where it is defined;
the docstring itself describes only what no config holds (artifacts, outputs).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
SECTION = re.compile(r"^(Args|Returns):\s*$", re.M)


def _sections(doc: str) -> tuple[str, dict[str, str], str]:
    """(summary, {arg: text}, the Returns section's body) of a Google-style docstring."""
    parts = SECTION.split(doc)
    summary, sections = parts[0].rstrip(), dict(zip(parts[1::2], parts[2::2], strict=True))
    args: dict[str, str] = {}
    name = ""
    for line in sections.get("Args", "").splitlines():
        if m := re.match(r"^ {4}(\w+): (.*)$", line):
            name = m.group(1)
            args[name] = m.group(2).strip()
        elif line.strip() and name:
            args[name] += " " + line.strip()
    return summary, args, sections.get("Returns", "").strip("\n")


def _is_output(annotation: Any) -> bool:
    from kfp.dsl.types import type_annotations

    return bool(type_annotations.is_artifact_wrapped_in_Output(annotation))


def documented(func: F) -> F:
    """Write ``func``'s ``Args:`` section: the docstring's own entries, else the config field's
    comment. Place it below ``@dsl.component`` / ``@dsl.pipeline`` (KFP reads the docstring
    when it decorates). A parameter with neither is a TypeError at import."""
    from components.core.settings import parameters

    table = parameters()
    summary, given, returns = _sections(inspect.getdoc(func) or "")
    lines = []
    for name, param in inspect.signature(func).parameters.items():
        if _is_output(param.annotation):
            continue  # described under Returns, as KFP reads outputs
        text = given.get(name) or (table[name].help if name in table else "")
        if not text:
            raise TypeError(f"{func.__name__}: parameter {name} has no description")
        lines.append(f"    {name}: {text}")
    # Args before Returns: KFP reads the outputs' descriptions from the last section.
    func.__doc__ = f"{summary}\n\nArgs:\n" + "\n".join(lines) + "\n"
    if returns:
        func.__doc__ += f"\nReturns:\n{returns}\n"
    return func
