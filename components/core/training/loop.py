"""The training loop: one process's part of a run, from fresh or resumed weights to the best
epoch's.

``fit`` reads in the order a run goes: torch's switches, the network and its optimiser (or
the checkpoint's), the rows, the train step, then epochs until ``max_epochs``, early
stopping on validation loss or an ``on_epoch_end`` hook that returns True (benchmarks use
it to stop at a target accuracy). The best epoch's weights come back. A checkpoint is
saved after every epoch when a directory is given. ``train.train_mlp`` calls ``fit`` once;
``distributed`` calls it once per rank.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from components.core import progress
from components.core.model.mlp import MLP, MLPConfig
from components.core.training.checkpoint import (
    Checkpointer,
    TrainState,
    agree,
    run_fingerprint,
)
from components.core.training.config import TrainConfig
from components.core.training.objective import CLASSIFY, Objective
from components.core.training.rows import (
    EVAL_ROWS,
    Rows,
    derived_seed,
    epoch_order,
    place_rows,
    shard_batch,
)
from components.core.training.runtime import Runtime, configure_torch
from components.core.training.schedule import LRSchedule
from components.core.training.step import (
    GraphStep,
    Step,
    Totals,
    capture_graph,
    make_optimizer,
    make_step,
    use_cuda_graphs,
    wrap_network,
)

log = logging.getLogger(__name__)

__all__ = ["EpochEnd", "EpochHook", "TrainResult", "fit"]

PROGRESS_SECONDS = 10.0  # at most one epoch line per this many seconds (first one always)


@dataclass
class TrainResult:
    network: MLP
    history: list[dict[str, float]]
    best_epoch: int
    best_val_loss: float
    device: str
    precision: str
    resumed_from_epoch: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EpochEnd:
    """What an ``on_epoch_end`` hook is given; the hook returns True to stop training."""

    epoch: int  # epochs completed so far (1-based)
    record: dict[str, float]  # this epoch's history row (losses, accuracies, seconds)
    network: MLP  # the current weights in eval mode: read them, do not train them
    runtime: Runtime  # device and precision the network runs with


EpochHook = Callable[[EpochEnd], "bool | None"]


def fit(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    config: TrainConfig,
    runtime: Runtime,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    on_epoch_end: EpochHook | None = None,
    rank: int = 0,
    world: int = 1,
    objective: Objective = CLASSIFY,
) -> TrainResult:
    """One process's part of a training run (the whole run when ``world == 1``).

    ``objective``: classification on class indices (``n_classes`` outputs), or regression
    on a float target (``n_classes`` = 1 output; ``training.objective``).

    With ``world > 1`` the default process group must be initialised; every rank returns
    the same result and only rank 0 writes checkpoints.
    """
    started = time.perf_counter()
    configure_torch(config, runtime)
    n, n_features = x_train.shape
    config = config.for_rows(n)  # automatic (0) batch size, epoch limit and patience
    batch = config.batch_size
    graphs = use_cuda_graphs(config, runtime, world)
    mlp_config = MLPConfig(n_features, n_classes, config.hidden_sizes, config.dropout)
    total_steps = math.ceil(n / batch) * config.max_epochs

    model, optimizer, schedule, scaler = _fresh(mlp_config, config, runtime, graphs, total_steps)
    state = TrainState()
    ckpt = None
    if checkpoint_dir:
        fingerprint = run_fingerprint(config, runtime, world, x_train, y_train, x_val, y_val)
        if objective.regression:  # MSE and Huber runs on the same data are different runs
            fingerprint["objective"] = objective.name
        ckpt = Checkpointer(checkpoint_dir, fingerprint)
        resumed = ckpt.load(model, optimizer, schedule, scaler)
        if world > 1:
            resumed = agree(resumed, runtime.device)
        if resumed is not None:
            state = resumed
            log.info("resumed training from checkpoint after epoch %d", state.epoch)
        else:
            # A failed load may have changed some of the states: start again from the seed.
            model, optimizer, schedule, scaler = _fresh(
                mlp_config, config, runtime, graphs, total_steps
            )
    resumed_from = state.epoch

    train_rows, val_rows, streaming = place_rows(
        x_train, y_train, x_val, y_val, config, runtime, world, objective.label_dtype
    )
    net = wrap_network(model, config, runtime, world)
    totals = Totals(runtime.device, objective)
    step = make_step(net, optimizer, scaler, runtime, totals)
    graph = None
    if graphs and state.epoch < config.max_epochs and n >= batch:
        graph = capture_graph(step, model, optimizer, totals, batch, n_features, runtime)
    if rank == 0:
        progress.report(
            "train", _start_line(config, runtime, n, n_features, streaming, graph, world)
        )
    show = progress.Throttle(PROGRESS_SECONDS)

    stop_reason = "max_epochs"
    while state.epoch < config.max_epochs:
        if state.bad_epochs >= config.patience:
            stop_reason = "early_stopping"
            break
        epoch_start = time.perf_counter()
        # Batch order and dropout are drawn from (seed, epoch[, rank]): a resumed epoch
        # repeats exactly what the interrupted one drew, with no RNG state to carry over.
        order = epoch_order(n, config.seed, state.epoch, train_rows.index_device)
        torch.manual_seed(derived_seed("dropout", config.seed, state.epoch, rank))
        net.train()
        train_loss, train_correct = train_epoch(
            order, batch, train_rows, step, graph, optimizer, schedule, totals, rank, world
        )
        train_seconds = time.perf_counter() - epoch_start
        val_loss, val_acc = evaluate(model, val_rows, runtime, rank, world, objective)
        state.epoch += 1
        record = {
            "epoch": state.epoch,
            "train_loss": train_loss / n,
            "train_accuracy": train_correct / n,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "learning_rate": schedule.last_rate(),
            "seconds": time.perf_counter() - epoch_start,
            "train_seconds": train_seconds,
            "samples_per_second": n / max(train_seconds, 1e-9),
        }
        state.history.append(record)
        if val_loss < state.best_val_loss - 1e-12:
            state.best_val_loss, state.best_epoch, state.bad_epochs = val_loss, state.epoch, 0
            state.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            state.bad_epochs += 1
        if rank == 0 and show(force=state.epoch == config.max_epochs):
            progress.report(
                "train", _epoch_line(state, config, time.perf_counter() - started, objective)
            )
        if ckpt is not None and rank == 0:
            ckpt.save(state, model, optimizer, schedule, scaler)
        if on_epoch_end is not None and on_epoch_end(
            EpochEnd(state.epoch, dict(record), model, runtime)
        ):
            stop_reason = "on_epoch_end"
            break

    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    model.eval()
    seconds = time.perf_counter() - started
    if rank == 0 and state.history:
        progress.report("train", _end_line(state, stop_reason, seconds, objective))
    return TrainResult(
        network=model,
        history=state.history,
        best_epoch=state.best_epoch,
        best_val_loss=state.best_val_loss,
        device=runtime.device.type,
        precision=runtime.precision,
        resumed_from_epoch=resumed_from,
        seconds=seconds,
        stopped_early=state.epoch < config.max_epochs,
        extra={
            "stop_reason": stop_reason,
            "streamed": streaming,
            "cuda_graph": graph is not None,
            "world_size": world,
            "cpu_threads": runtime.threads,
            "train_config": config.to_json(),  # with the automatic values filled in
        },
    )


def _fresh(
    mlp_config: MLPConfig, config: TrainConfig, runtime: Runtime, graphs: bool, total_steps: int
) -> tuple[MLP, Any, LRSchedule, torch.amp.GradScaler]:
    """The network at its seeded initial weights, with a new optimiser, schedule and scaler."""
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    model = MLP(mlp_config).to(runtime.device)
    optimizer = make_optimizer(model, config, graphs)
    schedule = LRSchedule(optimizer, config, total_steps)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.precision == "fp16")
    return model, optimizer, schedule, scaler


def train_epoch(
    order: torch.Tensor,
    batch: int,
    rows: Rows,
    step: Step,
    graph: GraphStep | None,
    optimizer: torch.optim.Optimizer,
    schedule: LRSchedule,
    totals: Totals,
    rank: int,
    world: int,
) -> tuple[float, float]:
    """One pass over ``order`` in global batches; returns the summed loss and correct count.

    Nothing in the loop waits for the device: losses and counts add up on it and are read
    once at the end."""
    totals.zero()
    n = order.shape[0]
    for start in range(0, n, batch):
        size = min(batch, n - start)
        if size >= world:  # a final batch smaller than the world is skipped by all ranks
            idx = order[start : start + size]
            if world > 1:
                idx = shard_batch(idx, rank, world)
            if graph is not None and size == batch:
                rows.gather(idx, out=(graph.x, graph.y))
                graph.replay()
            else:
                xb, yb = rows.gather(idx)
                optimizer.zero_grad(set_to_none=True)
                step(xb, yb, world / size)
        schedule.step()
    sums = torch.stack([totals.loss, totals.correct.double()])
    if world > 1:
        torch.distributed.all_reduce(sums)
    loss, correct = sums.tolist()  # the one host sync of the epoch
    return loss, correct


@torch.no_grad()
def evaluate(
    model: nn.Module,
    rows: Rows,
    runtime: Runtime,
    rank: int = 0,
    world: int = 1,
    objective: Objective = CLASSIFY,
) -> tuple[float, float]:
    """Mean loss and accuracy over all rows (each rank scores its share; sums all-reduced)."""
    model.eval()
    lo, hi = rows.n * rank // world, rows.n * (rank + 1) // world
    loss = torch.zeros((), dtype=torch.float64, device=runtime.device)
    correct = torch.zeros((), dtype=torch.float64, device=runtime.device)
    for start in range(lo, hi, EVAL_ROWS):
        xb, yb = rows.rows(start, min(hi, start + EVAL_ROWS))
        with runtime.autocast():
            logits = model(xb)
        loss += objective.loss_sum(logits, yb)
        correct += objective.correct(logits, yb)
    if world > 1:
        both = torch.stack([loss, correct])
        torch.distributed.all_reduce(both)
        loss, correct = both[0], both[1]
    n = max(rows.n, 1)
    return float(loss) / n, float(correct) / n  # the one host sync of an evaluation


# --- progress lines ------------------------------------------------------------------------


def _start_line(
    config: TrainConfig,
    runtime: Runtime,
    n: int,
    n_features: int,
    streaming: bool,
    graph: GraphStep | None,
    world: int,
) -> str:
    """How the run trains, before the first epoch."""
    return (
        f"on {runtime.device} ({runtime.precision}"
        f"{f', {runtime.threads} thread' if runtime.threads else ''}"
        f"{'s' if runtime.threads and runtime.threads != 1 else ''}), {n:,} rows x "
        f"{n_features:,} features, batch {config.batch_size:,}, up to {config.max_epochs} "
        f"epochs, {'streamed from host memory' if streaming else 'data on the device'}, "
        f"{'CUDA graph' if graph is not None else 'eager steps'}"
        f"{f', {world} processes' if world > 1 else ''}"
    )


def _accuracy(h: dict[str, float], objective: Objective) -> str:
    """ ", val accuracy 0.9875", or nothing for a regressor (its score is its loss, in
    standardised units)."""
    return "" if objective.regression else f", val accuracy {h['val_accuracy']:.4f}"


def _epoch_line(
    state: TrainState, config: TrainConfig, elapsed: float, objective: Objective = CLASSIFY
) -> str:
    """One epoch for the progress log, with an upper bound of the time left."""
    h = state.history[-1]
    per_epoch = sum(r["seconds"] for r in state.history) / len(state.history)
    left = (config.max_epochs - state.epoch) * per_epoch
    return (
        f"epoch {state.epoch}/{config.max_epochs}: train loss {h['train_loss']:.4f}, val loss "
        f"{h['val_loss']:.4f}{_accuracy(h, objective)}, "
        f"{h['samples_per_second']:,.0f} rows/s, {progress.duration(elapsed)} so far, "
        + (f"at most {progress.duration(left)} left" if left > 0 else "done")
    )


def _end_line(
    state: TrainState, stop_reason: str, seconds: float, objective: Objective = CLASSIFY
) -> str:
    """Why and when the run stopped, and its best epoch."""
    best = state.history[max(state.best_epoch, 1) - 1]
    return (
        f"stopped after {state.epoch} epochs ({stop_reason.replace('_', ' ')}) in "
        f"{progress.duration(seconds)}: best epoch {state.best_epoch}, val loss "
        f"{best['val_loss']:.4f}{_accuracy(best, objective)}"
    )
