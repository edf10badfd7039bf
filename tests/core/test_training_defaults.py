"""Automatic batch size, epoch limit and patience (a budget of rows seen), and temperature
scaling fitted on the validation rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from components.core.model.mlp import MLP, MLPConfig
from components.core.model.mlp_numpy import forward, read_layers, transposed
from components.core.training.calibrate import fit_temperature, nll
from components.core.training.config import (
    PATIENCE_SAMPLES,
    SAMPLE_BUDGET,
    TrainConfig,
)
from components.core.training.train import train_mlp


@pytest.mark.parametrize("rows", [50, 1_092, 20_000, 200_000, 600_000, 1_000_000, 10**8])
def test_automatic_settings_follow_a_budget_of_rows_seen(rows):
    config = TrainConfig().for_rows(rows)
    assert 128 <= config.batch_size <= 4096
    assert config.batch_size & (config.batch_size - 1) == 0  # a power of two
    # the rows seen stay within the budget unless the 60-epoch cap or the 1-epoch floor binds
    seen = config.max_epochs * rows
    assert seen >= min(SAMPLE_BUDGET, 60 * rows)
    assert seen < SAMPLE_BUDGET + rows or config.max_epochs == 1
    patience_seen = config.patience * rows
    assert patience_seen >= min(PATIENCE_SAMPLES, 10 * rows)
    assert patience_seen < PATIENCE_SAMPLES + rows or config.patience == 1


def test_small_data_keeps_the_digits_settings_and_large_data_takes_few_epochs():
    digits = TrainConfig().for_rows(1_092)
    assert (digits.batch_size, digits.max_epochs, digits.patience) == (128, 60, 10)
    assert (digits.learning_rate, digits.dropout) == (3e-3, 0.1)
    big = TrainConfig().for_rows(600_000)
    assert big.batch_size >= 1024 and big.max_epochs <= 5 and big.patience == 1
    assert big.dropout == 0.0
    assert TrainConfig(dropout=0.2).for_rows(600_000).dropout == 0.2


def test_learning_rate_grows_with_the_square_root_of_the_batch_up_to_a_cap():
    assert TrainConfig().for_rows(1_092).learning_rate == pytest.approx(3e-3)
    assert TrainConfig(batch_size=512).for_rows(1_092).learning_rate == pytest.approx(6e-3)
    assert TrainConfig().for_rows(600_000).learning_rate == pytest.approx(1e-2)
    assert TrainConfig(learning_rate=1e-4).for_rows(600_000).learning_rate == 1e-4


def test_values_set_by_hand_are_kept():
    config = TrainConfig(batch_size=64, max_epochs=3, patience=2).for_rows(10**6)
    assert (config.batch_size, config.max_epochs, config.patience) == (64, 3, 2)


def test_training_records_the_settings_it_used():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    result = train_mlp(
        x[:200], y[:200], x[200:], y[200:], 2, TrainConfig(device="cpu", max_epochs=2)
    )
    used = result.extra["train_config"]
    assert (used["batch_size"], used["max_epochs"], used["patience"]) == (128, 2, 10)


def _logits(seed: int, n: int = 2000, k: int = 4, scale: float = 6.0):
    """Over-confident logits: the true class is the argmax only 60% of the time."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * scale
    y = rng.integers(0, k, n)
    right = rng.random(n) < 0.6
    y[right] = z[right].argmax(1)
    return z, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_temperature_minimises_the_validation_nll_as_scipy_finds_it(seed):
    z, y = _logits(seed)
    found = fit_temperature(z, y)
    ref = minimize_scalar(
        lambda t: nll(z, y, t), bounds=(0.05, 20), method="bounded", options={"xatol": 1e-9}
    )
    assert found == pytest.approx(ref.x, rel=1e-4)
    assert found > 1  # over-confident logits are softened
    assert nll(z, y, found) < nll(z, y)


def test_temperature_of_degenerate_logits_is_one():
    assert fit_temperature(np.zeros((5, 3)), np.zeros(5, np.int64)) == 1.0
    assert fit_temperature(np.zeros((0, 3)), np.zeros(0, np.int64)) == 1.0


def test_nll_matches_torch_cross_entropy():
    z, y = _logits(3, n=50)
    ref = torch.nn.functional.cross_entropy(torch.tensor(z / 2.5), torch.tensor(y)).item()
    assert nll(z, y, 2.5) == pytest.approx(ref, rel=1e-9)


def test_trained_network_is_calibrated_and_every_reader_applies_it():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6)).astype(np.float32)
    y = ((x[:, 0] + rng.normal(scale=1.0, size=600)) > 0).astype(np.int64)  # noisy labels
    config = TrainConfig(device="cpu", hidden_sizes=(64, 64), dropout=0.0, max_epochs=20)
    result = train_mlp(x[:300], y[:300], x[300:], y[300:], 2, config)
    cal = result.extra["calibration"]
    t = result.network.config.temperature
    assert cal["temperature"] == pytest.approx(t, rel=1e-5) and t != 1.0
    with torch.no_grad():
        raw = result.network.net(torch.as_tensor(x[300:])).numpy()
    assert t == pytest.approx(fit_temperature(raw, y[300:]), rel=1e-6)
    assert cal["val_log_loss_after"] < cal["val_log_loss_before"]
    # the torch module and the numpy forward pass (evaluate, predict, serve) agree
    weights = {k: v.numpy() for k, v in result.network.state_dict().items()}
    layers = read_layers(weights, result.network.config.to_json(), "test")
    proba = forward(x[300:].copy(), transposed(layers, np.float32))
    with torch.no_grad():
        ref = torch.softmax(result.network(torch.as_tensor(x[300:])), 1).numpy()
    np.testing.assert_allclose(proba, ref, atol=1e-5)
    assert nll(np.log(proba), y[300:]) == pytest.approx(cal["val_log_loss_after"], abs=1e-4)


