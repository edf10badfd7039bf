"""Train the MLP on tabular rows: ``train_mlp`` checks the arrays, resolves the device and
precision once, and trains in this process (``loop.fit``) or, on a host with several GPUs,
in one process per GPU (``distributed.launch``)."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch

from components.core.errors import ConfigError
from components.core.training import distributed
from components.core.training.calibrate import fit_temperature, nll
from components.core.training.config import TrainConfig
from components.core.training.loop import EpochHook, TrainResult, fit
from components.core.training.objective import CLASSIFY, Objective, objective
from components.core.training.rows import EVAL_ROWS
from components.core.training.runtime import Runtime

log = logging.getLogger(__name__)

__all__ = ["train_mlp", "train_regressor"]


def train_mlp(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    *,
    on_epoch_end: EpochHook | None = None,
) -> TrainResult:
    """Train an MLP on integer class indices; returns the best network (on val loss), its
    temperature fitted on the validation rows (``calibrate``).

    ``config``'s automatic (0) batch size, epoch limit and patience are set from the number
    of training rows (``TrainConfig.for_rows``).

    With a ``checkpoint_dir`` the run saves a checkpoint after every epoch and resumes from a
    valid one found there. ``on_epoch_end`` is called after each epoch's evaluation and
    checkpoint; returning True stops training. On a host with several GPUs (and
    ``config.distributed == "auto"``, no hook) training runs as one process per GPU.
    """
    _check_inputs(x_train, y_train, x_val, y_val, n_classes)
    config = config.for_rows(x_train.shape[0])  # automatic batch, epochs, patience
    result = _fit_here_or_on_every_gpu(
        x_train, y_train, x_val, y_val, n_classes, config, checkpoint_dir, on_epoch_end, CLASSIFY
    )
    return calibrate(result, x_val, y_val)


def _fit_here_or_on_every_gpu(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_outputs: int,
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike[str] | None,
    on_epoch_end: EpochHook | None,
    obj: Objective,
) -> TrainResult:
    """``loop.fit`` in this process, or one process per GPU on a host with several (and
    ``config.distributed == "auto"``, no device index, no hook: a hook cannot cross
    processes)."""
    runtime = Runtime.resolve(config)
    gpus = torch.cuda.device_count() if runtime.device.type == "cuda" else 0
    if config.distributed == "auto" and gpus > 1 and runtime.device.index is None:
        if on_epoch_end is None:
            return distributed.launch(
                x_train, y_train, x_val, y_val, n_outputs, config, checkpoint_dir, nproc=gpus,
                obj=obj,
            )  # fmt: skip
        log.warning("an on_epoch_end hook cannot cross processes: training on one GPU of %d", gpus)
    return fit(
        x_train,
        y_train,
        x_val,
        y_val,
        n_outputs,
        config,
        runtime,
        checkpoint_dir=checkpoint_dir,
        on_epoch_end=on_epoch_end,
        objective=obj,
    )


def train_regressor(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    *,
    loss: str = "mse",
    on_epoch_end: EpochHook | None = None,
) -> TrainResult:
    """Train an MLP regressor (one output) on a numeric target; returns the best network
    (on validation loss), answering in the target's unit.

    The target is standardised with the training rows' mean and standard deviation for
    training (so the learning rate and the Huber threshold mean the same on any scale) and
    the network is told to undo it (``MLP.regressor``). ``loss``: ``mse`` or ``huber``
    (quadratic within one standard deviation, linear beyond: robust to a few huge errors).
    On a host with several GPUs (``config.distributed == "auto"``, no hook) it trains as one
    process per GPU, as ``train_mlp`` does. The history's losses are in standardised units;
    its accuracies are 0."""
    obj = objective(loss)
    _check_shapes(x_train, y_train, x_val, y_val)
    for name, y in (("train", y_train), ("validation", y_val)):
        if not np.isfinite(np.asarray(y, np.float64)).all():
            raise ConfigError(f"{name} target has values that are not finite numbers")
    mean = float(np.mean(y_train))
    scale = float(np.std(y_train)) or 1.0
    config = config.for_rows(x_train.shape[0])
    z_train = ((np.asarray(y_train, np.float64) - mean) / scale).astype(np.float32)
    z_val = ((np.asarray(y_val, np.float64) - mean) / scale).astype(np.float32)
    result = _fit_here_or_on_every_gpu(
        x_train, z_train, x_val, z_val, 1, config, checkpoint_dir, on_epoch_end, obj
    )
    result.network.regressor(mean, scale)
    mad = float(np.mean(np.abs(np.asarray(y_train, np.float64) - mean)))
    # mean, standard deviation and mean absolute deviation of the training target: the
    # losses of predicting its mean, in which the gate states margins and effects
    result.extra["target"] = {"loss": obj.name, "mean": mean, "scale": scale, "mad": mad}
    return result


@torch.no_grad()
def calibrate(result: TrainResult, x_val: np.ndarray, y_val: np.ndarray) -> TrainResult:
    """The best network with its temperature fitted on the validation rows (``calibrate``);
    the fit and the validation log loss before and after go into ``result.extra``."""
    network = result.network.eval()
    device = next(network.parameters()).device
    logits = np.concatenate(
        [
            network.net(torch.as_tensor(x_val[i : i + EVAL_ROWS], dtype=torch.float32).to(device))
            .float()
            .cpu()
            .numpy()
            for i in range(0, len(x_val), EVAL_ROWS)
        ]
    )
    y = np.asarray(y_val, np.int64)
    temperature = fit_temperature(logits, y)
    network.calibrated(temperature)
    result.extra["calibration"] = {
        "method": "temperature",
        "temperature": round(temperature, 6),
        "val_log_loss_before": round(nll(logits, y), 6),
        "val_log_loss_after": round(nll(logits, y, temperature), 6),
    }
    return result


def _check_inputs(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, n: int
) -> None:
    _check_shapes(x_train, y_train, x_val, y_val)
    for name, y in (("train", y_train), ("validation", y_val)):
        if len(y) and (int(np.min(y)) < 0 or int(np.max(y)) >= n):
            raise ConfigError(f"{name} labels must be class indices in [0, {n}); encode them")


def _check_shapes(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray
) -> None:
    if x_train.shape[0] == 0 or x_val.shape[0] == 0:
        raise ConfigError("training needs rows in both the train and the validation split")
    if x_train.ndim != 2 or x_val.ndim != 2 or x_train.shape[1] != x_val.shape[1]:
        raise ConfigError(
            f"train rows {x_train.shape} and validation rows {x_val.shape} must be 2-D "
            "with the same number of columns"
        )
    if len(y_train) != len(x_train) or len(y_val) != len(x_val):
        raise ConfigError("every row needs exactly one label (train and validation)")
