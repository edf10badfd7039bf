"""The trainer: an MLP on tabular rows, fast on one CPU or one or several GPUs.

- The data set sits on the device as two tensors; a batch is an index slice of one shuffled
  permutation per epoch (no per-row Dataset / DataLoader). Data larger than a device-memory
  budget stays in host memory and each batch is gathered into a pinned buffer and copied
  asynchronously.
- CUDA: bf16 autocast by default (fp16 with a gradient scaler on request), TF32 matmuls,
  fused AdamW, and the whole train step captured once as a CUDA graph and replayed per
  batch, with no host synchronisation inside an epoch. CPU: a thread count that fits the
  cores actually free, deterministic kernels.
- A one-cycle (or cosine with warm-up) learning-rate schedule, early stopping on validation
  loss that restores the best epoch's weights, and an optional ``on_epoch_end`` hook that
  can stop training (benchmarks use it to stop at a target accuracy).
- A checkpoint after every epoch, found again by a retried task: training resumes where the
  preempted run stopped and ends with the same weights as an uninterrupted run.
- Several visible GPUs: DistributedDataParallel, one process per GPU (``distributed.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from components.core import progress
from components.core.errors import ConfigError
from components.core.model.mlp import MLP, MLPConfig
from components.core.training.config import TrainConfig

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 2  # bump when the payload changes: older files are then ignored
EVAL_ROWS = 16384  # rows per forward pass when evaluating
GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before capture, as CUDA graphs need
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


@dataclass(frozen=True)
class Runtime:
    """Device, precision and CPU threads, resolved once per training run."""

    device: torch.device
    precision: str  # bf16 | fp16 | fp32
    threads: int = 0  # CPU threads for torch; 0 = leave torch's setting alone

    @classmethod
    def resolve(cls, config: TrainConfig) -> Runtime:
        want = config.device
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        if want.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(
                f"device={config.device!r}: CUDA is not available on this host; use auto or cpu"
            )
        try:
            device = torch.device(want)
        except RuntimeError as exc:
            raise ConfigError(
                f"device={config.device!r}: not a device name; use auto, cpu or cuda"
            ) from exc
        precision = config.precision
        if precision == "auto" and device.type == "cuda":
            # bf16 needs Ampere (8.0) or newer; older GPUs (T4, V100) run fp16 + scaler.
            precision = "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"
        elif precision == "auto":
            precision = "fp32"
        if device.type == "cpu" and precision == "fp16":
            raise ConfigError("precision='fp16' needs CUDA; use fp32 or bf16 on CPU")
        threads = cpu_thread_count(config.cpu_threads) if device.type == "cpu" else 0
        return cls(device=device, precision=precision, threads=threads)

    @property
    def data_dtype(self) -> torch.dtype:
        """How rows are kept on the device: in the autocast dtype on CUDA, which halves the
        memory and the gather traffic at no cost in accuracy (autocast would cast them to
        that dtype before the first matmul anyway)."""
        if self.device.type == "cuda" and self.precision == "bf16":
            return torch.bfloat16
        if self.device.type == "cuda" and self.precision == "fp16":
            return torch.float16
        return torch.float32

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)


def cpu_thread_count(requested: int = 0) -> int:
    """Threads for CPU training.

    The cores this process may use (affinity, capped by a cgroup CPU quota). It does not
    depend on the momentary load, so the same run on the same host gets the same thread
    count and therefore the same weights. On a host shared with other busy processes set
    ``cpu_threads`` explicitly: oversubscribed cores are far worse than an idle one (each
    OpenMP barrier waits for a descheduled thread; 2 threads ran 40x slower than 1 on a
    shared 2-core host).
    """
    if requested > 0:
        return requested
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        return max(1, min(cores, math.floor(quota)))
    return max(1, cores)


def _cgroup_cpu_quota() -> float | None:
    """CPUs granted by a cgroup (v2 cpu.max or v1 cfs quota), None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def _configure_torch(config: TrainConfig, runtime: Runtime) -> None:
    if runtime.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif runtime.threads:
        torch.set_num_threads(runtime.threads)
    want = config.deterministic and runtime.device.type == "cpu"
    if torch.are_deterministic_algorithms_enabled() != want:
        # Only on a change: the first call imports torch's compiler stack (seconds).
        torch.use_deterministic_algorithms(want)


