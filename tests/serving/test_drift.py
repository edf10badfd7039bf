"""Training/serving skew: /stats scores rise when served rows shift away from the training
statistics, and a warning names the drifting feature; in-distribution rows stay quiet."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from components.serving.config import ServeConfig
from components.serving.drift import DriftMonitor, psi
from components.serving.instances import Rows

LOGGER = "components.serving.drift"


def _records(frame):
    frame = frame.drop(columns="label")
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]


@pytest.fixture()
def mixed_client(mixed_bundle, client_for, helpers):
    config = ServeConfig(
        storage_uri=str(mixed_bundle),
        drift_window=400,
        drift_min_rows=200,
        port=helpers.free_port(),
    )
    return client_for(config)


def test_shifted_rows_raise_scores_and_log_a_warning(mixed_client, helpers, caplog):
    client = mixed_client
    caplog.set_level(logging.INFO, logger=LOGGER)
    same = _records(helpers.mixed_frame(400, seed=11))  # drawn like the training rows
    assert client.post("/predict", json={"instances": same}).status_code == 200
    calm = client.get("/stats").json()
    assert calm["rows"] == 400 and calm["model_name"] == "mixed"
    assert calm["drifting"] == [] and "skew" not in caplog.text
    for name in ("x1", "x2", "color"):
        assert calm["features"][name]["psi"] < 0.1, (name, calm["features"][name])
    assert abs(calm["features"]["x1"]["mean_shift_std"]) < 0.25
    assert 0.02 < calm["features"]["x2"]["missing_rate"] < 0.08  # nulls counted as missing

    # x1 moves by three training standard deviations; blue becomes the usual colour
    shifted = _records(helpers.mixed_frame(400, seed=12, shift=3.0, colors=(0.1, 0.1, 0.8)))
    assert client.post("/predict", json={"instances": shifted}).status_code == 200
    drift = client.get("/stats").json()
    x1, color, x2 = (drift["features"][n] for n in ("x1", "color", "x2"))
    assert x1["psi"] > 1.0 and x1["mean_shift_std"] > 2.5 and x1["drifting"]
    assert color["psi"] > 0.5 and color["drifting"]
    assert not x2["drifting"] and x2["psi"] < 0.1
    assert sorted(drift["drifting"]) == ["color", "x1"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "x1 (psi" in warnings[0].getMessage()
    assert "color" in warnings[0].getMessage()
    client.get("/stats")  # already reported: no second warning for the same features
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_unseen_categories_and_window_bound(mixed_bundle, client_for, helpers):
    config = ServeConfig(
        storage_uri=str(mixed_bundle), drift_window=50, drift_min_rows=10, port=helpers.free_port()
    )
    client = client_for(config)
    rows = [{"x1": 0.0, "x2": 3.0, "color": "purple"}] * 30
    for _ in range(3):
        assert client.post("/predict", json={"instances": rows}).status_code == 200
    stats = client.get("/stats").json()
    assert stats["rows"] == 50 and stats["rows_seen"] == 90  # bounded window
    assert stats["features"]["color"]["unseen_rate"] == 1.0
    assert "color" in stats["drifting"]


def test_ring_buffer_keeps_the_latest_rows():
    monitor = DriftMonitor({}, ["a"], [], [], window=10, min_rows=1)
    for start in (0, 7, 14):  # wraps around twice
        values = np.arange(start, start + 7, dtype=np.float64)[:, None]
        monitor.observe(Rows(values, np.zeros((7, 0), np.int32)))
    kept = np.sort(monitor._snapshot()[0][:, 0])
    assert kept.tolist() == list(range(11, 21))
    monitor.observe(Rows(np.arange(25, dtype=np.float64)[:, None], np.zeros((25, 0), np.int32)))
    assert np.sort(monitor._snapshot()[0][:, 0]).tolist() == list(range(15, 25))


def test_tied_deciles_use_the_stored_bin_shares(digits_bundles, digits_test):
    """Digits pixels have point masses, so their decile bins are not tenths: the bundle
    stores each bin's training share, PSI uses it, and the mean shift agrees."""
    from components.serving.model import load_serving_model

    model = load_serving_model(digits_bundles[0], "1", drift={"min_rows": 100})
    x = digits_test.to_numpy()
    model.monitor.observe(Rows(x, np.zeros((len(x), 0), np.int32)))
    calm = model.monitor.report()
    tied = calm["features"]["pixel_0_5"]
    assert tied["psi"] is not None and tied["psi"] < 0.2
    assert calm["drifting"] == []
    constant = calm["features"]["pixel_0_0"]  # always 0 in training: exact reference
    assert constant["psi"] == 0.0
    shifted = x.copy()
    shifted[:, 5] += 8.0  # pixel_0_5
    shifted[:, 0] = 1.0  # pixel_0_0 no longer constant
    model.monitor.observe(Rows(shifted, np.zeros((len(x), 0), np.int32)))
    report = model.monitor.report()
    assert report["features"]["pixel_0_5"]["mean_shift_std"] > 0.5
    assert report["features"]["pixel_0_5"]["psi"] > 0.2
    assert report["features"]["pixel_0_0"]["psi"] > 1.0
    assert {"pixel_0_5", "pixel_0_0"} <= set(report["drifting"])


def test_psi_is_zero_for_equal_shares_and_grows_with_difference():
    even = np.full(4, 0.25)
    assert psi(even, even) == 0.0
    assert (
        0 < psi(np.array([0.3, 0.2, 0.25, 0.25]), even) < psi(np.array([0.7, 0.1, 0.1, 0.1]), even)
    )
