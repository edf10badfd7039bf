"""Checkpoints: what a run has learned so far, saved after every epoch and found again by a
retried task, which then resumes where the preempted run stopped and ends with the same
weights as an uninterrupted run."""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from components.core.io import atomic_path
from components.core.training.config import TrainConfig
from components.core.training.runtime import Runtime
from components.core.training.schedule import LRSchedule

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_FORMAT",
    "Checkpointer",
    "TrainState",
    "agree",
    "data_fingerprint",
    "run_fingerprint",
]

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 2  # bump when the payload changes: older files are then ignored


@dataclass
class TrainState:
    """Where a run stands after its last epoch, besides the network and its optimiser."""

    history: list[dict[str, float]] = field(default_factory=list)  # one record per epoch
    best_val_loss: float = math.inf
    best_epoch: int = 0  # 0 = none yet
    best_weights: dict[str, torch.Tensor] | None = None  # the best epoch's, on the device
    epoch: int = 0  # epochs completed
    bad_epochs: int = 0  # epochs since the best one (early stopping)


def data_fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(f"{x.shape}{x.dtype}{y.shape}{y.dtype}".encode())
    digest.update(np.ascontiguousarray(x).data.cast("B"))
    digest.update(np.ascontiguousarray(y).data.cast("B"))
    return digest.hexdigest()


def run_fingerprint(
    config: TrainConfig,
    runtime: Runtime,
    world: int,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
) -> dict[str, Any]:
    """What a checkpoint must have been written for to be resumed from."""
    return {
        "config": config.to_json(),
        "device": runtime.device.type,
        "precision": runtime.precision,
        "world": world,
        "data": data_fingerprint(x_train, y_train) + data_fingerprint(x_val, y_val),
    }


def agree(resumed: TrainState | None, device: torch.device) -> TrainState | None:
    """All ranks resume from the same epoch, or all start afresh."""
    epoch = torch.tensor([resumed.epoch if resumed else -1], device=device)
    low, high = epoch.clone(), epoch.clone()
    torch.distributed.all_reduce(low, op=torch.distributed.ReduceOp.MIN)
    torch.distributed.all_reduce(high, op=torch.distributed.ReduceOp.MAX)
    if int(low) != int(high):
        log.warning("ranks found different checkpoints; all of them start from scratch")
        return None
    return resumed


class Checkpointer:
    """One checkpoint file, replaced atomically after every epoch.

    It holds what is needed to continue as if never interrupted: weights, optimiser,
    schedule, gradient scaler, the epoch, the best score and the best weights, and the
    history. No RNG state needs keeping: batch order and dropout of every epoch are drawn
    from seeds derived from (seed, epoch, rank). The file is read with
    ``torch.load(weights_only=True)``, so no pickled code runs. One written for other data,
    another config or an older format, or one that cannot be read, is reported (a logged
    warning) and ignored: the task then trains from scratch.
    """

    def __init__(self, directory: str | os.PathLike[str], fingerprint: dict[str, Any]) -> None:
        self.path = Path(directory) / CHECKPOINT_FILE
        self.fingerprint = hashlib.sha256(repr(sorted(fingerprint.items())).encode()).hexdigest()

    def save(
        self,
        state: TrainState,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: LRSchedule,
        scaler: torch.amp.GradScaler,
    ) -> None:
        payload = {
            "format": CHECKPOINT_FORMAT,
            "fingerprint": self.fingerprint,
            "epoch": state.epoch,
            "bad_epochs": state.bad_epochs,
            "best_val_loss": state.best_val_loss,
            "best_epoch": state.best_epoch,
            "history": [list(h.items()) for h in state.history],
            "model": model.state_dict(),
            "best_weights": state.best_weights or {},
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "scaler": scaler.state_dict(),
        }
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)

    def load(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: LRSchedule,
        scaler: torch.amp.GradScaler,
    ) -> TrainState | None:
        # A run killed while saving leaves its temporary file behind; it is never valid.
        for stale in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            stale.unlink(missing_ok=True)
        if not self.path.exists():
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
            if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
                log.warning(
                    "checkpoint %s has an unknown format; ignoring it and training from scratch",
                    self.path,
                )
                return None
            if payload.get("fingerprint") != self.fingerprint:
                log.warning(
                    "checkpoint %s was written for other data or settings; ignoring it "
                    "and training from scratch",
                    self.path,
                )
                return None
            device = next(model.parameters()).device
            model.load_state_dict(payload["model"])
            rates = [group["lr"] for group in optimizer.param_groups]
            optimizer.load_state_dict(payload["optimizer"])
            for group, rate in zip(optimizer.param_groups, rates, strict=True):
                group["lr"] = rate  # keep a captured device tensor; the schedule sets it
            schedule.load_state_dict(payload["schedule"])
            scaler.load_state_dict(payload["scaler"])
            best = {k: v.to(device) for k, v in payload["best_weights"].items()} or None
            return TrainState(
                history=[dict(h) for h in payload["history"]],
                best_val_loss=float(payload["best_val_loss"]),
                best_epoch=int(payload["best_epoch"]),
                best_weights=best,
                epoch=int(payload["epoch"]),
                bad_epochs=int(payload["bad_epochs"]),
            )
        except Exception as exc:  # a torn or foreign file must never crash the task
            log.warning(
                "checkpoint %s cannot be used (%s: %s); training from scratch",
                self.path,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
            )
            return None
