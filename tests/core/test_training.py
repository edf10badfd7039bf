"""The trainer on CPU: it learns, it is deterministic, streaming changes nothing, early
stopping returns the best epoch, the schedule has its shape, sharding covers every row."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from components.core.data.features import fit_preprocessor
from components.core.errors import ConfigError
from components.core.evaluation.metrics import encode_labels
from components.core.training.config import TrainConfig
from components.core.training.loop import fit
from components.core.training.rows import epoch_order, shard_batch
from components.core.training.runtime import Runtime, cpu_thread_count
from components.core.training.schedule import LRSchedule
from components.core.training.train import train_mlp

LABEL = "label"
# One thread: CPU reductions split across threads sum in another order, so bit-identical
# weights are promised for the same thread count; tests pin it.
CPU = {"device": "cpu", "cpu_threads": 1}


@pytest.fixture(scope="module")
def digits_arrays(digits_parts):
    train, val, test = digits_parts["train"], digits_parts["val"], digits_parts["test"]
    pre = fit_preprocessor(train, LABEL)
    classes = sorted(train[LABEL].unique().tolist())
    return {
        "x_train": pre.transform(train),
        "y_train": encode_labels(train[LABEL], classes),
        "x_val": pre.transform(val),
        "y_val": encode_labels(val[LABEL], classes),
        "x_test": pre.transform(test),
        "y_test": encode_labels(test[LABEL], classes),
        "n_classes": len(classes),
    }


def _train(arrays, config, **kwargs):
    return train_mlp(
        arrays["x_train"],
        arrays["y_train"],
        arrays["x_val"],
        arrays["y_val"],
        arrays["n_classes"],
        config,
        **kwargs,
    )


def _noisy(seed: int = 0, n: int = 400, d: int = 10):
    """Few rows with noisy labels: a wide network overfits them within a few epochs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = ((x[:, 0] + rng.normal(scale=1.5, size=n)) > 0).astype(np.int64)
    return {
        "x_train": x[: n // 2],
        "y_train": y[: n // 2],
        "x_val": x[n // 2 :],
        "y_val": y[n // 2 :],
        "n_classes": 2,
    }


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@torch.no_grad()
def _accuracy(network, x, y) -> float:
    logits = network.cpu()(torch.as_tensor(x, dtype=torch.float32))
    return float((logits.argmax(1).numpy() == y).mean())


def test_mlp_learns_digits_to_90_percent_on_cpu(digits_arrays):
    result = _train(digits_arrays, TrainConfig(max_epochs=15, **CPU))
    accuracy = _accuracy(result.network, digits_arrays["x_test"], digits_arrays["y_test"])
    assert accuracy >= 0.9
    assert result.device == "cpu" and result.precision == "fp32"
    assert result.extra["cpu_threads"] == 1
    assert [h["epoch"] for h in result.history] == list(range(1, len(result.history) + 1))


def test_same_seed_same_data_gives_bit_identical_weights(digits_arrays):
    config = TrainConfig(max_epochs=3, **CPU)
    first, second = _train(digits_arrays, config), _train(digits_arrays, config)
    assert _same_weights(first.network, second.network)
    assert [h["val_loss"] for h in first.history] == [h["val_loss"] for h in second.history]
    other = _train(digits_arrays, TrainConfig(max_epochs=3, seed=1, **CPU))
    assert not _same_weights(first.network, other.network)


def test_streaming_from_host_memory_gives_the_same_weights():
    data = _noisy(n=8000, d=64)  # 2 MB of rows and labels: over a 1 MB budget
    resident = _train(data, TrainConfig(max_epochs=2, batch_size=256, **CPU))
    streamed = _train(data, TrainConfig(max_epochs=2, batch_size=256, data_budget_mb=1, **CPU))
    assert not resident.extra["streamed"] and streamed.extra["streamed"]
    assert _same_weights(resident.network, streamed.network)


def test_early_stopping_returns_the_best_epochs_weights_not_the_last():
    data = _noisy()
    config = TrainConfig(
        hidden_sizes=(128, 128),
        dropout=0.0,
        learning_rate=1e-2,
        batch_size=32,
        max_epochs=40,
        patience=3,
        schedule="constant",
        **CPU,
    )
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def keep(event) -> None:
        snapshots[event.epoch] = {k: v.clone() for k, v in event.network.state_dict().items()}

    result = _train(data, config, on_epoch_end=keep)
    last = len(result.history)
    assert result.extra["stop_reason"] == "early_stopping" and result.stopped_early
    assert result.best_epoch == last - config.patience
    losses = [h["val_loss"] for h in result.history]
    assert result.best_val_loss == min(losses) == losses[result.best_epoch - 1]
    weights = result.network.state_dict()
    assert all(torch.equal(weights[k], snapshots[result.best_epoch][k]) for k in weights)
    assert not all(torch.equal(weights[k], snapshots[last][k]) for k in weights)


def test_on_epoch_end_returning_true_stops_training(digits_arrays):
    seen = []

    def stop_at_two(event) -> bool:
        seen.append((event.epoch, event.record["val_accuracy"], event.network.training))
        return event.epoch == 2

    result = _train(digits_arrays, TrainConfig(max_epochs=10, **CPU), on_epoch_end=stop_at_two)
    assert len(result.history) == 2 and result.extra["stop_reason"] == "on_epoch_end"
    assert [s[0] for s in seen] == [1, 2] and not any(s[2] for s in seen)
    assert seen[1][1] == result.history[1]["val_accuracy"]


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "constant"])
def test_learning_rate_schedule_shapes(schedule):
    config = TrainConfig(learning_rate=0.1, schedule=schedule, warmup_fraction=0.1)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = LRSchedule(optimizer, config, total=100)
    rates = []
    for _ in range(100):
        rates.append(optimizer.param_groups[0]["lr"])
        sched.step()
    peak = max(rates)
    assert peak == pytest.approx(0.1)
    if schedule == "constant":
        assert set(rates) == {0.1}
        return
    top = rates.index(peak)
    assert 5 <= top <= 10  # the warm-up ends near 10% of the steps
    assert all(a <= b for a, b in zip(rates[:top], rates[1 : top + 1], strict=True))
    assert all(a >= b for a, b in zip(rates[top:], rates[top + 1 :], strict=False))
    assert sched.last_rate() < 0.1 / 1000  # annealed to (almost) nothing
    if schedule == "onecycle":
        assert rates[0] == pytest.approx(0.1 / 25)


def test_schedule_state_round_trips():
    config = TrainConfig(learning_rate=0.1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = LRSchedule(opt, config, total=50)
    for _ in range(17):
        sched.step()
    other_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    other = LRSchedule(other_opt, config, total=50)
    other.load_state_dict(sched.state_dict())
    assert other_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    with pytest.raises(ValueError):
        LRSchedule(other_opt, config, total=60).load_state_dict(sched.state_dict())


def test_schedule_fills_a_tensor_learning_rate_in_place():
    # The CUDA graph path captures the optimiser with a device-tensor rate: the schedule must
    # write into that very tensor, never replace it.
    rate = torch.tensor(1.0)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=rate, fused=True)
    sched = LRSchedule(opt, TrainConfig(learning_rate=0.1), total=20)
    for _ in range(7):
        sched.step()
    assert opt.param_groups[0]["lr"] is rate
    assert float(rate) == pytest.approx(sched.rate(7))


def test_graph_warm_up_is_undone_exactly():
    """The CUDA graph is captured after a few warm-up steps on dummy data; _restore must put
    weights and optimiser state back so that training continues as if they never ran."""
    from components.core.training.step import _restore, _snapshot

    def setup():
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 3)
        return net, torch.optim.AdamW(net.parameters(), lr=0.1, fused=True)

    def train(net, opt, steps, seed):
        gen = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            net(torch.randn(8, 4, generator=gen)).square().mean().backward()
            opt.step()

    for resumed in (False, True):  # no optimiser state yet / state from earlier steps
        reference, ref_opt = setup()
        warmed, opt = setup()
        if resumed:
            train(reference, ref_opt, 2, seed=1)
            train(warmed, opt, 2, seed=1)
        saved = _snapshot(warmed, opt)
        train(warmed, opt, 3, seed=2)  # the warm-up
        _restore(saved, warmed, opt)
        train(reference, ref_opt, 2, seed=3)
        train(warmed, opt, 2, seed=3)
        assert _same_weights(reference, warmed)
        for p_ref, p in zip(reference.parameters(), warmed.parameters(), strict=True):
            for key, value in ref_opt.state[p_ref].items():
                assert torch.equal(value, opt.state[p][key])


@pytest.mark.parametrize(("rows", "world"), [(512, 4), (10, 4), (7, 2), (3, 3), (1, 1)])
def test_shards_cover_the_global_batch_once_with_sizes_within_one(rows, world):
    batch = torch.randperm(1000)[:rows]
    shards = [shard_batch(batch, rank, world) for rank in range(world)]
    assert torch.equal(torch.cat(shards), batch)
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


def test_epoch_order_depends_only_on_seed_and_epoch():
    assert torch.equal(epoch_order(100, 0, 3), epoch_order(100, 0, 3))
    assert not torch.equal(epoch_order(100, 0, 3), epoch_order(100, 0, 4))
    assert not torch.equal(epoch_order(100, 0, 3), epoch_order(100, 1, 3))
    assert sorted(epoch_order(100, 5, 0).tolist()) == list(range(100))


def test_runtime_is_resolved_once_from_the_config():
    runtime = Runtime.resolve(TrainConfig(device="cpu", cpu_threads=3))
    assert runtime.device.type == "cpu" and runtime.precision == "fp32" and runtime.threads == 3
    assert runtime.data_dtype == torch.float32
    assert Runtime.resolve(TrainConfig(device="cpu", precision="bf16")).precision == "bf16"
    with pytest.raises(ConfigError, match="fp16"):
        Runtime.resolve(TrainConfig(device="cpu", precision="fp16"))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            Runtime.resolve(TrainConfig(device="cuda"))


def test_cpu_thread_count_is_within_the_cores_this_process_may_use():
    assert cpu_thread_count(5) == 5
    auto = cpu_thread_count()
    assert 1 <= auto <= max(1, len(__import__("os").sched_getaffinity(0)))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("batch_size", -1),
        ("dropout", -0.5),
        ("patience", -1),
        ("schedule", "step"),
        ("precision", "fp8"),
        ("dropout", 1.0),
        ("warmup_fraction", 1.0),
        ("cpu_threads", -1),
        ("data_budget_mb", -1),
        ("distributed", "always"),
    ],
)
def test_invalid_config_names_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainConfig(**{field: value})


