"""The model bundle: one directory that holds everything needed to predict from raw rows.

    bundle.json        feature schema, class labels, model config, training-data
                       fingerprint, training statistics, metrics, library versions, and
                       the split definition (key, salt, fractions)
    preprocessor.json  fitted preprocessing parameters (plain JSON, no pickle)
    model.safetensors  network weights (safetensors: loading runs no code)
    split_keys.npy     the sorted keys of the rows trained and validated on (numpy, no
                       pickle); absent from bundles written before sigdeploy kept it
    manifest.json      the sha256 of every other file, written last; absent from bundles
                       written before sigdeploy kept it (they load unverified, with a
                       warning)

Loading refuses, in one line, a bundle whose files do not match its manifest, whose parts
disagree (classes and outputs, features, preprocessing parameters) or whose weights are not
finite (``mlp_numpy.check_files``, ``check_parts``, ``read_layers``), as serving does.

The champion and the challenger are each scored through their own bundle, so their
preprocessing may differ and they still see exactly the same raw test rows. Loading and
scoring need no torch: the network runs in numpy (``mlp_numpy``, as the server's numpy path
does), so the evaluate task starts seconds sooner; only saving, and ``Bundle.network`` for
code that wants the torch module, import torch.
"""

from __future__ import annotations

import json
import logging
import platform
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from components.core.bundle_format import (
    BUNDLE_JSON,
    FORMAT,
    MANIFEST,
    MANIFEST_KEY,
    PREPROCESSOR_JSON,
    WEIGHTS,
    write_manifest,
)
from components.core.data.features import Preprocessor
from components.core.errors import RegistryError, SchemaMismatchError
from components.core.io import atomic_dir
from components.core.model import mlp_numpy

if TYPE_CHECKING:
    from components.core.data.split import SplitRecord
    from components.core.model.mlp import MLP

log = logging.getLogger(__name__)


