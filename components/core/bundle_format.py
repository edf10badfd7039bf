"""The model bundle's file names and format tags: one place, importable without torch or
pandas (the serving image has neither)."""

from __future__ import annotations

import os
from pathlib import Path

BUNDLE_JSON = "bundle.json"  # schema, classes, model config, training facts
PREPROCESSOR_JSON = "preprocessor.json"  # fitted preprocessing parameters, plain JSON
WEIGHTS = "model.safetensors"  # network weights; loading runs no code
FORMAT = "sigdeploy-bundle/v1"  # bundle.json "format"
PREPROCESSOR_KIND = "column-transformer/v1"  # preprocessor.json "kind"
FILES = (BUNDLE_JSON, PREPROCESSOR_JSON, WEIGHTS)  # what a complete bundle directory holds
# The sorted uint64 keys of the rows a model trained and validated on (numpy .npy, loaded
# without pickle). Not in FILES: bundles written before sigdeploy kept it still load and serve.
SPLIT_KEYS = "split_keys.npy"


def missing_files(root: str | os.PathLike[str]) -> list[str]:
    """The bundle files absent from directory ``root``; empty when the bundle is complete."""
    return [name for name in FILES if not (Path(root) / name).is_file()]
