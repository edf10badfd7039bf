"""The MLP's forward pass in numpy, read straight from a bundle's safetensors weights.

Evaluation (``components.core.model.bundle``) and serving (``components.serving.model``) both run
this, so neither needs torch to score a model, and the gate scores the network exactly as
the server's numpy path computes it. The math is the torch module's (``components.core.model.mlp``:
Linear, ReLU, ..., Linear; dropout is the identity when predicting), then a softmax.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from components.core.bundle_format import WEIGHTS
from components.core.errors import RegistryError

LAYER_KEY = re.compile(r"^net\.(\d+)\.(weight|bias)$")  # nn.Sequential names in model.MLP

Layers = list[tuple[np.ndarray, np.ndarray]]


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
    """(weight, bias) per Linear layer in order, checked against the model config."""
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
        layers.append(
            (np.asarray(pair["weight"], np.float32), np.asarray(pair["bias"], np.float32))
        )
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
    return layers


def transposed(layers: Sequence[tuple[np.ndarray, np.ndarray]], dtype: Any) -> Layers:
    """Layers laid out for ``forward``: contiguous (in, out) matrices in ``dtype``."""
    return [(np.ascontiguousarray(w.T, dtype), np.asarray(b, dtype)) for w, b in layers]


def forward(h: np.ndarray, layers: Layers) -> np.ndarray:
    """Class probabilities for rows ``h`` through layers from ``transposed``."""
    for i, (w, b) in enumerate(layers):
        h = h @ w + b
        if i < len(layers) - 1:
            np.maximum(h, 0, out=h)
    h = h - h.max(axis=1, keepdims=True)
    np.exp(h, out=h)
    h /= h.sum(axis=1, keepdims=True)
    return h