class LRSchedule:
    """The learning rate as a function of the step: one-cycle, cosine with warm-up, constant.

    Its whole state is the step count. The rate is written into the optimiser in place, so a
    device-tensor rate captured in a CUDA graph follows the schedule without recapture.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig, total: int):
        self.optimizer = optimizer
        self.config = config
        self.total = max(1, total)
        self.warmup = max(1, int(self.total * config.warmup_fraction))
        self.step_count = 0
        self._apply()

    def rate(self, step: int) -> float:
        peak, kind = self.config.learning_rate, self.config.schedule
        if kind == "constant":
            return peak
        progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        if kind == "onecycle":  # as torch's OneCycleLR: peak/25 up to peak, then to peak/25e4
            start, end = peak / 25, peak / 25e4
            if step < self.warmup:
                return start + (peak - start) * 0.5 * (1 - math.cos(math.pi * step / self.warmup))
            return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * progress))
        if step < self.warmup:  # cosine: linear warm-up, then cosine decay to zero
            return peak * (step + 1) / self.warmup
        return peak * 0.5 * (1 + math.cos(math.pi * progress))

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def last_rate(self) -> float:
        return self.rate(self.step_count)

    def _apply(self) -> None:
        lr = self.rate(self.step_count)
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], torch.Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step_count, "total": self.total}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["total"]) != self.total:
            raise ValueError(f"schedule of {state['total']} steps, expected {self.total}")
        self.step_count = int(state["step"])
        self._apply()


def data_fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(f"{x.shape}{x.dtype}{y.shape}{y.dtype}".encode())
    digest.update(np.ascontiguousarray(x).data.cast("B"))
    digest.update(np.ascontiguousarray(y).data.cast("B"))
    return digest.hexdigest()


def _derived_seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


def epoch_order(n: int, seed: int, epoch: int, device: torch.device | None = None) -> torch.Tensor:
    """The shuffled row order of one epoch, drawn on ``device`` (default CPU).

    A function of (seed, epoch, device type) only: every rank draws the same order and a
    resumed epoch draws what the lost one drew. On a GPU it is drawn there, since shuffling
    a million rows on the host would take as long as a whole epoch of training.
    """
    device = device or torch.device("cpu")
    generator = torch.Generator(device=device).manual_seed(_derived_seed("order", seed, epoch))
    return torch.randperm(n, generator=generator, device=device)


def shard_batch(batch: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """One rank's rows of a global batch: contiguous parts whose sizes differ by at most one.

    Every rank holds the same permutation, so sharding needs no communication; the global
    batch (and with it every hyperparameter) is the same for any number of GPUs.
    """
    return torch.tensor_split(batch, world)[rank]


# --- rows on the device --------------------------------------------------------------------


class _ResidentRows:
    """All rows on the device; a batch is one gather by an index tensor on the device."""

    def __init__(self, x: np.ndarray, y: np.ndarray, runtime: Runtime) -> None:
        self.x = torch.as_tensor(x, dtype=torch.float32).to(runtime.device, runtime.data_dtype)
        self.y = torch.as_tensor(y, dtype=torch.long).to(runtime.device)
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


class _StreamedRows:
    """Rows in host memory: each batch is gathered into a pinned buffer, then copied to the
    device without blocking. Two buffers alternate, so gathering the next batch overlaps the
    copy and the compute of this one."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, runtime: Runtime, max_rows: int, slots: int = 2
    ) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if runtime.data_dtype != torch.float32:
            self.x = self.x.to(runtime.data_dtype)  # fewer bytes over the bus
        self.y = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
        self.n = self.x.shape[0]
        self.device = runtime.device
        self.index_device = torch.device("cpu")
        pin = runtime.device.type == "cuda"
        rows = max(1, min(max_rows, self.n))
        self.stage = [
            (
                torch.empty((rows, self.x.shape[1]), dtype=self.x.dtype, pin_memory=pin),
                torch.empty(rows, dtype=torch.long, pin_memory=pin),
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


Rows = _ResidentRows | _StreamedRows


def _needs_streaming(config: TrainConfig, runtime: Runtime, nbytes: int) -> bool:
    if config.data_budget_mb > 0:
        return nbytes > config.data_budget_mb * 2**20
    if runtime.device.type != "cuda":
        return False
    free, _ = torch.cuda.mem_get_info(runtime.device)
    return nbytes > free // 2


# --- one step ------------------------------------------------------------------------------


class _Totals:
    """Loss and correct-count sums of an epoch, kept on the device: no sync per step."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)

    def add(self, loss_sum: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss.add_(loss_sum.detach())
        self.correct.add_((logits.detach().argmax(1) == y).sum())

    def zero(self) -> None:
        self.loss.zero_()
        self.correct.zero_()


def _make_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    runtime: Runtime,
    totals: _Totals,
) -> Callable[[torch.Tensor, torch.Tensor, float], None]:
    """Forward, backward and optimiser update for one batch (gradients must be unset)."""

    def step(xb: torch.Tensor, yb: torch.Tensor, loss_scale: float) -> None:
        with runtime.autocast():
            logits = net(xb)
        loss_sum = F.cross_entropy(logits.float(), yb, reduction="sum")
        # loss_scale = world / global batch rows: DDP's gradient average over ranks then
        # equals the mean over the whole global batch, even when shards differ in size.
        scaler.scale(loss_sum * loss_scale).backward()
        scaler.step(optimizer)
        scaler.update()
        totals.add(loss_sum, logits, yb)

    return step


class _GraphStep:
    """The whole train step (forward, backward, AdamW) captured once as a CUDA graph.

    One replay launches what would otherwise be dozens of kernels from Python, which is what
    keeps a large GPU busy with a small MLP. Batches enter through the fixed buffers ``x``
    and ``y``; the learning rate is a device tensor that the schedule fills in place.
    """

    def __init__(
        self,
        step: Callable[[torch.Tensor, torch.Tensor, float], None],
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        totals: _Totals,
        rows: int,
        n_features: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.rows = rows
        self.x = torch.zeros((rows, n_features), dtype=dtype, device=device)
        self.y = torch.zeros(rows, dtype=torch.long, device=device)
        scale = 1.0 / rows
        saved = _snapshot(model, optimizer)
        try:
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(GRAPH_WARMUP_STEPS):
                    optimizer.zero_grad(set_to_none=True)
                    step(self.x, self.y, scale)
            torch.cuda.current_stream(device).wait_stream(side)
            # The warm-up steps trained on zeros: undo them.
            _restore(saved, model, optimizer)
            self.graph = torch.cuda.CUDAGraph()
            optimizer.zero_grad(set_to_none=True)
            with torch.cuda.graph(self.graph):
                step(self.x, self.y, scale)
        except BaseException:
            _restore(saved, model, optimizer)
            optimizer.zero_grad(set_to_none=True)
            raise
        finally:
            totals.zero()

    def replay(self) -> None:
        self.graph.replay()


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> Any:
    params = list(model.parameters())
    state = {
        (i, key): value.detach().clone()
        for i, p in enumerate(params)
        for key, value in optimizer.state.get(p, {}).items()
        if isinstance(value, torch.Tensor)
    }
    return [p.detach().clone() for p in params], state


@torch.no_grad()
def _restore(saved: Any, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    weights, state = saved
    for i, (p, w) in enumerate(zip(model.parameters(), weights, strict=True)):
        p.copy_(w)
        for key, value in optimizer.state.get(p, {}).items():
            if isinstance(value, torch.Tensor):
                if (i, key) in state:
                    value.copy_(state[(i, key)])
                else:  # created by the warm-up: AdamW starts every moment and step at zero
                    value.zero_()


def _train_epoch(
    order: torch.Tensor,
    batch: int,
    rows: Rows,
    step: Callable[[torch.Tensor, torch.Tensor, float], None],
    graph: _GraphStep | None,
    optimizer: torch.optim.Optimizer,
    schedule: LRSchedule,
    totals: _Totals,
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
def _evaluate(
    model: nn.Module, rows: Rows, runtime: Runtime, rank: int = 0, world: int = 1
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
        loss += F.cross_entropy(logits.float(), yb, reduction="sum")
        correct += (logits.argmax(1) == yb).sum()
    if world > 1:
        both = torch.stack([loss, correct])
        torch.distributed.all_reduce(both)
        loss, correct = both[0], both[1]
    n = max(rows.n, 1)
    return float(loss) / n, float(correct) / n  # the one host sync of an evaluation


def _make_optimizer(model: nn.Module, config: TrainConfig, graphs: bool) -> Any:
    device = next(model.parameters()).device
    if graphs:
        # A device-tensor learning rate is read by the captured kernels at every replay.
        return torch.optim.AdamW(
            model.parameters(),
            lr=torch.tensor(config.learning_rate, device=device),
            weight_decay=config.weight_decay,
            fused=True,
            capturable=True,
        )
    return torch.optim.AdamW(
        model.parameters(),
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        fused=device.type in ("cuda", "cpu"),
    )


# --- the training run ----------------------------------------------------------------------


@dataclass
class _TrainState:
    history: list[dict[str, float]]
    best_val_loss: float
    best_epoch: int
    best_weights: dict[str, torch.Tensor] | None
    epoch: int
    bad_epochs: int


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
            from components.core.training import distributed

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
) -> TrainResult:
    """One process's part of a training run (the whole run when ``world == 1``).

    With ``world > 1`` the default process group must be initialised; every rank returns
    the same result and only rank 0 writes checkpoints.
    """
    started = time.perf_counter()
    _configure_torch(config, runtime)
    n, n_features = x_train.shape
    batch = config.batch_size
    steps_per_epoch = math.ceil(n / batch)
    graphs = (
        config.cuda_graphs
        and runtime.device.type == "cuda"
        and runtime.precision != "fp16"  # the scaler's skip-on-overflow is not capturable
        and world == 1
    )
    mlp_config = MLPConfig(n_features, n_classes, config.hidden_sizes, config.dropout)

    def fresh() -> tuple[MLP, Any, LRSchedule, torch.amp.GradScaler]:
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        model = MLP(mlp_config).to(runtime.device)
        optimizer = _make_optimizer(model, config, graphs)
        schedule = LRSchedule(optimizer, config, steps_per_epoch * config.max_epochs)
        scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.precision == "fp16")
        return model, optimizer, schedule, scaler

    model, optimizer, schedule, scaler = fresh()
    state = _TrainState([], math.inf, 0, None, 0, 0)
    ckpt = None
    if checkpoint_dir:
        fingerprint = {
            "config": config.to_json(),
            "device": runtime.device.type,
            "precision": runtime.precision,
            "world": world,
            "data": data_fingerprint(x_train, y_train) + data_fingerprint(x_val, y_val),
        }
        ckpt = Checkpointer(checkpoint_dir, fingerprint)
        resumed = ckpt.load(model, optimizer, schedule, scaler)
        if world > 1:
            resumed = _agree(resumed, runtime.device)
        if resumed is not None:
            state = resumed
            log.info("resumed training from checkpoint after epoch %d", state.epoch)
        else:
            # A failed load may have changed some of the states: start again from the seed.
            model, optimizer, schedule, scaler = fresh()
    resumed_from = state.epoch

    nbytes = (x_train.shape[0] + x_val.shape[0]) * (
        n_features * torch.finfo(runtime.data_dtype).bits // 8 + 8
    )
    streaming = _needs_streaming(config, runtime, nbytes)
    local_batch = math.ceil(batch / world)
    train_rows: Rows
    val_rows: Rows
    if streaming:
        train_rows = _StreamedRows(x_train, y_train, runtime, local_batch)
        val_rows = _StreamedRows(x_val, y_val, runtime, EVAL_ROWS)
    else:
        train_rows = _ResidentRows(x_train, y_train, runtime)
        val_rows = _ResidentRows(x_val, y_val, runtime)

    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    if config.compile and runtime.device.type == "cuda":
        net = torch.compile(net)  # type: ignore[assignment]
    elif config.compile:
        log.warning("compile=True applies to CUDA only; training on %s without it", runtime.device)
    totals = _Totals(runtime.device)
    step = _make_step(net, optimizer, scaler, runtime, totals)
    graph = None
    if graphs and state.epoch < config.max_epochs and n >= batch:
        try:
            graph = _GraphStep(
                step, model, optimizer, totals, batch, n_features, runtime.data_dtype,
                runtime.device,
            )  # fmt: skip
        except Exception as exc:  # an unusual setup must cost speed, never the run
            log.warning("CUDA graph capture failed (%s); training with eager steps", exc)
    if rank == 0:
        progress.report(
            "train",
            f"on {runtime.device} ({runtime.precision}"
            f"{f', {runtime.threads} thread' if runtime.threads else ''}"
            f"{'s' if runtime.threads and runtime.threads != 1 else ''}), {n:,} rows x "
            f"{n_features:,} features, batch {batch:,}, up to {config.max_epochs} epochs, "
            f"{'streamed from host memory' if streaming else 'data on the device'}, "
            f"{'CUDA graph' if graph is not None else 'eager steps'}"
            f"{f', {world} processes' if world > 1 else ''}",
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
        torch.manual_seed(_derived_seed("dropout", config.seed, state.epoch, rank))
        net.train()
        train_loss, train_correct = _train_epoch(
            order, batch, train_rows, step, graph, optimizer, schedule, totals, rank, world
        )
        train_seconds = time.perf_counter() - epoch_start
        val_loss, val_acc = _evaluate(model, val_rows, runtime, rank, world)
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
            progress.report("train", _epoch_line(state, config, time.perf_counter() - started))
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
        best = state.history[max(state.best_epoch, 1) - 1]
        progress.report(
            "train",
            f"stopped after {state.epoch} epochs ({stop_reason.replace('_', ' ')}) in "
            f"{progress.duration(seconds)}: best epoch {state.best_epoch}, val loss "
            f"{best['val_loss']:.4f}, val accuracy {best['val_accuracy']:.4f}",
        )
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
        },
    )


def _epoch_line(state: _TrainState, config: TrainConfig, elapsed: float) -> str:
    """One epoch for the progress log, with an upper bound of the time left."""
    h = state.history[-1]
    per_epoch = sum(r["seconds"] for r in state.history) / len(state.history)
    left = (config.max_epochs - state.epoch) * per_epoch
    return (
        f"epoch {state.epoch}/{config.max_epochs}: train loss {h['train_loss']:.4f}, val loss "
        f"{h['val_loss']:.4f}, val accuracy {h['val_accuracy']:.4f}, "
        f"{h['samples_per_second']:,.0f} rows/s, {progress.duration(elapsed)} so far, "
        + (f"at most {progress.duration(left)} left" if left > 0 else "done")
    )


def _agree(resumed: _TrainState | None, device: torch.device) -> _TrainState | None:
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
        state: _TrainState,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: LRSchedule,
        scaler: torch.amp.GradScaler,
    ) -> None:
        from components.core.io import atomic_path

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
    ) -> _TrainState | None:
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


__all__ = [
    "Checkpointer",
    "EpochEnd",
    "LRSchedule",
    "Runtime",
    "TrainConfig",
    "TrainResult",
    "cpu_thread_count",
    "epoch_order",
    "fit",
    "shard_batch",
    "train_mlp",
]
