"""A regression champion is served: each prediction is ``{"value": v}``, the value the
offline bundle predicts (to the 7 significant digits served), on both network backends,
both instance forms and both JSON encoders; the ONNX graph has no softmax and agrees with
the float64 reference; /health says the task; overflow is the classifier's 400."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.core.model.bundle import load_bundle
from components.core.registry import LocalRegistry
from components.serving import fastjson
from components.serving import model as model_mod
from components.serving.model import load_serving_model
from tests.serving.regression_bundle import NAME, TARGET, regression_frame, train_regression_bundle

RTOL = 1e-6  # values are served to 7 significant digits, float32 carries about as many


@pytest.fixture(scope="module")
def regression_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_regression_bundle(
        tmp_path_factory.mktemp("regression") / "bundle", regression_frame()
    )


@pytest.fixture(scope="module")
def new_rows() -> pd.DataFrame:
    frame = regression_frame(300, seed=7).drop(columns=TARGET)
    frame.loc[3, "c"] = "w"  # never seen in training: encodes to all zeros
    frame.loc[4, "c"] = None
    frame.loc[5, "a"] = np.nan
    return frame


def _records(frame: pd.DataFrame) -> list[dict]:
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]


def _served(model, instances) -> dict:
    return json.loads(model.predict_body(json.dumps({"instances": instances}).encode(), 100_000))


def _values(answer: dict) -> np.ndarray:
    return np.array([p["value"] for p in answer["predictions"]])


@pytest.mark.parametrize("backend", ["onnx", "numpy"])
def test_served_values_equal_offline(regression_bundle, new_rows, backend):
    offline = load_bundle(regression_bundle)
    served = load_serving_model(regression_bundle, "1", backend=backend)
    assert served.backend == backend and served.regression
    expected = offline.predict_values(new_rows)
    records = _records(new_rows)
    as_objects = _served(served, records)
    as_lists = _served(served, [[r[f] for f in offline.features] for r in records])
    assert as_lists == as_objects
    for answer in (as_objects, _served(served, records[:3])):  # the small-batch path too
        assert answer["model_version"] == "1"
        assert all(p.keys() == {"value"} for p in answer["predictions"])
        assert all(type(p["value"]) is float for p in answer["predictions"])
        got = _values(answer)
        np.testing.assert_allclose(got, expected[: len(got)], rtol=RTOL)
    # 7 significant digits, not the float32's binary expansion
    digits = [repr(p["value"]).replace(".", "").lstrip("-0") for p in as_objects["predictions"]]
    assert max(map(len, digits)) <= 7


def test_large_requests_are_sliced_and_answer_every_row(regression_bundle, monkeypatch):
    """Past NETWORK_ROWS / FORMAT_ROWS rows the network and the formatting run a slice at a
    time; the answer is the same as one pass."""
    offline = load_bundle(regression_bundle)
    served = load_serving_model(regression_bundle, "1")
    frame = regression_frame(50, seed=3).drop(columns=TARGET)
    monkeypatch.setattr(model_mod, "NETWORK_ROWS", 16)
    monkeypatch.setattr(model_mod, "FORMAT_ROWS", 7)
    answer = _served(served, _records(frame))
    assert len(answer["predictions"]) == 50 and answer["model_version"] == "1"
    np.testing.assert_allclose(_values(answer), offline.predict_values(frame), rtol=RTOL)


def test_standard_library_json_answers_the_same(regression_bundle, new_rows, monkeypatch):
    if not fastjson.HAVE_ORJSON:
        pytest.skip("orjson is not installed")
    served = load_serving_model(regression_bundle, "v-1")
    body = json.dumps({"instances": _records(new_rows)}).encode()
    with_orjson = served.predict_body(body, 1000)
    monkeypatch.setattr(fastjson, "HAVE_ORJSON", False)
    without = served.predict_body(body, 1000)
    assert json.loads(without) == json.loads(with_orjson)
    assert without.startswith(b'{"predictions":[{"value":')
    assert without.endswith(b'}],"model_version":"v-1"}')


def test_onnx_graph_has_no_softmax_and_agrees_with_the_reference(regression_bundle):
    import onnx
    import onnxruntime as ort
    from safetensors.numpy import load_file

    from components.serving.model import (
        ONNX_TOLERANCE,
        NumpyNetwork,
        ServingPreprocessor,
        build_network,
        disagreement,
        probe_rows,
        read_layers,
    )
    from components.serving.onnx_graph import NUMERIC, ONEHOT, VALUES, mlp_to_onnx

    meta = json.loads((regression_bundle / "bundle.json").read_text())
    config = meta["model_config"]
    pre_json = json.loads((regression_bundle / "preprocessor.json").read_text())
    pre = ServingPreprocessor.from_json(pre_json)
    weights = load_file(str(regression_bundle / "model.safetensors"))
    layers = read_layers(weights, config, "b")
    width = pre.n_outputs - len(pre.numeric)
    graph = mlp_to_onnx(layers, pre.medians, pre.means, pre.scales, width, regression=True)
    proto = onnx.load_from_string(graph)
    onnx.checker.check_model(proto, full_check=True)
    assert "Softmax" not in {n.op_type for n in proto.graph.node}
    assert [o.name for o in proto.graph.output] == [VALUES]

    probe = probe_rows(pre)
    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    (out,) = session.run([VALUES], {NUMERIC: probe.numeric, ONEHOT: pre.onehot(probe)})
    reference = NumpyNetwork(layers, pre, regression=True).reference(probe)
    assert out.shape == reference.shape == (len(probe), 1)
    assert disagreement(out, reference, config["target_scale"]) < ONNX_TOLERANCE
    # values in the target's unit (around 100), where float32 steps are ~1e-5: hence the
    # relative measure
    assert 80 < float(np.median(reference)) < 120
    # the served ONNX network is that graph: backend "onnx" refuses a disagreeing one
    served = load_serving_model(regression_bundle, "1", backend="onnx")
    np.testing.assert_allclose(served.network(probe), out, rtol=0, atol=0)

    # a target around 1e5: float32 is off by ~1e-2 in absolute terms, yet ONNX is as
    # exact as float32 numpy, so it is kept
    far = read_layers(weights, {**config, "target_mean": config["target_mean"] + 1e5}, "b")
    network, used = build_network(far, pre, "onnx", 1, config["target_scale"])
    far_reference = NumpyNetwork(far, pre, regression=True).reference(probe)
    assert used == "onnx"
    assert disagreement(network(probe), far_reference, None) > ONNX_TOLERANCE


def test_a_wrong_onnx_graph_falls_back_to_numpy(regression_bundle, monkeypatch, caplog):
    """The agreement check still guards a regressor: a graph off by one target standard
    deviation in a thousand is dropped (and refused with backend onnx); one off by 2e-5 at
    values around 100 (float32's own rounding there) is kept."""
    from components.core.errors import RegistryError

    real = model_mod.OnnxNetwork.__call__
    config = json.loads((regression_bundle / "bundle.json").read_text())["model_config"]
    offset = {"value": 2e-5}
    monkeypatch.setattr(
        model_mod.OnnxNetwork, "__call__", lambda s, r: real(s, r) + offset["value"]
    )
    assert load_serving_model(regression_bundle, "1", backend="onnx").backend == "onnx"
    offset["value"] = config["target_scale"] * 1e-3
    served = load_serving_model(regression_bundle, "1")
    assert served.backend == "numpy"
    assert "differs from the reference" in caplog.text
    with pytest.raises(RegistryError, match="serving backend onnx"):
        load_serving_model(regression_bundle, "1", backend="onnx")


def test_overflowing_input_is_the_classifiers_400(regression_bundle):
    from components.serving.errors import BadRequest

    served = load_serving_model(regression_bundle, "1")
    body = json.dumps({"instances": [{"a": 0.1, "b": 5, "c": "x"}, {"a": 1e300, "b": 5, "c": "y"}]})
    with pytest.raises(BadRequest) as caught:
        served.predict_body(body.encode(), 10)
    assert caught.value.status == 400
    assert "instance 1, field 'a': value too far outside the training range" in str(caught.value)


def test_health_predict_and_stats_over_http(
    regression_bundle, new_rows, tmp_path, config_for, client_for
):
    registry = LocalRegistry(tmp_path / "registry", NAME)
    registry.register(regression_bundle, {"deploy": True})
    config = config_for(registry, model_name=NAME)
    client = client_for(config)
    health = client.get("/health").json()
    assert health.pop("backend") in ("onnx", "numpy")
    assert health == {
        "status": "ok",
        "model_name": NAME,
        "model_version": "1",
        "features": 3,
        "classes": 0,
        "task": "regression",
        "integrity": "verified",
    }
    records = _records(new_rows.iloc[:20])
    answer = client.post("/predict", json={"instances": records})
    assert answer.status_code == 200
    body = answer.json()
    assert body["model_version"] == "1" and len(body["predictions"]) == 20
    expected = load_bundle(regression_bundle).predict_values(new_rows.iloc[:20])
    np.testing.assert_allclose(_values(body), expected, rtol=RTOL)
    bad = client.post("/predict", json={"instances": [{"a": 1e300, "b": 1, "c": "x"}]})
    assert bad.status_code == 400 and bad.json()["field"] == "a"
    stats = client.get("/stats")  # drift tracks inputs only: a regressor's are fine too
    assert stats.status_code == 200


def test_a_classifier_still_answers_labels_and_probabilities(digits_bundles, digits_test):
    served = load_serving_model(digits_bundles[0], "1")
    assert not served.regression and "task" not in served.describe()
    answer = _served(served, digits_test.iloc[:2].to_numpy().tolist())
    assert [p.keys() for p in answer["predictions"]] == [{"label", "probabilities"}] * 2
