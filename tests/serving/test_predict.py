"""Served predictions equal the offline bundle's (torch), on both network backends and both
instance forms; the ONNX graph is valid and is dropped, with a logged reason, when it
disagrees with the reference."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from components.core.bundle_format import write_manifest
from components.core.errors import RegistryError
from components.core.model.bundle import load_bundle
from components.serving import model as model_mod
from components.serving.model import load_serving_model


def _served(model, instances):
    body = json.dumps({"instances": instances}).encode()
    return json.loads(model.predict_body(body, 100_000))


def _proba(answer, classes):
    return np.array([[p["probabilities"][str(c)] for c in classes] for p in answer["predictions"]])


@pytest.mark.parametrize("backend", ["onnx", "numpy"])
def test_served_predictions_equal_offline(digits_bundles, digits_test, backend):
    offline = load_bundle(digits_bundles[0])
    served = load_serving_model(digits_bundles[0], "1", backend=backend)
    assert served.backend == backend
    expected = offline.predict_proba(digits_test)
    labels = offline.predict(digits_test).tolist()
    as_lists = _served(served, digits_test.to_numpy().tolist())
    as_objects = _served(served, digits_test.to_dict("records"))
    for answer in (as_lists, as_objects):
        assert [p["label"] for p in answer["predictions"]] == labels
        assert np.abs(_proba(answer, offline.classes) - expected).max() < 1e-6
        assert answer["model_version"] == "1"
    one = _served(served, digits_test.iloc[:1].to_numpy().tolist())  # a batch of one too
    assert np.abs(_proba(one, offline.classes) - expected[:1]).max() < 1e-6


def test_mixed_features_and_nulls_equal_offline(mixed_bundle, helpers):
    """Categorical strings, unseen categories and nulls (imputed) as offline."""
    offline = load_bundle(mixed_bundle)
    served = load_serving_model(mixed_bundle, "1")
    frame = helpers.mixed_frame(300, seed=5).drop(columns="label")
    frame.loc[3, "color"] = "purple"  # never seen in training: encodes to all zeros
    frame.loc[4, "color"] = None
    frame.loc[5, "x1"] = np.nan
    records = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]
    answer = _served(served, records)
    assert [p["label"] for p in answer["predictions"]] == offline.predict(frame).tolist()
    assert np.abs(_proba(answer, offline.classes) - offline.predict_proba(frame)).max() < 1e-6
    # the list form follows bundle.json's schema order
    order = offline.features
    rows = [[r[f] for f in order] for r in records]
    assert _served(served, rows) == answer


@pytest.mark.parametrize("which", ["digits", "mixed"])
def test_onnx_graph_is_valid_onnx(digits_bundles, mixed_bundle, which):
    import onnx
    from safetensors.numpy import load_file

    from components.serving.model import ServingPreprocessor, read_layers
    from components.serving.onnx_graph import mlp_to_onnx

    bundle = digits_bundles[1] if which == "digits" else mixed_bundle
    meta = json.loads((bundle / "bundle.json").read_text())
    pre = ServingPreprocessor.from_json(json.loads((bundle / "preprocessor.json").read_text()))
    layers = read_layers(load_file(str(bundle / "model.safetensors")), meta["model_config"], "b")
    proto = onnx.load_from_string(
        mlp_to_onnx(layers, pre.medians, pre.means, pre.scales, pre.n_outputs - len(pre.numeric))
    )
    onnx.checker.check_model(proto, full_check=True)
    ops = [n.op_type for n in proto.graph.node]
    assert ops[:5] == ["IsNaN", "Where", "Sub", "Div", "Cast"] and ops[-1] == "Softmax"
    assert ("Concat" in ops) == (which == "mixed")


def test_onnx_that_disagrees_falls_back_to_numpy(digits_bundles, monkeypatch, caplog):
    monkeypatch.setattr(model_mod, "ONNX_TOLERANCE", 0.0)  # no output can pass this check
    with caplog.at_level(logging.WARNING, logger="components.serving.model"):
        served = load_serving_model(digits_bundles[0], "1")
    assert served.backend == "numpy"
    assert "differs from the reference" in caplog.text and "numpy" in caplog.text
    with pytest.raises(RegistryError, match="backend onnx"):
        load_serving_model(digits_bundles[0], "1", backend="onnx")


def test_missing_onnxruntime_falls_back_to_numpy(digits_bundles, monkeypatch, caplog):
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import now fails
    with caplog.at_level(logging.WARNING, logger="components.serving.model"):
        served = load_serving_model(digits_bundles[0], "1")
    assert served.backend == "numpy" and "ONNX export or ONNX Runtime failed" in caplog.text


def test_damaged_bundle_is_a_one_line_registry_error(tmp_path, digits_bundles):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(digits_bundles[0], bad)
    (bad / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RegistryError, match="model.safetensors does not match its sha256"):
        load_serving_model(bad)
    write_manifest(bad)  # as if training had written it so
    with pytest.raises(RegistryError, match="model.safetensors unreadable"):
        load_serving_model(bad)
    (bad / "model.safetensors").unlink()
    with pytest.raises(RegistryError, match="model.safetensors is missing"):
        load_serving_model(bad)
