"""The content-hash split: stable when data grows, no duplicates across splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.core.data.split import SplitConfig, assign_splits, split_frame
from components.core.errors import ConfigError


def _key(frame: pd.DataFrame) -> pd.Series:
    return pd.util.hash_pandas_object(frame, index=False)


def test_rows_keep_their_split_when_data_is_appended(digits):
    config = SplitConfig()
    first = digits.iloc[:1000].reset_index(drop=True)
    grown = digits.reset_index(drop=True)  # the first 1000 rows plus 797 more
    before = assign_splits(first, config)
    after = assign_splits(grown, config)
    assert (before == after[:1000]).all()


def test_row_order_does_not_matter(digits):
    config = SplitConfig()
    shuffled = digits.sample(frac=1.0, random_state=3).reset_index(drop=True)
    a = dict(zip(_key(digits), assign_splits(digits, config), strict=True))
    b = dict(zip(_key(shuffled), assign_splits(shuffled, config), strict=True))
    assert a == b


def test_duplicates_never_straddle_splits(digits):
    dup = pd.concat([digits, digits.iloc[:300], digits.iloc[100:200]]).reset_index(drop=True)
    parts = split_frame(dup, "label", SplitConfig())
    keys = {name: set(_key(part)) for name, part in parts.items()}
    assert not keys["train"] & keys["test"]
    assert not keys["train"] & keys["val"]
    assert not keys["val"] & keys["test"]


def test_fractions_are_respected_and_salt_reshuffles(digits):
    config = SplitConfig(0.6, 0.2, "a")
    assignment = assign_splits(digits, config)
    shares = {s: float(np.mean(assignment == s)) for s in ("train", "val", "test")}
    assert abs(shares["train"] - 0.6) < 0.05 and abs(shares["test"] - 0.2) < 0.05
    other = assign_splits(digits, SplitConfig(0.6, 0.2, "b"))
    assert (assignment != other).mean() > 0.3


@pytest.mark.parametrize("train,val", [(0.8, 0.2), (0.0, 0.5), (1.2, 0.1), (0.5, -0.1)])
def test_bad_fractions(train, val):
    with pytest.raises(ConfigError, match="split fractions"):
        SplitConfig(train, val)


def test_a_row_keeps_its_split_when_columns_are_added_reordered_or_retyped(digits):
    from components.core.data.split import RowKey

    config = SplitConfig()
    key = RowKey.content(digits.columns)  # what the champion recorded
    before = assign_splits(digits, config, key)
    changed = digits.astype({"label": float, "pixel_0_2": "float32"}).assign(extra=1.0)
    changed = changed[list(reversed(changed.columns))]
    assert (assign_splits(changed, config, key) == before).all()
    assert (assign_splits(digits, config) == before).all()  # a first model's default key


def test_the_split_key_must_not_be_the_label(digits):
    from components.core.errors import DataError

    with pytest.raises(DataError, match="split_key 'label' is the label"):
        split_frame(digits, "label", SplitConfig(split_key="label"))
