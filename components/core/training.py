"""The trainer: whole data set on the device as tensors, batches as index slices of one
shuffled permutation per epoch, AdamW with a one-cycle (or cosine) schedule, early stopping
on validation loss that restores the best weights, and a checkpoint every epoch so that a
retried task resumes where the preempted one stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from components.core.errors import ConfigError
from components.core.model import MLP, MLPConfig

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
SCHEDULES = ("onecycle", "cosine", "constant")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


@dataclass(frozen=True)
class TrainConfig:
    hidden_sizes: tuple[int, ...] = (256, 128)  # MLP hidden layer widths
    dropout: float = 0.1  # dropout after each hidden layer
    learning_rate: float = 3e-3  # peak learning rate of the schedule
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    batch_size: int = 128  # rows per optimiser step
    max_epochs: int = 60  # upper bound; early stopping usually ends sooner
    patience: int = 10  # epochs without a better validation loss before stopping
    schedule: str = "onecycle"  # onecycle | cosine (with warm-up) | constant
    warmup_fraction: float = 0.1  # share of steps spent warming up (onecycle, cosine)
    seed: int = 0  # seeds weights, dropout and batch order
    precision: str = "auto"  # auto = bf16 autocast on CUDA, fp32 on CPU; or bf16 | fp16 | fp32
    compile: bool = False  # torch.compile the network (CUDA only; slow to start)
    device: str = "auto"  # auto = cuda when present, else cpu
    deterministic: bool = True  # deterministic kernels: same seed and data, same weights
    cpu_threads: int = 0  # 0 = all cores this process may use

    def __post_init__(self) -> None:
        problems = []
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            problems.append(f"hidden_sizes={self.hidden_sizes} must be positive widths")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout={self.dropout} must be in [0, 1)")
        if self.learning_rate <= 0:
            problems.append(f"learning_rate={self.learning_rate} must be > 0")
        if self.batch_size < 1:
            problems.append(f"batch_size={self.batch_size} must be >= 1")
        if self.max_epochs < 1:
            problems.append(f"max_epochs={self.max_epochs} must be >= 1")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule={self.schedule!r} must be one of {', '.join(SCHEDULES)}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision={self.precision!r} must be one of {', '.join(PRECISIONS)}")
        if problems:
            raise ConfigError("train config: " + "; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"hidden_sizes": list(self.hidden_sizes)}


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
class Runtime:
    """Device and precision, resolved once per training run."""

    device: torch.device
    precision: str  # bf16 | fp16 | fp32

    @classmethod
    def resolve(cls, config: TrainConfig) -> Runtime:
        want = config.device
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        if want.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(
                f"device={config.device!r}: CUDA is not available on this host; use auto or cpu"
            )
        device = torch.device(want)
        precision = config.precision
        if precision == "auto":
            precision = "bf16" if device.type == "cuda" else "fp32"
        if device.type == "cpu" and precision == "fp16":
            raise ConfigError("precision='fp16' needs CUDA; use fp32 or bf16 on CPU")
        return cls(device=device, precision=precision)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)


def _configure_torch(config: TrainConfig, runtime: Runtime) -> None:
    if runtime.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    else:
        threads = config.cpu_threads or len(os.sched_getaffinity(0))
        torch.set_num_threads(max(1, threads))
    torch.use_deterministic_algorithms(config.deterministic and runtime.device.type == "cpu")


def _make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    if config.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=config.learning_rate,
            total_steps=total_steps,
            pct_start=max(config.warmup_fraction, 1e-3),
            anneal_strategy="cos",
        )
    warmup = max(1, int(total_steps * config.warmup_fraction))

    def factor(step: int) -> float:
        if config.schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def data_fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(str(x.shape).encode())
    digest.update(np.ascontiguousarray(x).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    return digest.hexdigest()


@torch.no_grad()
def _evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, runtime: Runtime, batch: int = 8192
) -> tuple[float, float]:
    model.eval()
    loss_sum, correct = 0.0, 0
    for start in range(0, x.shape[0], batch):
        with runtime.autocast():
            logits = model(x[start : start + batch])
        logits = logits.float()
        loss_sum += float(F.cross_entropy(logits, y[start : start + batch], reduction="sum"))
        correct += int((logits.argmax(1) == y[start : start + batch]).sum())
    n = max(x.shape[0], 1)
    return loss_sum / n, correct / n


def _batches(
    n: int, batch_size: int, generator: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=generator).to(device, non_blocking=True)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def train_mlp(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike[str] | None = None,
) -> TrainResult:
    """Train an MLP on integer class indices; returns the best network (on val loss)."""
    if x_train.shape[0] == 0 or x_val.shape[0] == 0:
        raise ConfigError("training needs rows in both the train and the validation split")
    runtime = Runtime.resolve(config)
    _configure_torch(config, runtime)
    mlp_config = MLPConfig(x_train.shape[1], n_classes, config.hidden_sizes, config.dropout)
    steps_per_epoch = math.ceil(x_train.shape[0] / config.batch_size)

    def fresh() -> tuple[MLP, torch.optim.Optimizer, Any, Any, torch.Generator]:
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        model = MLP(mlp_config).to(runtime.device)
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        scheduler = _make_scheduler(optimizer, config, steps_per_epoch * config.max_epochs)
        scaler = torch.amp.GradScaler("cuda", enabled=runtime.precision == "fp16")
        return model, optimizer, scheduler, scaler, generator

    model, optimizer, scheduler, scaler, generator = fresh()
    xt = torch.as_tensor(x_train, dtype=torch.float32).to(runtime.device)
    yt = torch.as_tensor(y_train, dtype=torch.long).to(runtime.device)
    xv = torch.as_tensor(x_val, dtype=torch.float32).to(runtime.device)
    yv = torch.as_tensor(y_val, dtype=torch.long).to(runtime.device)

    state = _TrainState(
        history=[], best_val_loss=math.inf, best_epoch=0, best_weights=None, epoch=0, bad_epochs=0
    )
    fingerprint = {
        "config": config.to_json() | {"device": runtime.device.type},
        "data": data_fingerprint(x_train, y_train) + data_fingerprint(x_val, y_val),
    }
    ckpt = Checkpointer(checkpoint_dir, fingerprint) if checkpoint_dir else None
    resumed_from = 0
    if ckpt is not None:
        resumed = ckpt.load(model, optimizer, scheduler, scaler, generator)
        if resumed is not None:
            state = resumed
            resumed_from = state.epoch
            log.info("resumed training from checkpoint after epoch %d", state.epoch)
        else:
            # A failed load may have touched some states: start again from the seed.
            model, optimizer, scheduler, scaler, generator = fresh()
    step_model: nn.Module = model
    if config.compile and runtime.device.type == "cuda":
        step_model = torch.compile(model)  # type: ignore[assignment]

    started = time.perf_counter()
    stopped_early = False
    while state.epoch < config.max_epochs and state.bad_epochs < config.patience:
        epoch_start = time.perf_counter()
        step_model.train()
        loss_sum = torch.zeros((), device=runtime.device)
        correct = torch.zeros((), device=runtime.device, dtype=torch.long)
        for idx in _batches(xt.shape[0], config.batch_size, generator, runtime.device):
            xb, yb = xt[idx], yt[idx]
            with runtime.autocast():
                logits = step_model(xb)
                loss = F.cross_entropy(logits.float(), yb)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            # Accumulate on the device: no host sync inside the step loop.
            loss_sum += loss.detach() * yb.shape[0]
            correct += (logits.detach().argmax(1) == yb).sum()
        val_loss, val_acc = _evaluate(step_model, xv, yv, runtime)
        state.epoch += 1
        state.history.append(
            {
                "epoch": state.epoch,
                "train_loss": float(loss_sum) / xt.shape[0],
                "train_accuracy": float(correct) / xt.shape[0],
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "learning_rate": float(scheduler.get_last_lr()[0]),
                "seconds": time.perf_counter() - epoch_start,
            }
        )
        if val_loss < state.best_val_loss - 1e-12:
            state.best_val_loss, state.best_epoch, state.bad_epochs = val_loss, state.epoch, 0
            state.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            state.bad_epochs += 1
        log.info(
            "epoch %d/%d train_loss=%.4f val_loss=%.4f val_acc=%.4f",
            state.epoch,
            config.max_epochs,
            state.history[-1]["train_loss"],
            val_loss,
            val_acc,
        )
        if ckpt is not None:
            ckpt.save(state, model, optimizer, scheduler, scaler, generator)
    stopped_early = state.epoch < config.max_epochs
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    model.eval()
    return TrainResult(
        network=model,
        history=state.history,
        best_epoch=state.best_epoch,
        best_val_loss=state.best_val_loss,
        device=runtime.device.type,
        precision=runtime.precision,
        resumed_from_epoch=resumed_from,
        seconds=time.perf_counter() - started,
        stopped_early=stopped_early,
    )


@dataclass
class _TrainState:
    history: list[dict[str, float]]
    best_val_loss: float
    best_epoch: int
    best_weights: dict[str, torch.Tensor] | None
    epoch: int
    bad_epochs: int


class Checkpointer:
    """One checkpoint file, replaced atomically after every epoch.

    It stores everything needed to continue as if never interrupted: weights, optimiser,
    scheduler, scaler, every RNG state, the epoch, the best score and weights. It is read
    with ``torch.load(weights_only=True)``: no pickled code runs. A checkpoint written for
    other data or another config, or one that cannot be read, is reported and ignored.
    """

    def __init__(self, directory: str | os.PathLike[str], fingerprint: dict[str, Any]) -> None:
        self.path = Path(directory) / CHECKPOINT_FILE
        self.fingerprint = hashlib.sha256(repr(sorted(fingerprint.items())).encode()).hexdigest()

    def save(
        self,
        state: _TrainState,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: Any,
        generator: torch.Generator,
    ) -> None:
        from components.core.io import atomic_path

        payload = {
            "fingerprint": self.fingerprint,
            "epoch": state.epoch,
            "bad_epochs": state.bad_epochs,
            "best_val_loss": state.best_val_loss,
            "best_epoch": state.best_epoch,
            "history": [list(h.items()) for h in state.history],
            "model": model.state_dict(),
            "best_weights": state.best_weights or {},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng_torch": torch.get_rng_state(),
            "rng_generator": generator.get_state(),
            "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }
        with atomic_path(self.path) as tmp:
            torch.save(payload, tmp)

    def load(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: Any,
        generator: torch.Generator,
    ) -> _TrainState | None:
        if not self.path.exists():
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
            if payload.get("fingerprint") != self.fingerprint:
                log.warning(
                    "checkpoint %s was written for other data or settings; ignoring it "
                    "and training from scratch",
                    self.path,
                )
                return None
            model.load_state_dict(payload["model"])
            optimizer.load_state_dict(payload["optimizer"])
            scheduler.load_state_dict(payload["scheduler"])
            scaler.load_state_dict(payload["scaler"])
            torch.set_rng_state(payload["rng_torch"])
            generator.set_state(payload["rng_generator"])
            if payload["rng_cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(payload["rng_cuda"])
            best = payload["best_weights"] or None
            return _TrainState(
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
