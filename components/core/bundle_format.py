"""The model bundle's file names, format tags and integrity rules: one place, importable
without torch or pandas (the serving image has neither).

A bundle written by this sigdeploy ends with ``manifest.json``: the sha256 of every other
file in the directory, written last, so a bundle whose bytes changed after training (a
flipped bit, an edited label list or preprocessor) is told apart from the one training
wrote. ``consistency_problem`` catches what a manifest cannot: a bundle whose parts
disagree or hold impossible values, even with a manifest regenerated over them.

This module sits below ``errors`` in the layers (it imports nothing of the project): its
checks raise ``BundleProblem`` (a ValueError naming the file and what is wrong) and the
loaders (``components.core.model.mlp_numpy``) turn that into a one-line RegistryError.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

BUNDLE_JSON = "bundle.json"  # schema, classes, model config, training facts
PREPROCESSOR_JSON = "preprocessor.json"  # fitted preprocessing parameters, plain JSON
WEIGHTS = "model.safetensors"  # network weights; loading runs no code
FORMAT = "sigdeploy-bundle/v1"  # bundle.json "format"
PREPROCESSOR_KIND = "column-transformer/v1"  # preprocessor.json "kind"
FILES = (BUNDLE_JSON, PREPROCESSOR_JSON, WEIGHTS)  # what a complete bundle directory holds
# The sorted uint64 keys of the rows a model trained and validated on (numpy .npy, loaded
# without pickle). Not in FILES: bundles written before sigdeploy kept it still load and serve.
SPLIT_KEYS = "split_keys.npy"
# {"format": MANIFEST_FORMAT, "sha256": {file name: hex digest}} over every other file,
# written last. Not in FILES: bundles written before sigdeploy kept it still load, unverified
# (logged, and /health says so). bundle.json "manifest" names it in every bundle written
# with one, so that deleting it does not turn a new bundle into an unverified old one.
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "sigdeploy-manifest/v1"
MANIFEST_KEY = "manifest"  # bundle.json key naming the manifest file
READ = (*FILES, SPLIT_KEYS)  # the files a loader reads: each must be covered by the manifest
VERIFIED, UNVERIFIED = "verified", "unverified"  # what check_manifest found
_CHUNK = 1 << 20


class BundleProblem(ValueError):
    """What is wrong with a bundle's files, as a clause for the caller's one-line error."""


def missing_files(root: str | os.PathLike[str]) -> list[str]:
    """The bundle files absent from directory ``root``; empty when the bundle is complete."""
    return [name for name in FILES if not (Path(root) / name).is_file()]


def sha256_of(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(root: str | os.PathLike[str]) -> dict[str, str]:
    """Write ``MANIFEST`` over every other file of directory ``root`` (temp file, then
    os.replace); returns the digests. The last step of writing a bundle."""
    folder = Path(root)
    digests = {
        p.name: sha256_of(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    }
    text = json.dumps({"format": MANIFEST_FORMAT, "sha256": digests}, indent=2, sort_keys=True)
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)
    return digests


def check_manifest(root: str | os.PathLike[str]) -> str:
    """VERIFIED when every file a loader reads is in ``MANIFEST`` and every file there
    matches its sha256; UNVERIFIED (logged) for a bundle written before sigdeploy kept one.
    BundleProblem otherwise.

    Files that no loader reads and the manifest does not list (a registry's own marker, a
    copy tool's metadata) are left alone: they cannot change what the bundle predicts.
    """
    folder = Path(root)
    path = folder / MANIFEST
    if not path.is_file():
        if _declares_manifest(folder):
            raise BundleProblem(
                f"{MANIFEST} is missing, though {BUNDLE_JSON} says the bundle was written with "
                "one (files were lost or removed after training)"
            )
        log.warning(
            "model bundle '%s' has no %s (written before sigdeploy kept one): its files "
            "cannot be checked against what training wrote; retrain it to get one",
            folder,
            MANIFEST,
        )
        return UNVERIFIED
    digests = _read_manifest(path)
    for name, expected in digests.items():
        file = folder / name
        if not file.is_file():
            raise BundleProblem(f"{name} is listed in {MANIFEST} but missing")
        if sha256_of(file) != expected:
            raise BundleProblem(
                f"{name} does not match its sha256 in {MANIFEST} (it changed after training)"
            )
    unlisted = [n for n in READ if n not in digests and (folder / n).exists()]
    if unlisted:
        raise BundleProblem(f"{unlisted[0]} is not in {MANIFEST} (it was added after training)")
    return VERIFIED


def _declares_manifest(folder: Path) -> bool:
    try:
        meta = json.loads((folder / BUNDLE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # the loader reports an unreadable bundle.json itself
    return isinstance(meta, dict) and MANIFEST_KEY in meta


def _read_manifest(path: Path) -> dict[str, str]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleProblem(f"{MANIFEST} is unreadable ({exc})") from exc
    digests = obj.get("sha256") if isinstance(obj, dict) else None
    if (
        not isinstance(obj, dict)
        or obj.get("format") != MANIFEST_FORMAT
        or not isinstance(digests, dict)
        or not all(
            isinstance(n, str) and isinstance(d, str) and n == Path(n).name and n not in ("", ".")
            for n, d in digests.items()
        )
    ):
        raise BundleProblem(f"{MANIFEST} is not a {MANIFEST_FORMAT} manifest")
    return digests


def consistency_problem(meta: Any, pre: Any) -> str | None:
    """Why bundle.json ``meta`` and preprocessor.json ``pre`` cannot describe one working
    model (a clause), or None: class labels that repeat or do not match the network's
    outputs, features that differ between the two files, preprocessing parameters that are
    missing, not finite, or (scales) not positive."""
    if not isinstance(meta, dict) or not isinstance(pre, dict):
        return f"{BUNDLE_JSON} or {PREPROCESSOR_JSON} is not a JSON object"
    config = meta.get("model_config")
    classes = meta.get("classes")
    schema = meta.get("schema")
    regression = isinstance(config, dict) and config.get("task") == "regression"
    if regression and isinstance(config, dict):
        if classes != []:
            return f"{BUNDLE_JSON} lists classes for a regression model"
        if config.get("n_classes") != 1:
            return f"{BUNDLE_JSON}: a regression network has one output"
        for key in ("target_mean", "target_scale"):
            if not _finite(config.get(key)):
                return f"{BUNDLE_JSON} model_config {key} is {config.get(key)!r}, not finite"
        if config["target_scale"] <= 0:
            return f"{BUNDLE_JSON} model_config target_scale is not positive"
    elif not isinstance(classes, list) or not classes:
        return f"{BUNDLE_JSON} has no list of classes"
    seen: set[str] = set()
    for name in map(str, classes):  # served as JSON keys: 1 and "1" are the same class
        if name in seen:
            return f"{BUNDLE_JSON} lists class {name!r} twice"
        seen.add(name)
    if not isinstance(config, dict) or not all(
        type(config.get(k)) is int for k in ("in_features", "n_classes")
    ):
        return f"{BUNDLE_JSON} has no valid model_config"
    n_classes, in_features = config["n_classes"], config["in_features"]
    if not regression and n_classes != len(classes):
        return f"{BUNDLE_JSON} lists {len(classes)} classes but the network has {n_classes} outputs"
    features = schema.get("features") if isinstance(schema, dict) else None
    numeric, categorical = pre.get("numeric"), pre.get("categorical")
    if not (
        isinstance(features, list) and isinstance(numeric, list) and isinstance(categorical, list)
    ):
        return f"{BUNDLE_JSON} schema or {PREPROCESSOR_JSON} has no list of features"
    both = [*numeric, *categorical]
    if len(set(map(str, features))) != len(features) or len(set(map(str, both))) != len(both):
        return "a feature is listed twice"
    if set(map(str, features)) != set(map(str, both)):
        only = sorted(set(map(str, features)) ^ set(map(str, both)))
        return (
            f"the features of {BUNDLE_JSON} and {PREPROCESSOR_JSON} differ "
            f"({', '.join(only[:3])}{' ...' if len(only) > 3 else ''})"
        )
    label = schema.get("label") if isinstance(schema, dict) else None
    if label is not None and str(label) in set(map(str, features)):
        return f"the label column {label!r} is also a feature"
    for key in ("medians", "means", "scales"):
        values = pre.get(key)
        if not isinstance(values, list) or len(values) != len(numeric):
            return f"{PREPROCESSOR_JSON} {key} does not have one value per numeric feature"
        bad = next((i for i, v in enumerate(values) if not _finite(v)), None)
        if bad is not None:
            return f"{PREPROCESSOR_JSON} {key} of {numeric[bad]!r} is {values[bad]!r}, not finite"
        if key != "scales":
            continue
        bad = next((i for i, v in enumerate(values) if v <= 0), None)
        if bad is not None:
            return f"{PREPROCESSOR_JSON} scale of {numeric[bad]!r} is {values[bad]!r}, not positive"
    categories, fills = pre.get("categories"), pre.get("fill_values")
    if (
        not isinstance(categories, list)
        or not isinstance(fills, list)
        or len(categories) != len(categorical)
        or len(fills) != len(categorical)
        or not all(isinstance(c, list) for c in categories)
    ):
        return f"{PREPROCESSOR_JSON} categories do not match its categorical features"
    for column, cats in zip(categorical, categories, strict=True):
        if len(set(map(str, cats))) != len(cats):
            return f"{PREPROCESSOR_JSON} lists a category of {column!r} twice"
    width = len(numeric) + sum(len(c) for c in categories)
    if in_features != width:
        return (
            f"{PREPROCESSOR_JSON} makes {width} network inputs but the network takes {in_features}"
        )
    return None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