def test_compile_on_cpu_is_reported_and_skipped(caplog):
    data = _noisy(n=200)
    config = TrainConfig(hidden_sizes=(8,), max_epochs=1, compile=True, **CPU)
    caplog.set_level(logging.WARNING)
    result = train_mlp(data["x_train"], data["y_train"], data["x_val"], data["y_val"], 2, config)
    assert len(result.history) == 1
    assert "compile=True applies to CUDA only" in caplog.text


def test_config_round_trips_through_json():
    config = TrainConfig(hidden_sizes=(64, 32), seed=7, cuda_graphs=False)
    assert TrainConfig.from_json(config.to_json()) == config


def test_labels_outside_the_classes_are_rejected(digits_arrays):
    bad = dict(digits_arrays, y_train=digits_arrays["y_train"] + 1)
    with pytest.raises(ConfigError, match="class indices"):
        _train(bad, TrainConfig(max_epochs=1, **CPU))


@pytest.mark.slow
def test_two_gloo_processes_match_one_process():
    """The DDP path on CPU: 2 ranks over gloo, each on its half of every global batch.

    Without dropout, the gradient is the mean over the same global batch either way, so the
    weights agree with one process up to float summation order.
    """
    from components.core.training import distributed

    data = _noisy(n=1200, d=16)
    config = TrainConfig(dropout=0.0, max_epochs=2, batch_size=64, **CPU)
    args = (data["x_train"], data["y_train"], data["x_val"], data["y_val"], 2, config)
    two = distributed.launch(*args, nproc=2, timeout=300)
    one = train_mlp(*args)
    assert two.extra["world_size"] == 2 and len(two.history) == 2
    for key, value in one.network.state_dict().items():
        torch.testing.assert_close(two.network.state_dict()[key], value, atol=1e-5, rtol=1e-4)
    assert two.history[-1]["train_loss"] == pytest.approx(one.history[-1]["train_loss"], rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["mse", "huber"])
