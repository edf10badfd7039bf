"""One optimiser step: forward, backward and AdamW update for a batch, and the network and
optimiser it runs on.

CUDA: fused AdamW, and the whole train step captured once as a CUDA graph and replayed per
batch (not with fp16's gradient scaler, whose skip-on-overflow cannot be captured, nor with
DDP). Losses and correct counts add up on the device: the host does not wait for it
inside an epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from components.core.training.config import TrainConfig
from components.core.training.objective import CLASSIFY, Objective
from components.core.training.runtime import Runtime

log = logging.getLogger(__name__)

__all__ = [
    "GraphStep",
    "Step",
    "Totals",
    "capture_graph",
    "make_optimizer",
    "make_step",
    "use_cuda_graphs",
    "wrap_network",
]

GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before capture, as CUDA graphs need

Step = Callable[[torch.Tensor, torch.Tensor, float], None]


def use_cuda_graphs(config: TrainConfig, runtime: Runtime, world: int) -> bool:
    """Whether this run captures its train step (its optimiser is then built for it)."""
    return (
        config.cuda_graphs
        and runtime.device.type == "cuda"
        and runtime.precision != "fp16"  # the scaler's skip-on-overflow is not capturable
        and world == 1
    )


def make_optimizer(model: nn.Module, config: TrainConfig, graphs: bool) -> Any:
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


def wrap_network(model: nn.Module, config: TrainConfig, runtime: Runtime, world: int) -> nn.Module:
    """What the step calls: ``model`` in DDP over several processes, compiled on request."""
    net: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    if config.compile and runtime.device.type == "cuda":
        net = torch.compile(net)  # type: ignore[assignment]
    elif config.compile:
        log.warning("compile=True applies to CUDA only; training on %s without it", runtime.device)
    return net


class Totals:
    """Loss and correct-count sums of an epoch, kept on the device: no sync per step."""

    def __init__(self, device: torch.device, objective: Objective = CLASSIFY) -> None:
        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.long, device=device)
        self.objective = objective

    def add(self, loss_sum: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.loss.add_(loss_sum.detach())
        self.correct.add_(self.objective.correct(logits.detach(), y))

    def zero(self) -> None:
        self.loss.zero_()
        self.correct.zero_()


def make_step(
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    runtime: Runtime,
    totals: Totals,
) -> Step:
    """Forward, backward and optimiser update for one batch (gradients must be unset)."""

    def step(xb: torch.Tensor, yb: torch.Tensor, loss_scale: float) -> None:
        with runtime.autocast():
            logits = net(xb)
        loss_sum = totals.objective.loss_sum(logits, yb)
        # loss_scale = world / global batch rows: DDP's gradient average over ranks then
        # equals the mean over the whole global batch, even when shards differ in size.
        scaler.scale(loss_sum * loss_scale).backward()
        scaler.step(optimizer)
        scaler.update()
        totals.add(loss_sum, logits, yb)

    return step


def capture_graph(
    step: Step,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    totals: Totals,
    rows: int,
    n_features: int,
    runtime: Runtime,
) -> GraphStep | None:
    """``step`` captured for batches of ``rows`` rows, or None (eager steps) if that fails."""
    try:
        return GraphStep(
            step, model, optimizer, totals, rows, n_features, runtime.data_dtype,
            runtime.device,
        )  # fmt: skip
    except Exception as exc:  # an unusual setup must cost speed, never the run
        log.warning("CUDA graph capture failed (%s); training with eager steps", exc)
        return None


class GraphStep:
    """The whole train step (forward, backward, AdamW) captured once as a CUDA graph.

    One replay launches what would otherwise be dozens of kernels from Python, which is what
    keeps a large GPU busy with a small MLP. Batches enter through the fixed buffers ``x``
    and ``y``; the learning rate is a device tensor that the schedule fills in place.
    """

    def __init__(
        self,
        step: Step,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        totals: Totals,
        rows: int,
        n_features: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        self.rows = rows
        self.x = torch.zeros((rows, n_features), dtype=dtype, device=device)
        self.y = torch.zeros(rows, dtype=totals.objective.label_dtype, device=device)
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
