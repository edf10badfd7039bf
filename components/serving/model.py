"""A model bundle loaded for serving: numpy and ONNX Runtime only, no torch, no pandas.

Training writes a bundle with torch; serving reads the same files (``bundle.json``,
``preprocessor.json``, ``model.safetensors``, checked against ``manifest.json``) without
torch, through the numpy forward pass that evaluation also runs
(``components.core.model.mlp_numpy``), so that the image stays small:

- the weights are read with ``safetensors.numpy``; at load time the numeric preprocessing
  (median imputation and standardisation in float64, then float32: exactly what
  ``components.core.data.features.Preprocessor.transform`` computes) and the network are built
  into one ONNX graph and run with ONNX Runtime; categorical one-hot columns are encoded
  with numpy. The graph's output is checked against a float64 numpy forward pass of the
  same parameters (the math torch runs, in more precision); if the maximum absolute
  difference is 1e-5 or more, or ONNX Runtime is missing, the model is served by a
  float32 numpy implementation instead and the reason is logged.

A regression bundle (``model_config.task`` "regression", no classes) is served the same way
without the softmax: each prediction is ``{"value": v}``, the predicted value in the
target's unit rounded to 7 significant digits (what float32 carries), and /health says
``"task": "regression"``. Its ONNX check measures the difference in units of the target's
standard deviation, or relative to the value where that is larger: float32 carries a value
of 100 only to about 1e-5.

bundle.json ``inputs`` (absent in bundles written before sigdeploy kept it) says how the
training rows were made: the columns left out on purpose become keys an object instance may
carry and have ignored, and an image-folder model's list instances are described as images
in errors; /health shows both.

Before any of that the bundle is checked as every reader checks it (``mlp_numpy``): its files
against its manifest, its parts against each other, its weights finite. A bundle that fails
is a one-line RegistryError, so the server keeps the model it has (``loader``); one without a
manifest (written before sigdeploy kept one) is served, and /health says "unverified".

A :class:`ServingModel` is immutable once built: the server swaps whole models, so one
request never sees parts of two.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from components.core.bundle_format import (
    BUNDLE_JSON,
    FORMAT,
    PREPROCESSOR_JSON,
    PREPROCESSOR_KIND,
    UNVERIFIED,
    VERIFIED,
    WEIGHTS,
)
from components.core.errors import RegistryError
from components.core.model.mlp_numpy import (
    check_files,
    check_parts,
    forward,
    load_weights,
    read_layers,
    transposed,
)
from components.serving import fastjson
from components.serving.drift import DriftMonitor
from components.serving.errors import BadRequest
from components.serving.instances import MISSING, UNSEEN, InstanceDecoder, Rows

log = logging.getLogger(__name__)

ONNX_TOLERANCE = 1e-5  # max ``disagreement`` of onnx and the float64 reference on probe rows
PROBE_ROWS = 256
DECIMALS = 9  # probabilities are rounded to 1e-9 in responses (float32 carries ~7 digits)
VALUE_FORMAT = ".7g"  # a regressor's values: 7 significant digits (float32 carries ~7)
REGRESSION = "regression"  # model_config.task of a regressor; anything else is a classifier
_SCALE = 10.0**DECIMALS
SMALL_BATCH = 8  # up to this many rows, responses are built without numpy calls
FORMAT_ROWS = 1024  # more rows than this are formatted a slice of this many at a time
NETWORK_ROWS = 1024  # and run through the network a slice of this many at a time
_HEAD = b'{"predictions":['
IMAGE_MODES = {"L": "grayscale"}  # image_mode (PIL) of an image-folder model: one value a pixel
INPUT_FACTS = ("source_kind", "image_size", "image_mode", "image_resample")  # shown on /health


@dataclass(frozen=True)
class ServingPreprocessor:
    """The fitted preprocessor as numpy arrays (from preprocessor.json)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    medians: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    categories: tuple[tuple[str, ...], ...]
    fill_codes: tuple[int, ...]  # category code that a missing value is imputed with
    dropped: tuple[str, ...] = ()  # columns left out of the features in training

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @property
    def n_outputs(self) -> int:
        return len(self.numeric) + sum(len(c) for c in self.categories)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ServingPreprocessor:
        if obj.get("kind") != PREPROCESSOR_KIND:
            raise ValueError(f"preprocessor kind {obj.get('kind')!r} is not {PREPROCESSOR_KIND}")
        categories = tuple(tuple(str(c) for c in cats) for cats in obj["categories"])
        fills = [str(f) for f in obj["fill_values"]]
        fill_codes = tuple(
            cats.index(fill) if fill in cats else UNSEEN
            for fill, cats in zip(fills, categories, strict=True)
        )
        return cls(
            numeric=tuple(obj["numeric"]),
            categorical=tuple(obj["categorical"]),
            medians=np.asarray(obj["medians"], np.float64),
            means=np.asarray(obj["means"], np.float64),
            scales=np.asarray(obj["scales"], np.float64),
            categories=categories,
            fill_codes=fill_codes,
            dropped=tuple(str(c) for c in obj.get("dropped") or {}),
        )

    def scaled(self, rows: Rows) -> np.ndarray:
        """Numeric part: impute the median, standardise (float64), then float32."""
        x = rows.numeric
        if np.isnan(x).any():
            x = np.where(np.isnan(x), self.medians, x)
        with np.errstate(over="ignore"):  # huge inputs: caught by predict_body
            return ((x - self.means) / self.scales).astype(np.float32)

    def onehot(self, rows: Rows) -> np.ndarray:
        """Categorical part: missing -> the training mode, unseen -> all zeros."""
        out = np.zeros((len(rows), self.n_outputs - len(self.numeric)), np.float32)
        offset = 0
        for j, cats in enumerate(self.categories):
            codes = rows.codes[:, j]
            codes = np.where(codes == MISSING, self.fill_codes[j], codes)
            hit = np.nonzero(codes >= 0)[0]
            out[hit, offset + codes[hit]] = 1.0
            offset += len(cats)
        return out

    def transform(self, rows: Rows) -> np.ndarray:
        """The network's input matrix, as Preprocessor.transform computes it."""
        if not self.categorical:
            return self.scaled(rows)
        return np.hstack([self.scaled(rows), self.onehot(rows)])


