"""Which task a label asks for: ``task = auto | classification | regression``.

``auto`` reads the label: text and true/false are classes; numbers are classes when they are
whole and few (at most ``MAX_AUTO_CLASSES`` distinct values, as digits' 0-9 or a 1-5
rating), and a regression target otherwise (any fractional value, or many distinct whole
numbers such as a price in cents or diabetes' disease progression). A label that fits
neither task, a regression target that is missing or infinite somewhere, or
``task=regression`` with a text label is a DataError: one line naming the label and what to
do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from components.core.errors import DataError

__all__ = ["MAX_AUTO_CLASSES", "TASKS", "detect_task"]

TASKS = ("auto", "classification", "regression")
MAX_AUTO_CLASSES = 20  # whole-number labels with more distinct values are a numeric target
TEXT_DISTINCT_SHARE = 0.5  # a text label this distinct (over 20+ rows) is no set of classes


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def detect_task(series: pd.Series, task: str = "auto", name: str | None = None) -> str:
    """``classification`` or ``regression`` for the label column ``series`` (module
    docstring); DataError (one line) when the label cannot be used for it."""
    label = name or str(series.name)
    if task not in TASKS:
        raise DataError(f"task={task!r} must be one of {', '.join(TASKS)}")
    known = series.dropna()
    if known.nunique() < 2:
        shown = repr(known.iloc[0]) if len(known) else "no value"
        raise DataError(
            f"label '{label}' has {shown} in every row: there is nothing to learn; pick "
            "another label column"
        )
    if task == "regression" or (task == "auto" and _numeric_target(series)):
        _check_target(series, label, asked=task == "regression")
        return "regression"
    if task == "auto" and not _is_number(series):
        distinct = known.nunique()
        if len(known) >= 20 and distinct > TEXT_DISTINCT_SHARE * len(known):
            raise DataError(
                f"label '{label}' is text with {distinct:,} different values in {len(known):,} "
                "rows: too many to be classes, and text cannot be a regression target; pick "
                "another label column"
            )
    return "classification"


def _numeric_target(series: pd.Series) -> bool:
    if not _is_number(series):
        return False
    values = series.dropna().to_numpy(np.float64)
    values = values[np.isfinite(values)]
    if len(values) and not np.all(values == np.round(values)):
        return True
    return int(pd.Series(values).nunique()) > MAX_AUTO_CLASSES


def _check_target(series: pd.Series, label: str, asked: bool) -> None:
    if not _is_number(series):
        example = series.dropna().iloc[0]
        kind = "true/false" if pd.api.types.is_bool_dtype(series) else "text"
        raise DataError(
            f"label '{label}' is {kind} (e.g. {example!r}) and task=regression needs a number "
            "in every row; convert it to numbers or use task=classification"
            if asked
            else f"label '{label}' is {kind}; use task=classification"
        )
    values = series.to_numpy(np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        first = int(np.argmax(bad))
        raise DataError(
            f"label '{label}' is a regression target with {int(bad.sum()):,} value(s) that are "
            f"missing or not finite (first: row {first + 1}, {values[first]}); drop or fix "
            "those rows, a target cannot be imputed"
        )
