"""Shared fixtures: tiny data made here with fixed seeds, and one quickly trained bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.core.data import load_source
from components.core.features import feature_statistics, fit_preprocessor
from components.core.split import SplitConfig, split_frame

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


@pytest.fixture(scope="session")
def trained_bundle(tmp_path_factory: pytest.TempPathFactory, digits_parts) -> Path:
    """A small digits bundle trained for a few epochs (session-wide, a few seconds)."""
    from components.core.bundle import save_bundle
    from components.core.metrics import encode_labels
    from components.core.training import TrainConfig, train_mlp

    train, val = digits_parts["train"], digits_parts["val"]
    pre = fit_preprocessor(train, LABEL)
    classes = sorted(train[LABEL].unique().tolist())
    result = train_mlp(
        pre.transform(train),
        encode_labels(train[LABEL], classes),
        pre.transform(val),
        encode_labels(val[LABEL], classes),
        len(classes),
        TrainConfig(max_epochs=8, seed=1),
    )
    path = tmp_path_factory.mktemp("bundle") / "model"
    save_bundle(
        path,
        result.network,
        pre,
        classes,
        LABEL,
        extra={"name": "digits-mlp", "feature_statistics": feature_statistics(train, pre)},
    )
    return path
