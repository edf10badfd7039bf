"""The rows a run trains on, and the order it visits them in.

The data set sits on the device as two tensors; a batch is an index slice of one shuffled
permutation per epoch (no per-row Dataset / DataLoader). Data larger than a device-memory
budget stays in host memory and each batch is gathered into a pinned buffer and copied
asynchronously. Several processes share each global batch out by rank, with no
communication, since every rank draws the same permutation.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import torch

from components.core.training.config import TrainConfig
from components.core.training.runtime import Runtime

__all__ = [
    "EVAL_ROWS",
    "ResidentRows",
    "Rows",
    "StreamedRows",
    "derived_seed",
    "epoch_order",
    "place_rows",
    "shard_batch",
]

EVAL_ROWS = 16384  # rows per forward pass when evaluating


def derived_seed(*parts: Any) -> int:
    """A seed that is a function of ``parts`` only (a purpose, the seed, the epoch, ...)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


def epoch_order(n: int, seed: int, epoch: int, device: torch.device | None = None) -> torch.Tensor:
    """The shuffled row order of one epoch, drawn on ``device`` (default CPU).

    A function of (seed, epoch, device type) only: every rank draws the same order and a
    resumed epoch draws what the lost one drew. On a GPU it is drawn there, since shuffling
    a million rows on the host would take as long as a whole epoch of training.
    """
    device = device or torch.device("cpu")
    generator = torch.Generator(device=device).manual_seed(derived_seed("order", seed, epoch))
    return torch.randperm(n, generator=generator, device=device)


def shard_batch(batch: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """One rank's rows of a global batch: contiguous parts whose sizes differ by at most one.

    Every rank holds the same permutation, so sharding needs no communication; the global
    batch (and with it every hyperparameter) is the same for any number of GPUs.
    """
    return torch.tensor_split(batch, world)[rank]


class ResidentRows:
    """All rows on the device; a batch is one gather by an index tensor on the device."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, runtime: Runtime, label_dtype: torch.dtype = torch.long
    ) -> None:
        self.x = torch.as_tensor(x, dtype=torch.float32).to(runtime.device, runtime.data_dtype)
        self.y = torch.as_tensor(y, dtype=label_dtype).to(runtime.device)
        self.n = self.x.shape[0]
        self.index_device = runtime.device

    def gather(
        self, idx: torch.Tensor, out: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if out is None:
            return self.x[idx], self.y[idx]
        torch.index_select(self.x, 0, idx, out=out[0])
        torch.index_select(self.y, 0, idx, out=out[1])
        return out

    def rows(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[start:stop], self.y[start:stop]


class StreamedRows:
    """Rows in host memory: each batch is gathered into a pinned buffer, then copied to the
    device without blocking. Two buffers alternate, so gathering the next batch overlaps the
    copy and the compute of this one."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        runtime: Runtime,
        max_rows: int,
        slots: int = 2,
        label_dtype: torch.dtype = torch.long,
    ) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if runtime.data_dtype != torch.float32:
            self.x = self.x.to(runtime.data_dtype)  # fewer bytes over the bus
        self.y = torch.from_numpy(np.ascontiguousarray(y)).to(label_dtype)
        self.n = self.x.shape[0]
        self.device = runtime.device
        self.index_device = torch.device("cpu")
        pin = runtime.device.type == "cuda"
        rows = max(1, min(max_rows, self.n))
        self.stage = [
            (
                torch.empty((rows, self.x.shape[1]), dtype=self.x.dtype, pin_memory=pin),
                torch.empty(rows, dtype=label_dtype, pin_memory=pin),
            )
            for _ in range(slots)
        ]
        self.copied: list[Any] = [None] * slots  # CUDA event: that slot's copy has finished
        self.slot = 0

    def gather(
        self, idx: torch.Tensor, out: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        k, m = self.slot, idx.shape[0]
        self.slot = (k + 1) % len(self.stage)
        if self.copied[k] is not None:
            self.copied[k].synchronize()  # never overwrite a buffer still being copied
        sx, sy = self.stage[k][0][:m], self.stage[k][1][:m]
        torch.index_select(self.x, 0, idx, out=sx)
        torch.index_select(self.y, 0, idx, out=sy)
        if self.device.type == "cpu":
            if out is None:
                return sx, sy
            out[0].copy_(sx)
            out[1].copy_(sy)
            return out
        if out is None:
            out = (
                sx.to(self.device, non_blocking=True),
                sy.to(self.device, non_blocking=True),
            )
        else:
            out[0].copy_(sx, non_blocking=True)
            out[1].copy_(sy, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.copied[k] = event
        return out

    def rows(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.gather(torch.arange(start, stop))


Rows = ResidentRows | StreamedRows


def place_rows(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    config: TrainConfig,
    runtime: Runtime,
    world: int,
    label_dtype: torch.dtype = torch.long,
) -> tuple[Rows, Rows, bool]:
    """The train and validation rows, on the device or streamed; True when they stream.
    ``label_dtype``: class indices (long) or a regression target (float32)."""
    n_features = x_train.shape[1]
    nbytes = (x_train.shape[0] + x_val.shape[0]) * (
        n_features * torch.finfo(runtime.data_dtype).bits // 8 + 8
    )
    if not _needs_streaming(config, runtime, nbytes):
        return (
            ResidentRows(x_train, y_train, runtime, label_dtype),
            ResidentRows(x_val, y_val, runtime, label_dtype),
            False,
        )
    local_batch = math.ceil(config.batch_size / world)
    train_rows = StreamedRows(x_train, y_train, runtime, local_batch, label_dtype=label_dtype)
    val_rows = StreamedRows(x_val, y_val, runtime, EVAL_ROWS, label_dtype=label_dtype)
    return train_rows, val_rows, True


def _needs_streaming(config: TrainConfig, runtime: Runtime, nbytes: int) -> bool:
    if config.data_budget_mb > 0:
        return nbytes > config.data_budget_mb * 2**20
    if runtime.device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(runtime.device)
    return nbytes > free // 2