def library_versions() -> dict[str, str]:
    """Versions from the installed distributions' metadata: importing scikit-learn just for
    its version string would cost the train task seconds."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "numpy", "pandas", "scikit-learn", "safetensors"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


@dataclass
class Bundle:
    """A loaded bundle: preprocess, run the network, return class probabilities."""

    path: Path
    meta: dict[str, Any]
    preprocessor: Preprocessor
    weights: dict[str, np.ndarray]  # the safetensors tensors, by their torch names
    verified: bool = False  # its files matched its manifest (False: an old bundle without one)
    _layers: mlp_numpy.Layers = field(init=False, repr=False)

    def __post_init__(self) -> None:
        config = self.meta.get("model_config") or {}
        layers = mlp_numpy.read_layers(self.weights, config, str(self.path))
        self._layers = mlp_numpy.transposed(layers, np.float32)

    @cached_property
    def network(self) -> MLP:
        """The weights as the torch module (imports torch; scoring does not need it)."""
        import torch

        from components.core.model.mlp import MLP, MLPConfig

        network = MLP(MLPConfig.from_json(self.meta["model_config"]))
        network.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in self.weights.items()})
        return network.eval()

    @property
    def classes(self) -> list[Any]:
        """The class labels in output order ([] for a regressor)."""
        return list(self.meta["classes"])

    @property
    def task(self) -> str:
        """classification | regression (bundles written before regression: classification)."""
        return str((self.meta.get("model_config") or {}).get("task", "classification"))

    @property
    def regression(self) -> bool:
        return self.task == "regression"

    @property
    def target(self) -> dict[str, float]:
        """A regressor's training target: mean, standard deviation (``scale``) and mean
        absolute deviation from the mean (``mad``): the units the gate's margin and effect
        are shares of. {} for a classifier."""
        if not self.regression:
            return {}
        config = self.meta["model_config"]
        out = {"mean": float(config["target_mean"]), "scale": float(config["target_scale"])}
        stats = (self.meta.get("training") or {}).get("target") or {}
        if isinstance(stats.get("mad"), int | float):
            out["mad"] = float(stats["mad"])
        return out

    @property
    def features(self) -> list[str]:
        return list(self.meta["schema"]["features"])

    @property
    def label(self) -> str:
        return str(self.meta["schema"]["label"])

    @property
    def inputs(self) -> dict[str, Any]:
        """How the training rows were made: source kind, image size and mode, the columns
        used and left out ({} for a bundle written before sigdeploy kept this)."""
        return dict(self.meta.get("inputs") or {})

    @property
    def dropped_columns(self) -> dict[str, str]:
        return dict(self.inputs.get("columns_dropped") or {})

    def check_schema(self, frame: pd.DataFrame, what: str = "") -> None:
        """Refuse data that lacks a feature this model needs (``what``: the model's name in
        the message).

        Other columns may come and go (a challenger with a new feature is still compared
        with this model on the same rows): each model reads only its own features."""
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise SchemaMismatchError(
                f"{what or self._what}: needs {len(missing)} feature column(s) that the data "
                f"lacks ({shown}); it cannot be scored on these rows: put the columns back, "
                "or start a new model name"
            )

    @property
    def _what(self) -> str:
        return f"model '{self.meta.get('name') or self.path}'"

    def check_inputs(self, frame: pd.DataFrame, provenance: dict[str, Any], what: str = "") -> None:
        """``check_schema``, and for a model trained on an image folder: images of the size
        it was trained at (``provenance``: how the rows were made, as the source describes
        them). Pixel columns of another size have the same names but mean other pixels."""
        trained = self.inputs.get("image_size")
        size = provenance.get("image_size")
        images = provenance.get("source_kind") == "image_folder"
        was_images = self.inputs.get("source_kind") == "image_folder" and trained is not None
        if was_images and images and trained != size:
            raise SchemaMismatchError(
                f"{what or self._what}: trained on {trained}x{trained} images, and these are "
                f"read at {size}x{size}; pass image_size={trained}, or start a new model name"
            )
        self.check_schema(frame, what)

    def check_task(self, task: str, what: str = "") -> None:
        """Refuse to compare this model with one for another task: a classifier's and a
        regressor's errors cannot be paired."""
        if task != self.task:
            kind = {"classification": "a classifier", "regression": "a regressor"}
            raise SchemaMismatchError(
                f"{what or self._what}: is {kind.get(self.task, self.task)} and this run's "
                f"label is a {task} target; pass task={self.task}, or start a new model name"
            )

    def split_record(self, what: str = "") -> SplitRecord | None:
        """The split this model was trained with and the keys of the rows it trained and
        validated on; None for a bundle written before sigdeploy kept them. RegistryError
        (one line) when the record is incomplete, foreign or corrupt."""
        from components.core.data.split import read_record

        return read_record(self.path, self.meta, what or f"model bundle '{self.path}'")

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        return self.preprocessor.transform(frame)

    def _outputs(self, x: np.ndarray, batch: int) -> np.ndarray:
        out = [
            mlp_numpy.forward(
                np.asarray(x[start : start + batch], np.float32), self._layers, self.regression
            )
            for start in range(0, x.shape[0], batch)
        ]
        width = 1 if self.regression else len(self.classes)
        return np.concatenate(out) if out else np.zeros((0, width), np.float32)

    def predict_proba_matrix(self, x: np.ndarray, batch: int = 65536) -> np.ndarray:
        if self.regression:
            raise TypeError(f"{self._what} is a regressor: it predicts values, not classes")
        return self._outputs(x, batch)

    def predict_values_matrix(self, x: np.ndarray, batch: int = 65536) -> np.ndarray:
        """A regressor's predicted values (float64, one per row) for preprocessed rows."""
        if not self.regression:
            raise TypeError(f"{self._what} is a classifier: it predicts classes, not values")
        return self._outputs(x, batch)[:, 0].astype(np.float64)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_proba_matrix(self.transform(frame))

    def predict_values(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_values_matrix(self.transform(frame))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The predicted class label of each row, or a regressor's predicted value."""
        if self.regression:
            return self.predict_values(frame)
        return np.asarray(self.classes, dtype=object)[self.predict_proba(frame).argmax(1)]


def save_bundle(
    path: str | Path,
    network: MLP,
    preprocessor: Preprocessor,
    classes: list[Any],
    label: str,
    extra: dict[str, Any] | None = None,
    split: SplitRecord | None = None,
) -> Path:
    """Write a bundle directory atomically (nothing appears at ``path`` unless all of it does).

    ``split``: how the training rows were split and which keys were trained and validated on
    (bundle.json "split", and the keys in ``SPLIT_KEYS``). The manifest of every file is
    written last, inside the same atomic directory write."""
    from safetensors.torch import save_file

    meta = {
        "format": FORMAT,
        "schema": {
            "label": label,
            "features": list(preprocessor.features),
            "numeric": list(preprocessor.numeric),
            "categorical": list(preprocessor.categorical),
        },
        "classes": [_plain(c) for c in classes],
        "model_config": network.config.to_json(),
        "library_versions": library_versions(),
    } | (extra or {})
    meta[MANIFEST_KEY] = MANIFEST  # a bundle that says it has one is refused without it
    if split is not None:
        meta["split"] = split.to_json()
    with atomic_dir(path) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS))
        if split is not None:
            split.save(tmp)
        (tmp / PREPROCESSOR_JSON).write_text(json.dumps(preprocessor.to_json(), indent=2) + "\n")
        (tmp / BUNDLE_JSON).write_text(
            json.dumps(meta, indent=2, sort_keys=True, default=_plain) + "\n"
        )
        write_manifest(tmp)
    return Path(path)


def load_bundle(path: str | Path) -> Bundle:
    """The bundle at ``path``, checked (module docstring); RegistryError, one line, if not."""
    root = Path(path)
    verified = mlp_numpy.check_files(root)
    try:
        meta = json.loads((root / BUNDLE_JSON).read_text())
        pre_json = json.loads((root / PREPROCESSOR_JSON).read_text())
    except json.JSONDecodeError as exc:
        raise RegistryError(
            f"model bundle '{root}': unreadable JSON ({exc.msg}); re-register it"
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise RegistryError(f"model bundle '{root}': format {found!r} is not {FORMAT}")
    mlp_numpy.check_parts(meta, pre_json, root)
    return Bundle(
        path=root,
        meta=meta,
        preprocessor=Preprocessor.from_json(pre_json),
        weights=mlp_numpy.load_weights(root),
        verified=verified,
    )


def _plain(value: Any) -> Any:
    """numpy scalars to Python values so labels survive JSON unchanged."""
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
