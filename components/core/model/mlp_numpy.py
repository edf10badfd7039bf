"""The MLP's forward pass in numpy, read straight from a bundle's safetensors weights, and
the checks every reader of a bundle runs first.

Evaluation (``components.core.model.bundle``) and serving (``components.serving.model``) both run
this, so neither needs torch to score a model, and the gate scores the network exactly as
the server's numpy path computes it. The math is the torch module's (``components.core.model.mlp``:
Linear, ReLU, ..., Linear; dropout is the identity when predicting), then a softmax.

Both loaders, and ``register`` before it copies a bundle in, refuse a bundle whose files do
not match its manifest, whose JSON parts disagree, or whose weights are not finite
(``check_files``, ``check_parts``, ``read_layers``; ``verify_bundle`` runs them all): one
line naming the bundle and what is wrong, never a model that answers every request with an
error or a wrong label.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from components.core.bundle_format import (
    BUNDLE_JSON,
    FORMAT,
    PREPROCESSOR_JSON,
    VERIFIED,
    WEIGHTS,
    BundleProblem,
    check_manifest,
    consistency_problem,
    missing_files,
)
from components.core.errors import RegistryError

LAYER_KEY = re.compile(r"^net\.(\d+)\.(weight|bias)$")  # nn.Sequential names in model.MLP

Layers = list[tuple[np.ndarray, np.ndarray]]
REFUSED = (
    "refused: use an intact copy of the bundle or another version "
    "(sigdeploy registry rollback), or retrain"
)


def check_files(root: str | Path) -> bool:
    """The bundle's files against its manifest: True when they match it, False for a bundle
    written before sigdeploy kept one (logged); RegistryError (one line) when a file is
    missing, changed, or added after training."""
    if missing := missing_files(root):
        raise RegistryError(
            f"model bundle '{root}': {missing[0]} is missing; the bundle is incomplete, "
            "register a complete one"
        )
    try:
        return check_manifest(root) == VERIFIED
    except BundleProblem as exc:
        raise RegistryError(f"model bundle '{root}': {exc}; {REFUSED}") from exc


def check_parts(meta: Any, pre: Any, root: str | Path) -> None:
    """RegistryError (one line) when bundle.json ``meta`` and preprocessor.json ``pre``
    cannot describe one working model (``bundle_format.consistency_problem``)."""
    if problem := consistency_problem(meta, pre):
        raise RegistryError(f"model bundle '{root}': {problem}; {REFUSED}")


def verify_bundle(root: str | Path) -> bool:
    """Every check a loader runs, without building the model: the files against the
    manifest, the JSON parts against each other, the weights finite and of the configured
    shapes. True when a manifest verified the files, False for a bundle without one;
    RegistryError (one line) for any failure. What ``register`` runs before copying."""
    verified = check_files(root)
    parts = []
    for name in (BUNDLE_JSON, PREPROCESSOR_JSON):
        try:
            parts.append(json.loads((Path(root) / name).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise RegistryError(
                f"model bundle '{root}': {name} is unreadable ({exc}); {REFUSED}"
            ) from exc
    meta, pre = parts
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise RegistryError(f"model bundle '{root}': format {found!r} is not {FORMAT}; {REFUSED}")
    check_parts(meta, pre, root)
    read_layers(load_weights(root), meta.get("model_config") or {}, str(root))
    return verified


def load_weights(root: str | Path) -> dict[str, np.ndarray]:
    """The bundle's weights as numpy arrays; RegistryError (one line) when unreadable."""
    from safetensors.numpy import load_file

    try:
        return load_file(str(Path(root) / WEIGHTS))
    except Exception as exc:  # noqa: BLE001 - safetensors raises several kinds
        raise RegistryError(
            f"model bundle '{root}': {WEIGHTS} unreadable ({exc}); re-register it"
        ) from exc


