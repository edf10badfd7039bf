"""The trainer's settings: a frozen dataclass whose fields are the train task's parameters.

Kept apart from ``training`` so that compiling the pipeline and checking a run's parameters
before it starts need no torch import (seconds at every `sigdeploy run`).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from components.core.errors import ConfigError

SCHEDULES = ("onecycle", "cosine", "constant")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DISTRIBUTED = ("auto", "off")
DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


@dataclass(frozen=True)
class TrainConfig:
    """How the MLP is trained; fields are pipeline parameters."""

    hidden_sizes: tuple[int, ...] = (256, 128)  # MLP hidden layer widths
    dropout: float = 0.1  # dropout after each hidden layer
    learning_rate: float = 3e-3  # peak learning rate of the schedule
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    batch_size: int = 128  # rows per optimiser step (over all GPUs together)
    max_epochs: int = 60  # upper bound; early stopping usually ends sooner
    patience: int = 10  # epochs without a better validation loss before stopping
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

    def __post_init__(self) -> None:
        problems = []
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            problems.append(f"hidden_sizes={self.hidden_sizes} must be positive widths")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout={self.dropout} must be in [0, 1)")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate={self.learning_rate} must be > 0")
        if self.weight_decay < 0:
            problems.append(f"weight_decay={self.weight_decay} must be >= 0")
        if self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size} must be >= 1")
        if self.max_epochs < 1:
            problems.append(f"max_epochs={self.max_epochs} must be >= 1")
        if self.patience < 1:
            problems.append(f"patience={self.patience} must be >= 1")
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
        if problems:
            raise ConfigError("train config: " + "; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"hidden_sizes": list(self.hidden_sizes)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> TrainConfig:
        return cls(**(obj | {"hidden_sizes": tuple(int(h) for h in obj["hidden_sizes"])}))