@dataclass(frozen=True)
class InputSpec:
    """What the model takes, from bundle.json ``inputs``; empty for an older bundle."""

    ignored: tuple[str, ...] = ()  # columns left out in training: accepted, then ignored
    list_form: str | None = None  # what a list instance holds when it is not a table row
    facts: tuple[tuple[str, Any], ...] | None = None  # for /health; None: the bundle has none

    def describe(self) -> dict[str, Any] | None:
        if self.facts is None:
            return None
        return {**dict(self.facts), "ignored_columns": list(self.ignored)}


def read_inputs(meta: dict[str, Any], pre: ServingPreprocessor) -> InputSpec:
    """The InputSpec of bundle.json ``inputs`` and preprocessor.json ``dropped``;
    ValueError when they are not what training writes."""
    inputs = meta.get("inputs")
    if inputs is None and not pre.dropped:
        return InputSpec()
    inputs = {} if inputs is None else inputs
    if not isinstance(inputs, dict):
        raise ValueError("bundle.json inputs is not an object")
    dropped = inputs.get("columns_dropped") or {}
    if not isinstance(dropped, dict):
        raise ValueError("bundle.json inputs.columns_dropped is not an object")
    features = set(pre.features)
    ignored = tuple(
        c for c in dict.fromkeys([*map(str, dropped), *pre.dropped]) if c not in features
    )
    facts = tuple((k, inputs[k]) for k in INPUT_FACTS if k in inputs)
    return InputSpec(
        ignored=ignored,
        list_form=image_list_form(inputs, len(features)),
        facts=(*facts, ("features", len(features))),
    )


def image_list_form(inputs: dict[str, Any], n_features: int) -> str | None:
    """E.g. "a 16x16 grayscale image, row by row" for a model trained on an image folder;
    None when the bundle does not say so or its features are not that image's pixels."""
    if inputs.get("source_kind") != "image_folder":
        return None
    size, mode = inputs.get("image_size"), inputs.get("image_mode")
    if type(size) is not int or mode not in IMAGE_MODES or size * size != n_features:
        return None
    article = "an" if str(size).startswith("8") or size in (11, 18) else "a"  # an 8x8, an 11x11
    return f"{article} {size}x{size} {IMAGE_MODES[mode]} image, row by row"


class Network(Protocol):
    def __call__(self, rows: Rows) -> np.ndarray: ...


