"""Shared fixtures: tiny data made here with fixed seeds, and one quickly trained bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.core.data.features import fit_preprocessor
from components.core.data.sources import load_source
from components.core.data.split import SplitConfig, split_frame

LABEL = "label"


@pytest.fixture(scope="session")
def digits() -> pd.DataFrame:
    return load_source("sklearn:digits", LABEL)


@pytest.fixture(scope="session")
def digits_parts(digits: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return split_frame(digits, LABEL, SplitConfig())


@pytest.fixture()
def mixed_frame() -> pd.DataFrame:
    """Numeric and categorical columns with missing values, three classes."""
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(3, 2, size=n),
            "color": rng.choice(["red", "green", "blue"], size=n),
            "size": rng.choice(["S", "M", "L", "XL"], size=n),
        }
    )
    frame.loc[rng.choice(n, 20, replace=False), "x1"] = np.nan
    frame.loc[rng.choice(n, 15, replace=False), "color"] = None
    frame[LABEL] = np.where(frame["x2"] > 3.5, "high", np.where(frame["x1"] > 0, "mid", "low"))
    return frame


def train_bundle(
    path: Path,
    train: pd.DataFrame,
    val: pd.DataFrame,
    *,
    seed: int = 1,
    hidden: tuple[int, ...] = (256, 128),
    max_epochs: int = 8,
    name: str = "digits-mlp",
) -> Path:
    """A real bundle, trained and written exactly as the train step does it."""
    from components.core.steps import train_frames
    from components.core.training.config import TrainConfig

    config = TrainConfig(max_epochs=max_epochs, seed=seed, hidden_sizes=hidden)
    train_frames(train, val, fit_preprocessor(train, LABEL), LABEL, config, path, name)
    return path


@pytest.fixture(scope="session")
def bundle_trainer():
    """``train_bundle`` for test packages that make bundles of their own."""
    return train_bundle


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory, digits_parts) -> Path:
    """A small digits bundle trained for a few epochs (session-wide, a few seconds)."""
    path = tmp_path_factory.mktemp("bundle") / "model"
    return train_bundle(path, digits_parts["train"], digits_parts["val"])
