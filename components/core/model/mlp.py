"""The network: a plain multi-layer perceptron for tabular rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class MLPConfig:
    in_features: int  # width of the preprocessor's output
    n_classes: int  # one logit per class
    hidden_sizes: tuple[int, ...] = (256, 128)  # one Linear + ReLU + Dropout per entry
    dropout: float = 0.1  # after every hidden layer; 0 disables it
    temperature: float = 1.0  # logits are divided by it (fitted on the validation rows
    # after training, training.calibrate); 1.0 in bundles written before calibration
    task: str = "classification"  # classification | regression (one output, n_classes = 1)
    target_mean: float = 0.0  # regression: the output is net(x) * target_scale + target_mean
    target_scale: float = 1.0  # (the network trains on the standardised target)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"hidden_sizes": list(self.hidden_sizes)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> MLPConfig:
        return cls(
            in_features=int(obj["in_features"]),
            n_classes=int(obj["n_classes"]),
            hidden_sizes=tuple(int(h) for h in obj["hidden_sizes"]),
            dropout=float(obj["dropout"]),
            temperature=float(obj.get("temperature", 1.0)),
            task=str(obj.get("task", "classification")),
            target_mean=float(obj.get("target_mean", 0.0)),
            target_scale=float(obj.get("target_scale", 1.0)),
        )


class MLP(nn.Module):
    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = config.in_features
        for hidden in config.hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
            width = hidden
        layers.append(nn.Linear(width, config.n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.task == "regression":
            return self.net(x) * self.config.target_scale + self.config.target_mean
        if self.config.temperature != 1.0:
            return self.net(x) / self.config.temperature
        return self.net(x)

    def regressor(self, mean: float, scale: float) -> MLP:
        """This network (trained on the standardised target) answering in the target's unit."""
        self.config = replace(
            self.config, task="regression", target_mean=float(mean), target_scale=float(scale)
        )
        return self

    def calibrated(self, temperature: float) -> MLP:
        """This network with its logits divided by ``temperature`` from now on."""
        self.config = replace(self.config, temperature=float(temperature))
        return self
