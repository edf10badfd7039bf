"""Deterministic content-hash split into train / validation / test.

A row's split depends only on its content and a salt: a row stays in its split when the data
grows, duplicate rows land together, and the champion never trained on today's test rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from components.core.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    """How rows are assigned to train / validation / test; fields are pipeline parameters."""

    train_fraction: float = 0.6  # share of rows (by hash) used to fit
    val_fraction: float = 0.2  # share used for early stopping; the rest is test
    split_salt: str = "sigdeploy-v1"  # changing it reshuffles every row: do so only on purpose

    def __post_init__(self) -> None:
        test = 1.0 - self.train_fraction - self.val_fraction
        if not (0 < self.train_fraction < 1 and 0 < self.val_fraction < 1 and test > 1e-9):
            raise ConfigError(
                f"split fractions train={self.train_fraction} val={self.val_fraction}: each must "
                "be in (0, 1) and together below 1 so that test rows remain"
            )


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A bijective 64-bit mixer: every input bit affects every output bit."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def row_unit_hash(frame: pd.DataFrame, salt: str) -> np.ndarray:
    """Map every row to a number in [0, 1) from its content and the salt."""
    # pandas ignores hash_key for numeric columns, so the salt is mixed in afterwards.
    content = pd.util.hash_pandas_object(frame, index=False).to_numpy(np.uint64)
    salt_bits = np.uint64(int(hashlib.sha256(salt.encode()).hexdigest()[:16], 16))
    hashes = _splitmix64(content ^ salt_bits)
    # The top 53 bits keep full float64 precision.
    return (hashes >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def assign_splits(frame: pd.DataFrame, config: SplitConfig) -> np.ndarray:
    """An array of 'train' / 'val' / 'test', one per row."""
    u = row_unit_hash(frame, config.split_salt)
    cut_val = config.train_fraction
    cut_test = config.train_fraction + config.val_fraction
    return np.where(u < cut_val, "train", np.where(u < cut_test, "val", "test"))


def split_frame(frame: pd.DataFrame, label: str, config: SplitConfig) -> dict[str, pd.DataFrame]:
    """Split and check that every class reaches every split."""
    assignment = assign_splits(frame, config)
    check_class_coverage(frame[label], assignment)
    return {name: frame.loc[assignment == name].reset_index(drop=True) for name in SPLITS}


def check_class_coverage(labels: pd.Series, assignment: np.ndarray) -> None:
    table = pd.crosstab(labels.to_numpy(), assignment)
    for split in SPLITS:
        if split not in table.columns:
            raise DataError(
                f"no row falls in the {split} split; the data set is too small, add rows"
            )
    for cls, row in table.iterrows():
        short = [s for s in SPLITS if row.get(s, 0) == 0]
        if short:
            raise DataError(
                f"class '{cls}' has {int(row.sum())} row(s) and none in the {'/'.join(short)} "
                "split; add rows of that class or drop it"
            )