class NumpyNetwork:
    """Preprocessor and MLP in numpy: float32 to serve, float64 as the reference.
    A regressor's network answers (rows, 1) values, a classifier's the probabilities."""

    def __init__(
        self,
        layers: Sequence[tuple[np.ndarray, np.ndarray]],
        pre: ServingPreprocessor,
        regression: bool = False,
    ) -> None:
        self.pre = pre
        self.regression = regression
        self._layers32 = transposed(layers, np.float32)
        self._layers64 = transposed(layers, np.float64)

    def __call__(self, rows: Rows) -> np.ndarray:
        return forward(self.pre.transform(rows), self._layers32, self.regression)

    def reference(self, rows: Rows) -> np.ndarray:
        x = self.pre.transform(rows).astype(np.float64)
        return forward(x, self._layers64, self.regression)


class OnnxNetwork:
    """Numeric preprocessing and MLP in one ONNX Runtime session (thread-safe: requests
    call it concurrently); categorical one-hot columns are built by numpy."""

    def __init__(
        self,
        layers: Sequence[tuple[np.ndarray, np.ndarray]],
        pre: ServingPreprocessor,
        threads: int,
        regression: bool = False,
    ) -> None:
        import onnxruntime as ort

        from components.serving.onnx_graph import NUMERIC, ONEHOT, OUTPUT, VALUES, mlp_to_onnx

        self.pre = pre
        self._numeric = NUMERIC if pre.numeric else None
        self._onehot = ONEHOT if pre.categorical else None
        model = mlp_to_onnx(
            layers,
            pre.medians,
            pre.means,
            pre.scales,
            pre.n_outputs - len(pre.numeric),
            regression=regression,
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        # Spinning worker threads burn idle cores that the HTTP server needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self._outputs = [VALUES if regression else OUTPUT]

    def __call__(self, rows: Rows) -> np.ndarray:
        feeds = {}
        if self._numeric:
            feeds[self._numeric] = rows.numeric
        if self._onehot:
            feeds[self._onehot] = self.pre.onehot(rows)
        return self._session.run(self._outputs, feeds)[0]


def probe_rows(pre: ServingPreprocessor, n: int = PROBE_ROWS, seed: int = 0) -> Rows:
    """Raw rows around the training distribution, with missing and unseen values."""
    rng = np.random.default_rng(seed)
    numeric = pre.means + pre.scales * rng.standard_normal((n, len(pre.numeric))) * 2
    numeric[rng.random(numeric.shape) < 0.05] = np.nan
    codes = (
        np.stack([rng.integers(UNSEEN, len(c), n) for c in pre.categories], axis=1)
        if pre.categories
        else np.zeros((n, 0))
    )
    return Rows(np.ascontiguousarray(numeric), codes.astype(np.int32))


def disagreement(served: np.ndarray, reference: np.ndarray, target_scale: float | None) -> float:
    """The largest difference of served outputs from the float64 reference: absolute for
    probabilities; for a regressor's values (``target_scale`` its training target's standard
    deviation), in units of that deviation or of the value where larger, as float32 rounds
    a value relative to its size."""
    diff = np.abs(served.astype(np.float64) - reference)
    if target_scale is not None:
        diff = diff / np.maximum(target_scale, np.abs(reference))
    return float(np.max(diff))


def build_network(
    layers: Sequence[tuple[np.ndarray, np.ndarray]],
    pre: ServingPreprocessor,
    backend: str = "auto",
    threads: int = 1,
    target_scale: float | None = None,
) -> tuple[Network, str]:
    """ONNX Runtime when it agrees with the float64 reference, else numpy (logged).

    ``target_scale``: a regressor's training target standard deviation (None: a classifier)."""
    regression = target_scale is not None
    reference = NumpyNetwork(layers, pre, regression)
    if backend == "numpy":
        return reference, "numpy"
    try:
        network = OnnxNetwork(layers, pre, threads, regression)
        probe = probe_rows(pre)
        diff = disagreement(network(probe), reference.reference(probe), target_scale)
    except Exception as exc:  # noqa: BLE001 - any failure means: do not use ONNX
        reason = f"ONNX export or ONNX Runtime failed ({type(exc).__name__}: {exc})"
    else:
        if diff < ONNX_TOLERANCE:
            log.debug("ONNX Runtime output matches the reference (max abs diff %.2e)", diff)
            return network, "onnx"
        reason = f"ONNX Runtime output differs from the reference by {diff:.2e}"
    if backend == "onnx":
        raise RegistryError(f"serving backend onnx: {reason}; use backend auto or numpy")
    log.warning("%s; serving this model with numpy instead", reason)
    return reference, "numpy"


@dataclass(frozen=True)
class ServingModel:
    """Everything one prediction needs; never mutated after load (swap, don't edit)."""

    version: str
    name: str
    path: Path
    meta: dict[str, Any]
    classes: tuple[Any, ...]
    decoder: InstanceDecoder
    preprocessor: ServingPreprocessor
    network: Network
    backend: str
    monitor: DriftMonitor
    inputs: InputSpec = field(default_factory=InputSpec)
    verified: bool = False  # its files matched its manifest (False: a bundle without one)
    task: str = "classification"  # or REGRESSION: the network answers values, not classes
    _row_template: str = field(repr=False, default="")
    _labels_json: tuple[str, ...] = field(repr=False, default=())
    _class_keys: tuple[str, ...] = field(repr=False, default=())

    @property
    def features(self) -> tuple[str, ...]:
        return self.decoder.features

    @property
    def regression(self) -> bool:
        return self.task == REGRESSION

    def predict_proba(self, rows: Rows) -> np.ndarray:
        return self.network(rows)

    def predict_body(self, body: bytes | bytearray, max_instances: int) -> bytes:
        """A request body in, a response body out; BadRequest for anything invalid."""
        rows = self.decoder.decode(body, max_instances)
        if len(rows) <= NETWORK_ROWS:
            return self.answer(rows, self.network(rows))
        # A slice at a time: the network's activations (and ONNX Runtime's arena, which
        # keeps its largest size) stay those of NETWORK_ROWS rows.
        proba = [
            self.network(Rows(rows.numeric[k : k + NETWORK_ROWS], rows.codes[k : k + NETWORK_ROWS]))
            for k in range(0, len(rows), NETWORK_ROWS)
        ]
        return self.answer(rows, np.concatenate(proba))

    def answer(self, rows: Rows, proba: np.ndarray) -> bytes:
        """The response body for decoded rows and their probabilities or a regressor's
        values (from ``network``, alone or batched with other requests' rows); records the
        rows for /stats."""
        if not np.isfinite(proba).all():
            raise self._overflow(rows, np.isfinite(proba).all(axis=1))
        self.monitor.observe(rows)
        return self.format(proba)

    def format(self, proba: np.ndarray) -> bytes:
        if len(proba) > FORMAT_ROWS:
            # A slice at a time, so that only one slice's dicts exist at once: each answer
            # is HEAD + predictions + tail, the tail the same for all (the model version).
            tail = self.format(proba[:0])[len(_HEAD) :]
            slices = [
                self.format(proba[k : k + FORMAT_ROWS])[len(_HEAD) : -len(tail)]
                for k in range(0, len(proba), FORMAT_ROWS)
            ]
            return _HEAD + b",".join(slices) + tail
        if self.regression:
            return self._format_values(proba)
        labels = self.classes
        if len(proba) <= SMALL_BATCH:
            # A few rows: plain Python is cheaper than numpy's per-call cost; it rounds
            # exactly as ndarray.round does (scale, round half to even, unscale).
            plain = proba.tolist()
            rounded = [[round(v * _SCALE) / _SCALE for v in row] for row in plain]
            winners = [row.index(max(row)) for row in plain]
        else:
            winners = proba.argmax(axis=1).tolist()
            rounded = proba.astype(np.float64).round(DECIMALS).tolist()
        if fastjson.HAVE_ORJSON:
            keys = self._class_keys
            return fastjson.dumps(
                {
                    "predictions": [
                        {"label": labels[i], "probabilities": dict(zip(keys, row, strict=True))}
                        for i, row in zip(winners, rounded, strict=True)
                    ],
                    "model_version": self.version,
                }
            )
        # The standard library's encoder is slow on many small dicts: fill a template.
        labels_json = self._labels_json
        template = self._row_template
        parts = [template % (labels_json[i], *row) for i, row in zip(winners, rounded, strict=True)]
        return b"".join(
            (
                b'{"predictions":[',
                ",".join(parts).encode(),
                b'],"model_version":',
                json.dumps(self.version).encode(),
                b"}",
            )
        )

    def _format_values(self, out: np.ndarray) -> bytes:
        """A regressor's (rows, 1) values as ``{"value": v}`` each."""
        values = [float(format(v, VALUE_FORMAT)) for v in out[:, 0].tolist()]
        if fastjson.HAVE_ORJSON:
            return fastjson.dumps(
                {"predictions": [{"value": v} for v in values], "model_version": self.version}
            )
        return b"".join(
            (
                _HEAD,
                ",".join([f'{{"value":{v!r}}}' for v in values]).encode(),
                b'],"model_version":',
                json.dumps(self.version).encode(),
                b"}",
            )
        )

    def _overflow(self, rows: Rows, row_ok: np.ndarray) -> BadRequest:
        i = int(np.nonzero(~row_ok)[0][0])
        x = self.preprocessor.scaled(rows)
        j = int(np.argmax(np.abs(np.nan_to_num(x[i], nan=np.inf)))) if x.shape[1] else 0
        names = self.preprocessor.numeric
        name = names[j] if j < len(names) else None
        return BadRequest(
            400,
            f"instance {i}, field {name!r}: value too far outside the "
            "training range; the network output overflowed",
            index=i,
            field=name,
        )

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model_name": self.name,
            "model_version": self.version,
            "backend": self.backend,
            "features": len(self.features),
            "classes": len(self.classes),
            **({"task": self.task} if self.regression else {}),
            "integrity": VERIFIED if self.verified else UNVERIFIED,
        }
        if (inputs := self.inputs.describe()) is not None:
            out["inputs"] = inputs
        return out


