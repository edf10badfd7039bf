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
from components.core.training.config import TrainConfig
from components.core.training.loop import EpochHook, TrainResult, fit
from components.core.training.runtime import Runtime

log = logging.getLogger(__name__)

__all__ = ["train_mlp"]


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
    """Train an MLP on integer class indices; returns the best network (on val loss).

    With a ``checkpoint_dir`` the run saves a checkpoint after every epoch and resumes from a
    valid one found there. ``on_epoch_end`` is called after each epoch's evaluation and
    checkpoint; returning True stops training. On a host with several GPUs (and
    ``config.distributed == "auto"``, no hook) training runs as one process per GPU.
    """
    _check_inputs(x_train, y_train, x_val, y_val, n_classes)
    runtime = Runtime.resolve(config)
    gpus = torch.cuda.device_count() if runtime.device.type == "cuda" else 0
    if config.distributed == "auto" and gpus > 1 and runtime.device.index is None:
        if on_epoch_end is None:
            return distributed.launch(
                x_train, y_train, x_val, y_val, n_classes, config, checkpoint_dir, nproc=gpus
            )
        log.warning("an on_epoch_end hook cannot cross processes: training on one GPU of %d", gpus)
    return fit(
        x_train,
        y_train,
        x_val,
        y_val,
        n_classes,
        config,
        runtime,
        checkpoint_dir=checkpoint_dir,
        on_epoch_end=on_epoch_end,
    )


def _check_inputs(
    x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, n: int
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
    for name, y in (("train", y_train), ("validation", y_val)):
        if len(y) and (int(np.min(y)) < 0 or int(np.max(y)) >= n):
            raise ConfigError(f"{name} labels must be class indices in [0, {n}); encode them")
