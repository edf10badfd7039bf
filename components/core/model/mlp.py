"""The network: a plain multi-layer perceptron for tabular rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class MLPConfig:
    in_features: int  # width of the preprocessor's output
    n_classes: int  # one logit per class
    hidden_sizes: tuple[int, ...] = (256, 128)  # one Linear + ReLU + Dropout per entry
    dropout: float = 0.1  # after every hidden layer; 0 disables it

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"hidden_sizes": list(self.hidden_sizes)}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> MLPConfig:
        return cls(
            in_features=int(obj["in_features"]),
            n_classes=int(obj["n_classes"]),
            hidden_sizes=tuple(int(h) for h in obj["hidden_sizes"]),
            dropout=float(obj["dropout"]),
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
        return self.net(x)
