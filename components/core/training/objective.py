"""What the network is trained to do: classify (cross-entropy on class indices) or regress
(mean squared error or Huber loss on a standardised numeric target).

The loop, the train step, the rows and the CUDA graph's label buffer take one ``Objective``
and ask it for the label dtype, the summed loss of a batch and its count of right answers
(0 for regression, where "right" has no meaning; its validation score is the loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["CLASSIFY", "OBJECTIVES", "Objective", "objective"]

HUBER_DELTA = 1.0  # in standard deviations of the target (it is standardised for training)


@dataclass(frozen=True)
class Objective:
    name: str  # classify | mse | huber

    @property
    def regression(self) -> bool:
        return self.name != "classify"

    @property
    def label_dtype(self) -> torch.dtype:
        return torch.float32 if self.regression else torch.long

    def loss_sum(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batch's summed loss, in float32 whatever the autocast dtype of ``out``."""
        out = out.float()
        if self.name == "classify":
            return F.cross_entropy(out, y, reduction="sum")
        if self.name == "mse":
            return F.mse_loss(out[:, 0], y, reduction="sum")
        return F.huber_loss(out[:, 0], y, reduction="sum", delta=HUBER_DELTA)

    def correct(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Rows classified right (a 0 tensor for regression)."""
        if self.regression:
            return torch.zeros((), dtype=torch.long, device=out.device)
        return (out.argmax(1) == y).sum()


CLASSIFY = Objective("classify")
OBJECTIVES = {name: Objective(name) for name in ("classify", "mse", "huber")}


def objective(name: str) -> Objective:
    if name not in OBJECTIVES:
        raise ValueError(f"objective {name!r} must be one of {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]