def test_old_model_config_without_temperature_reads_as_one():
    config = MLPConfig(3, 2, (4,), 0.0).to_json()
    del config["temperature"]
    assert MLPConfig.from_json(config).temperature == 1.0
    torch.manual_seed(0)
    weights = {k: v.numpy() for k, v in MLP(MLPConfig(3, 2, (4,), 0.0)).state_dict().items()}
    plain = read_layers(weights, config, "test")
    hot = read_layers(weights, config | {"temperature": 2.0}, "test")
    np.testing.assert_allclose(hot[-1][0], plain[-1][0] / 2, rtol=1e-6)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "2", True])
def test_bundle_with_a_bad_temperature_is_refused_in_one_line(bad):
    from components.core.errors import RegistryError

    weights = {k: v.numpy() for k, v in MLP(MLPConfig(3, 2, (4,), 0.0)).state_dict().items()}
    config = MLPConfig(3, 2, (4,), 0.0).to_json() | {"temperature": bad}
    with pytest.raises(RegistryError, match="temperature"):
        read_layers(weights, config, "test")


def test_regressor_learns_a_nonlinear_target_in_its_own_unit():
    from components.core.training.train import train_regressor

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 4)).astype(np.float32)
    y = 1000 + 300 * (np.sin(2 * x[:, 0]) + x[:, 1] ** 2) + rng.normal(scale=30, size=1500)
    config = TrainConfig(device="cpu", cpu_threads=1, max_epochs=40)
    results = {
        loss: train_regressor(x[:1000], y[:1000], x[1000:1250], y[1000:1250], config, loss=loss)
        for loss in ("mse", "huber")
    }
    for loss, result in results.items():
        assert result.network.config.task == "regression"
        assert result.extra["target"]["loss"] == loss
        with torch.no_grad():
            pred = result.network(torch.as_tensor(x[1250:]))[:, 0].numpy()
        rmse = float(np.sqrt(np.mean((pred - y[1250:]) ** 2)))
        linear = np.linalg.lstsq(np.column_stack([np.ones(1000), x[:1000]]), y[:1000], rcond=None)[
            0
        ]
        linear_rmse = float(
            np.sqrt(np.mean((np.column_stack([np.ones(250), x[1250:]]) @ linear - y[1250:]) ** 2))
        )
        assert rmse < 0.5 * linear_rmse, (loss, rmse, linear_rmse)  # it learned the curve


def test_regressor_refuses_a_target_that_is_not_finite():
    from components.core.errors import ConfigError
    from components.core.training.train import train_regressor

    x = np.zeros((10, 2), np.float32)
    y = np.arange(10.0)
    y[3] = np.inf
    with pytest.raises(ConfigError, match="not finite"):
        train_regressor(x, y, x, np.arange(10.0), TrainConfig(device="cpu", max_epochs=1))


def test_bundle_stores_the_temperature_and_every_scorer_applies_it(tmp_path, digits_parts):
    from components.core.data.features import fit_preprocessor
    from components.core.model.bundle import load_bundle
    from components.core.steps import train_frames

    train, val = digits_parts["train"], digits_parts["val"]
    config = TrainConfig(device="cpu", cpu_threads=1, max_epochs=6)
    train_frames(train, val, fit_preprocessor(train, "label"), "label", config, tmp_path / "m")
    bundle = load_bundle(tmp_path / "m")
    t = bundle.meta["model_config"]["temperature"]
    assert bundle.meta["calibration"]["temperature"] == pytest.approx(t, rel=1e-5)
    assert t != 1.0
    used = bundle.meta["train_config"]  # the automatic values as the run set them
    assert (used["batch_size"], used["max_epochs"], used["patience"]) == (128, 6, 10)
    # numpy scoring (evaluate, predict, serve) = the torch module = softmax(raw logits / T)
    x = bundle.transform(digits_parts["test"])
    with torch.no_grad():
        raw = bundle.network.net(torch.as_tensor(x))
        expected = torch.softmax(raw / t, 1).numpy()
        module = torch.softmax(bundle.network(torch.as_tensor(x)), 1).numpy()
    np.testing.assert_allclose(bundle.predict_proba_matrix(x), expected, atol=2e-6)
    np.testing.assert_allclose(module, expected, atol=2e-6)
    # the server, with either backend, answers the same calibrated probabilities
    import json

    from components.serving.model import load_serving_model

    rows = digits_parts["test"][bundle.features].head(5)
    body = json.dumps({"instances": rows.to_numpy().tolist()}).encode()
    for backend in ("numpy", "onnx"):
        served = json.loads(
            load_serving_model(tmp_path / "m", backend=backend).predict_body(body, 10)
        )
        got = np.array(
            [[p["probabilities"][str(c)] for c in bundle.classes] for p in served["predictions"]]
        )
        np.testing.assert_allclose(got, expected[:5], atol=1e-5)