def load_serving_model(
    path: str | Path,
    version: str | None = None,
    *,
    backend: str = "auto",
    threads: int = 1,
    drift: dict[str, Any] | None = None,
) -> ServingModel:
    """Load a bundle directory for serving; RegistryError (one line) if it cannot be used.

    ``version`` is the registry version; without one (a bundle given by path or
    AIP_STORAGE_URI) it is ``sha256:`` and the first 12 hex digits of the weights' hash.
    ``drift`` holds DriftMonitor keyword arguments (window, min_rows, thresholds).
    """
    root = Path(path)
    verified = check_files(root)
    try:
        meta = json.loads((root / BUNDLE_JSON).read_text(encoding="utf-8"))
        pre_json = json.loads((root / PREPROCESSOR_JSON).read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("bundle.json is not an object")
    except ValueError as exc:
        raise RegistryError(
            f"model bundle '{root}': unreadable bundle.json or preprocessor.json "
            f"({exc}); re-register it"
        ) from exc
    if meta.get("format") != FORMAT:
        raise RegistryError(
            f"model bundle '{root}': format {meta.get('format')!r} is not "
            f"{FORMAT}; retrain it with this sigdeploy"
        )
    check_parts(meta, pre_json, root)
    try:
        pre = ServingPreprocessor.from_json(pre_json)
        inputs = read_inputs(meta, pre)
    except (ValueError, KeyError, TypeError) as exc:
        raise RegistryError(
            f"model bundle '{root}': unreadable bundle.json or preprocessor.json "
            f"({exc}); re-register it"
        ) from exc
    # check_parts made the schema's features the preprocessor's and the classes the
    # network's outputs; read_layers makes the layers the model config's
    config = meta["model_config"]
    layers = read_layers(load_weights(root), config, str(root))
    features = [str(f) for f in meta["schema"]["features"]]
    classes = tuple(meta["classes"])
    # check_parts made a regressor's target_scale a positive number
    task = REGRESSION if config.get("task") == REGRESSION else "classification"
    target_scale = float(config["target_scale"]) if task == REGRESSION else None
    if version is None:
        version = "sha256:" + hashlib.sha256((root / WEIGHTS).read_bytes()).hexdigest()[:12]
    name = str(meta.get("name") or root.name)
    network, used = build_network(layers, pre, backend, threads, target_scale)
    monitor = DriftMonitor(
        meta.get("feature_statistics"),
        pre.numeric,
        pre.categorical,
        pre.categories,
        model=f"{name} version {version}",
        **(drift or {}),
    )
    keys = [json.dumps(str(c)).replace("%", "%%") for c in classes]
    template = '{"label":%s,"probabilities":{' + ",".join(f"{k}:%r" for k in keys) + "}}"
    log.info(
        "loaded %s version %s from %s (%d features, %s, %s, %s)",
        name,
        version,
        root,
        len(features),
        "regression" if task == REGRESSION else f"{len(classes)} classes",
        used,
        VERIFIED if verified else UNVERIFIED,
    )
    return ServingModel(
        version=str(version),
        name=name,
        path=root,
        meta=meta,
        classes=classes,
        decoder=InstanceDecoder(
            features,
            pre.numeric,
            pre.categorical,
            pre.categories,
            ignored=inputs.ignored,
            list_form=inputs.list_form,
        ),
        preprocessor=pre,
        network=network,
        backend=used,
        monitor=monitor,
        inputs=inputs,
        verified=verified,
        task=task,
        _row_template=template,
        _labels_json=tuple(json.dumps(c) for c in classes),
        _class_keys=tuple(str(c) for c in classes),
    )