def read_layers(weights: dict[str, np.ndarray], config: dict[str, Any], where: str) -> Layers:
    """(weight, bias) per Linear layer in order, checked against the model config and for
    values that are not finite."""
    found: dict[int, dict[str, np.ndarray]] = {}
    for key, value in weights.items():
        match = LAYER_KEY.match(key)
        if not match:
            raise RegistryError(
                f"model bundle '{where}': unexpected weight {key!r} in {WEIGHTS}; "
                "only the MLP of components.core.model.mlp can be scored"
            )
        found.setdefault(int(match.group(1)), {})[match.group(2)] = value
    layers = []
    for index in sorted(found):
        pair = found[index]
        if set(pair) != {"weight", "bias"}:
            raise RegistryError(f"model bundle '{where}': layer {index} lacks weight or bias")
        weight, bias = (np.asarray(pair[k], np.float32) for k in ("weight", "bias"))
        for kind, array in (("weight", weight), ("bias", bias)):
            # NaN or inf (a flipped exponent bit, a diverged run) would answer every
            # request with an overflow error that blames the input
            if not (finite := np.isfinite(array)).all():
                raise RegistryError(
                    f"model bundle '{where}': {WEIGHTS} holds {int((~finite).sum())} NaN or "
                    f"infinite value(s) in net.{index}.{kind}; {REFUSED}"
                )
        layers.append((weight, bias))
    try:
        widths = [
            int(config["in_features"]),
            *(int(h) for h in config["hidden_sizes"]),
            int(config["n_classes"]),
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise RegistryError(
            f"model bundle '{where}': bundle.json has no valid model_config ({exc!r}); "
            "re-register it"
        ) from exc
    shapes = [w.shape for w, _ in layers]
    expected = [(widths[i + 1], widths[i]) for i in range(len(widths) - 1)]
    if shapes != expected or any(b.shape != (w.shape[0],) for w, b in layers):
        raise RegistryError(
            f"model bundle '{where}': weight shapes {shapes} do not match the "
            f"model config {expected}; the bundle is damaged, re-register it"
        )
    if config.get("task") == "regression":
        return _in_target_unit(layers, config)
    return _calibrated(layers, config.get("temperature", 1.0), where)


def _in_target_unit(layers: Layers, config: dict[str, Any]) -> Layers:
    """A regressor's last layer answering in the target's unit: the network trained on the
    standardised target (``MLP.regressor``), so its output times the scale plus the mean."""
    weight, bias = layers[-1]
    scale, mean = float(config["target_scale"]), float(config["target_mean"])
    return [
        *layers[:-1],
        (np.float32(scale) * weight, (np.float64(scale) * bias + mean).astype(np.float32)),
    ]


def _calibrated(layers: Layers, temperature: Any, where: str) -> Layers:
    """The last layer divided by the bundle's temperature (training.calibrate): every
    reader (evaluate, predict, serve with numpy or ONNX) then scores calibrated logits."""
    number = isinstance(temperature, int | float) and not isinstance(temperature, bool)
    if not (number and np.isfinite(temperature) and temperature > 0):
        raise RegistryError(
            f"model bundle '{where}': model_config temperature {temperature!r} must be a "
            f"positive number; {REFUSED}"
        )
    if temperature == 1.0:
        return layers
    weight, bias = layers[-1]
    scale = np.float32(1.0 / temperature)
    return [*layers[:-1], (weight * scale, bias * scale)]


def transposed(layers: Sequence[tuple[np.ndarray, np.ndarray]], dtype: Any) -> Layers:
    """Layers laid out for ``forward``: contiguous (in, out) matrices in ``dtype``."""
    return [(np.ascontiguousarray(w.T, dtype), np.asarray(b, dtype)) for w, b in layers]


def forward(h: np.ndarray, layers: Layers, regression: bool = False) -> np.ndarray:
    """Class probabilities for rows ``h`` through layers from ``transposed``; with
    ``regression``, the (rows, 1) predicted values (``read_layers`` put them in the target's
    unit)."""
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            np.maximum(h, 0, out=h)
    if regression:
        return h
    h = h - h.max(axis=1, keepdims=True)
    np.exp(h, out=h)
    h /= h.sum(axis=1, keepdims=True)
    return h
