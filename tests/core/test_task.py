"""task = auto | classification | regression, read from the label; bad labels are one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.core.data.task import detect_task
from components.core.errors import DataError


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (list(range(10)) * 5, "classification"),  # digits 0-9
        ([1.0, 2.0, 3.0, 4.0, 5.0] * 10, "classification"),  # whole numbers read as floats
        (["cat", "dog"] * 20, "classification"),
        ([True, False] * 20, "classification"),
        (list(np.linspace(0, 1, 50)), "regression"),  # fractional
        (list(range(25, 346, 3)), "regression"),  # many whole numbers (diabetes-like)
    ],
)
def test_auto_reads_the_label(values, task):
    assert detect_task(pd.Series(values, name="y")) == task


def test_the_task_asked_for_wins_when_it_fits():
    assert detect_task(pd.Series([1, 2, 3] * 10), "regression") == "regression"
    assert detect_task(pd.Series(np.linspace(0, 1, 30)), "classification") == "classification"


@pytest.mark.parametrize(
    ("values", "task", "words"),
    [
        (["a", "b", "c"] * 10, "regression", "task=regression needs a number"),
        ([1.0, np.inf, 2.5, 3.5], "auto", "not finite"),
        ([1.5, None, 2.5, 3.5], "regression", "missing or not finite"),
        ([7] * 30, "auto", "nothing to learn"),
        ([f"name {i}" for i in range(40)], "auto", "too many to be classes"),
        ([1, 2], "nonsense", "task="),
    ],
)
def test_bad_labels_are_one_line(values, task, words):
    with pytest.raises(DataError, match=words) as caught:
        detect_task(pd.Series(values, name="price"), task)
    assert "\n" not in str(caught.value)
    if task != "nonsense":
        assert "'price'" in str(caught.value)
