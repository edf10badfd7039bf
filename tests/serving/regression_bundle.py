"""A tiny regression bundle for the tests that score one (serving, `sigdeploy predict`,
batch scoring): numeric and categorical features with gaps, a target around 100 (so that
float32 rounding of the values is visible at 1e-5), trained with the core."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TARGET = "y"
NAME = "prices-mlp"


def regression_frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(5.0, 2.0, size=n),
            "c": rng.choice(list("xyz"), size=n),
        }
    )
    frame[TARGET] = (
        3 * frame["a"]
        - (frame["b"] - 5.0)
        + (frame["c"] == "x") * 1.5
        + rng.normal(scale=0.3, size=n)
        + 100.0
    )
    frame.loc[rng.choice(n, n // 20, replace=False), "b"] = np.nan
    return frame


def train_regression_bundle(path: Path, frame: pd.DataFrame, max_epochs: int = 30) -> Path:
    """A regression bundle written by ``save_bundle`` as the train step writes one."""
    from components.core.data.features import FeatureConfig, fit_preprocessor
    from components.core.model.bundle import save_bundle
    from components.core.training.config import TrainConfig
    from components.core.training.train import train_regressor

    n = len(frame)
    train, val = frame.iloc[: n * 2 // 3], frame.iloc[n * 2 // 3 :]
    pre = fit_preprocessor(train, TARGET, FeatureConfig())
    result = train_regressor(
        pre.transform(train),
        train[TARGET].to_numpy(),
        pre.transform(val),
        val[TARGET].to_numpy(),
        TrainConfig(max_epochs=max_epochs, seed=0, hidden_sizes=(16,)),
    )
    extra = {"name": NAME, "training": {"target": result.extra["target"]}}
    return save_bundle(path, result.network, pre, [], TARGET, extra=extra)
