"""The learning rate as a function of the optimiser step: one-cycle, cosine with warm-up, or
constant (``TrainConfig.schedule``)."""

from __future__ import annotations

import math
from typing import Any

import torch

from components.core.training.config import TrainConfig

__all__ = ["LRSchedule"]


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