def test_two_gloo_processes_train_a_regressor_as_one_process(loss):
    """A regressor's DDP path on CPU (what several GPUs run): the same objective on every
    rank, float targets sharded like class indices, the same weights as one process."""
    from components.core.training import distributed
    from components.core.training.objective import objective

    rng = np.random.default_rng(3)
    x = rng.normal(size=(1200, 16)).astype(np.float32)
    y = (x[:, 0] * 2 - x[:, 1] + rng.standard_t(3, size=1200) * 0.5).astype(np.float32)
    config = TrainConfig(dropout=0.0, max_epochs=2, batch_size=64, **CPU)
    args = (x[:800], y[:800], x[800:], y[800:], 1, config)
    two = distributed.launch(*args, nproc=2, timeout=300, obj=objective(loss))
    one = fit(*args, Runtime.resolve(config), objective=objective(loss))
    assert two.extra["world_size"] == 2
    for key, value in one.network.state_dict().items():
        torch.testing.assert_close(two.network.state_dict()[key], value, atol=1e-5, rtol=1e-4)
    assert two.history[-1]["val_loss"] == pytest.approx(one.history[-1]["val_loss"], rel=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("graphs", [True, False])
def test_cuda_training_learns_digits(digits_arrays, graphs, caplog):
    caplog.set_level(logging.WARNING)
    config = TrainConfig(max_epochs=15, device="cuda", cuda_graphs=graphs, distributed="off")
    result = _train(digits_arrays, config)
    assert result.precision == "bf16" and result.extra["cuda_graph"] == graphs
    assert _accuracy(result.network, digits_arrays["x_test"], digits_arrays["y_test"]) >= 0.9
    assert "capture failed" not in caplog.text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_streaming_learns_digits(digits_arrays):
    config = TrainConfig(max_epochs=15, device="cuda", data_budget_mb=1, distributed="off")
    result = _train(digits_arrays, config)
    assert result.extra["streamed"]
    assert _accuracy(result.network, digits_arrays["x_test"], digits_arrays["y_test"]) >= 0.9


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.gpu
@CUDA
def test_cuda_fp16_with_gradient_scaler_learns_digits(digits_arrays, caplog):
    """The pre-Ampere path (a T4, Vertex's default accelerator): fp16 autocast with a
    gradient scaler, eager steps, since a skipped step on overflow cannot be captured."""
    caplog.set_level(logging.WARNING)
    config = TrainConfig(max_epochs=15, device="cuda", precision="fp16", distributed="off")
    result = _train(digits_arrays, config)
    assert result.precision == "fp16" and result.extra["cuda_graph"] is False
    assert _accuracy(result.network, digits_arrays["x_test"], digits_arrays["y_test"]) >= 0.9


@pytest.mark.gpu
@CUDA
def test_cuda_graph_replay_trains_like_eager_steps(digits_arrays, caplog):
    """Without dropout both paths run the same kernels on the same batches: the weights
    agree closely. This also checks that the capture's warm-up steps were undone."""
    caplog.set_level(logging.WARNING)
    base = {"max_epochs": 3, "dropout": 0.0, "device": "cuda", "distributed": "off"}
    graph = _train(digits_arrays, TrainConfig(cuda_graphs=True, **base))
    eager = _train(digits_arrays, TrainConfig(cuda_graphs=False, **base))
    assert graph.extra["cuda_graph"] and not eager.extra["cuda_graph"]
    assert "capture failed" not in caplog.text
    for key, value in eager.network.state_dict().items():
        torch.testing.assert_close(graph.network.state_dict()[key], value, atol=2e-3, rtol=2e-2)


@pytest.mark.gpu
@CUDA
def test_cuda_graph_run_resumes_from_its_checkpoint(digits_arrays, tmp_path, caplog):
    """Stop after epoch 2 (as a preempted task would), start again: the second run resumes
    there, re-captures its graph around the restored optimiser and learns as well."""
    caplog.set_level(logging.INFO)
    config = TrainConfig(max_epochs=8, patience=8, device="cuda", distributed="off")
    first = _train(
        digits_arrays, config, checkpoint_dir=tmp_path, on_epoch_end=lambda e: e.epoch == 2
    )
    assert len(first.history) == 2 and first.extra["cuda_graph"]
    second = _train(digits_arrays, config, checkpoint_dir=tmp_path)
    assert second.resumed_from_epoch == 2 and len(second.history) == 8
    assert second.extra["cuda_graph"]
    assert second.history[:2] == first.history
    assert _accuracy(second.network, digits_arrays["x_test"], digits_arrays["y_test"]) >= 0.9


@pytest.mark.gpu
@CUDA
def test_cuda_torch_compile_learns_digits(digits_arrays):
    config = TrainConfig(max_epochs=10, device="cuda", compile=True, distributed="off")
    result = _train(digits_arrays, config)
    assert _accuracy(result.network, digits_arrays["x_test"], digits_arrays["y_test"]) >= 0.9
