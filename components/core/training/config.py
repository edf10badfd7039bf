"""The trainer's settings: a frozen dataclass whose fields are the train task's parameters.

Kept apart from ``training`` so that compiling the pipeline and checking a run's parameters
before it starts need no torch import (seconds at every `sigdeploy run`).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from components.core.errors import ConfigError

SCHEDULES = ("onecycle", "cosine", "constant")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DISTRIBUTED = ("auto", "off")
REGRESSION_LOSSES = ("mse", "huber")
DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")

# What ``batch_size``, ``max_epochs`` and ``patience`` = 0 (automatic) become for n training
# rows. The run is a budget of rows seen, not of epochs: 60 epochs of the 1,092 digits rows
# are 66k rows seen, while on a million rows the model has learned what it will after one
# or two passes and 60 epochs took half an hour. Early stopping counts in the same unit.
SAMPLE_BUDGET = 2_000_000  # rows seen at most (max_epochs = budget / rows, 1 to 60 epochs)
PATIENCE_SAMPLES = 500_000  # rows seen without a better validation loss (1 to 10 epochs)
ROWS_PER_STEP = 400  # batch = the power of two nearest rows / 400, 128 to 4,096 rows:
# few optimiser steps per epoch on large data (each costs Python and launch overhead),
# digits' small batches on small data
EPOCH_RANGE, PATIENCE_RANGE, BATCH_RANGE = (1, 60), (1, 10), (128, 4096)
# learning rate = BASE_RATE x sqrt(batch / 128), at most MAX_RATE: larger batches average
# out more noise per step and take a larger step (the square-root rule for Adam)
BASE_RATE, MAX_RATE = 3e-3, 1e-2
AUTO_DROPOUT, SMALL_DATA_DROPOUT, DROPOUT_ROWS = -1.0, 0.1, 100_000


def _clamp(value: int, bounds: tuple[int, int]) -> int:
    return max(bounds[0], min(bounds[1], value))


def auto_batch_size(rows: int) -> int:
    return _clamp(2 ** round(math.log2(max(rows, 1) / ROWS_PER_STEP)), BATCH_RANGE)


def auto_max_epochs(rows: int) -> int:
    return _clamp(math.ceil(SAMPLE_BUDGET / max(rows, 1)), EPOCH_RANGE)


def auto_learning_rate(batch_size: int) -> float:
    return min(MAX_RATE, BASE_RATE * math.sqrt(max(batch_size, 1) / BATCH_RANGE[0]))


def auto_dropout(rows: int) -> float:
    return SMALL_DATA_DROPOUT if rows <= DROPOUT_ROWS else 0.0


def auto_patience(rows: int) -> int:
    return _clamp(math.ceil(PATIENCE_SAMPLES / max(rows, 1)), PATIENCE_RANGE)


@dataclass(frozen=True)
class TrainConfig:
    """How the MLP is trained; fields are pipeline parameters."""

    hidden_sizes: tuple[int, ...] = (256, 128)  # MLP hidden layer widths
    dropout: float = -1.0  # dropout after each hidden layer; -1 = from the rows: 0.1 up to
    # 100k training rows (against overfitting), 0 above (the data regularises; on a CPU
    # dropout's random masks cost as much as the rest of the step)
    learning_rate: float = 0.0  # peak learning rate of the schedule; 0 = from the batch
    # size: 3e-3 at batch 128, x sqrt(batch / 128), at most 1e-2 (from batch 1,424)
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    batch_size: int = 0  # rows per optimiser step (over all GPUs together); 0 = from the
    # rows: the power of two nearest rows / 400, 128 (up to 72k rows) to 4,096
    max_epochs: int = 0  # upper bound, early stopping usually ends sooner; 0 = from the rows:
    # 2 million rows seen (60 epochs up to 33k rows, 4 at 600k, 2 at a million)
    patience: int = 0  # epochs without a better validation loss before stopping; 0 = from
    # the rows: 500k rows seen (10 epochs up to 50k rows, 1 at a million)
    schedule: str = "onecycle"  # onecycle | cosine (with warm-up) | constant
    warmup_fraction: float = 0.1  # share of steps spent warming up (onecycle, cosine)
    seed: int = 0  # seeds weights, dropout and batch order
    precision: str = "auto"  # auto = bf16 autocast on CUDA (fp16 before Ampere), fp32 on CPU
    compile: bool = False  # torch.compile the network (CUDA only; slow to start)
    device: str = "auto"  # auto = cuda when present, else cpu
    deterministic: bool = True  # deterministic kernels: same seed and data, same weights
    cpu_threads: int = 0  # 0 = the cores this process may use (affinity and cgroup quota)
    cuda_graphs: bool = True  # CUDA: capture the whole train step once, replay it per batch
    data_budget_mb: int = 0  # data above this streams from pinned host memory; 0 = half the
    # free GPU memory on CUDA, never on CPU
    distributed: str = "auto"  # auto = DDP over all visible GPUs when there are several; off
    regression_loss: str = "mse"  # regression: mse | huber (squared within one standard
    # deviation of the target, linear beyond: robust to a few huge errors)

    def __post_init__(self) -> None:
        problems = []
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            problems.append(f"hidden_sizes={self.hidden_sizes} must be positive widths")
        if not (0 <= self.dropout < 1 or self.dropout == AUTO_DROPOUT):
            problems.append(f"dropout={self.dropout} must be in [0, 1) (-1 = from the rows)")
        if self.learning_rate < 0:
            problems.append(
                f"learning_rate={self.learning_rate} must be > 0 (0 = from the batch size)"
            )
        if self.weight_decay < 0:
            problems.append(f"weight_decay={self.weight_decay} must be >= 0")
        for name in ("batch_size", "max_epochs", "patience"):
            if getattr(self, name) < 0:
                problems.append(f"{name}={getattr(self, name)} must be >= 1 (0 = from the rows)")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule={self.schedule!r} must be one of {', '.join(SCHEDULES)}")
        if not 0 <= self.warmup_fraction < 1:
            problems.append(f"warmup_fraction={self.warmup_fraction} must be in [0, 1)")
        if self.precision not in PRECISIONS:
            problems.append(f"precision={self.precision!r} must be one of {', '.join(PRECISIONS)}")
        if self.cpu_threads < 0:
            problems.append(f"cpu_threads={self.cpu_threads} must be >= 0 (0 = automatic)")
        if self.data_budget_mb < 0:
            problems.append(f"data_budget_mb={self.data_budget_mb} must be >= 0 (0 = automatic)")
        if not DEVICE.fullmatch(self.device):
            problems.append(f"device={self.device!r} must be auto, cpu, cuda or cuda:N")
        if self.distributed not in DISTRIBUTED:
            problems.append(
                f"distributed={self.distributed!r} must be one of {', '.join(DISTRIBUTED)}"
            )
        if self.regression_loss not in REGRESSION_LOSSES:
            problems.append(
                f"regression_loss={self.regression_loss!r} must be one of "
                + ", ".join(REGRESSION_LOSSES)
            )
        if problems:
            raise ConfigError("train config: " + "; ".join(problems))

    def for_rows(self, rows: int) -> TrainConfig:
        """This config with every automatic batch size, epoch limit, patience, learning rate
        and dropout set for ``rows`` training rows; values set by hand are kept."""
        batch = self.batch_size or auto_batch_size(rows)
        return replace(
            self,
            batch_size=batch,
            max_epochs=self.max_epochs or auto_max_epochs(rows),
            patience=self.patience or auto_patience(rows),
            learning_rate=self.learning_rate or auto_learning_rate(batch),
            dropout=auto_dropout(rows) if self.dropout == AUTO_DROPOUT else self.dropout,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"hidden_sizes": list(self.hidden_sizes)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TrainConfig:
        return cls(**(obj | {"hidden_sizes": tuple(int(h) for h in obj["hidden_sizes"])}))
