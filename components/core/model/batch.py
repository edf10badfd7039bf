"""Batch scoring: a whole table through one model bundle, predictions written to a file.

What `sigdeploy predict` runs. The bundle's own preprocessor turns raw rows into features, as
in evaluation and serving; the output is the input table with the predicted label and one
probability column per class appended (a regressor's: its ``predicted_value``), written
atomically (nothing appears on failure).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from components.core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from components.core.model.bundle import Bundle

PREDICTION = "predicted_label"
PROBABILITY = "probability_"  # + the class label
PREDICTED_VALUE = "predicted_value"  # a regressor's prediction, in the target's unit
FORMATS = (".csv", ".parquet", ".jsonl")


@dataclass(frozen=True)
class BatchResult:
    rows: int
    output: str
    accuracy: float | None  # against the label column, when the data has one
    labelled_rows: int  # rows whose label was known (missing labels are not counted)
    # a regressor's labelled rows: (label, predicted value) arrays, for the caller to score
    # (evaluation sits above this layer); None for a classifier or without labelled rows
    labelled_values: tuple[np.ndarray, np.ndarray] | None = None


def check_output(path: str | Path) -> Path:
    """The output path, refused before any scoring when its format is not one we write."""
    target = Path(path).expanduser()
    if target.suffix.lower() not in FORMATS:
        raise ConfigError(
            f"--output {path}: write a {', '.join(FORMATS)} file (the extension picks the format)"
        )
    if target.is_dir():
        raise ConfigError(f"--output {path}: is a directory; name a file")
    return target


def score_frame(bundle: Bundle, frame: pd.DataFrame, label: str | None = None) -> pd.DataFrame:
    """``frame`` with the prediction and the class probabilities appended; a regressor's
    ``predicted_value`` instead.

    ``label`` (default: the bundle's label column) may be present or absent; it is never a
    feature. A feature the model needs that the data lacks is a one-line error; columns the
    model does not know are kept in the output and ignored.
    """
    label = label or bundle.label
    if frame.empty:
        raise DataError("the data has no rows to score")
    if bundle.regression:
        names = [PREDICTED_VALUE]
    else:
        names = [PREDICTION, *(f"{PROBABILITY}{c}" for c in bundle.classes)]
    taken = [n for n in names if n in frame.columns]
    if taken:
        raise DataError(
            f"data to score already has column(s) {', '.join(taken)}; rename them, they would "
            "be overwritten by the predictions"
        )
    # Other columns (an id, a timestamp) are carried through to the output, not used.
    missing = [f for f in bundle.features if f not in frame.columns or f == label]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(
            f"data to score lacks {len(missing)} feature column(s) the model was trained on: "
            f"{shown}; add them (missing values are fine: they are imputed)"
        )
    out = frame.copy()
    if bundle.regression:
        out[PREDICTED_VALUE] = bundle.predict_values(frame[bundle.features])
        return out
    proba = bundle.predict_proba(frame[bundle.features])
    out[PREDICTION] = np.asarray(bundle.classes, dtype=object)[proba.argmax(1)]
    for i, c in enumerate(bundle.classes):
        out[f"{PROBABILITY}{c}"] = proba[:, i]
    return out


def accuracy_against(scored: pd.DataFrame, label: str) -> tuple[float | None, int]:
    """Share of rows whose prediction equals the label column, over the labelled rows."""
    import pandas as pd

    if label not in scored.columns:
        return None, 0
    known = scored[label].notna()
    n = int(known.sum())
    if n == 0:
        return None, 0
    truth = scored.loc[known, label]
    if pd.api.types.is_float_dtype(truth) and bool((truth % 1 == 0).all()):
        truth = truth.astype(np.int64)  # integer labels read as floats around missing ones
    truth = truth.astype(str).to_numpy()
    predicted = scored.loc[known, PREDICTION].astype(str).to_numpy()
    return float((truth == predicted).mean()), n


def labelled_values(scored: pd.DataFrame, label: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The label and ``predicted_value`` (float64) of the rows whose label is known; None
    without any; DataError (one line) when the label column is not numeric."""
    import pandas as pd

    if label not in scored.columns:
        return None
    column = scored[label]
    truth = pd.to_numeric(column, errors="coerce")
    bad = column[truth.isna() & column.notna()]
    if len(bad):
        raise DataError(
            f"label column {label!r} holds {bad.iloc[0]!r}, not a number; a regressor is "
            "scored against numeric labels: fix or drop that column (or pass --label)"
        )
    values = truth.to_numpy(np.float64, na_value=np.nan)
    known = np.isfinite(values)  # missing (and infinite) labels are not counted
    if not known.any():
        return None
    return values[known], scored[PREDICTED_VALUE].to_numpy(np.float64)[known]


def write_scored(scored: pd.DataFrame, path: str | Path) -> None:
    from components.core.io import atomic_path

    target = check_output(path)
    suffix = target.suffix.lower()
    with atomic_path(target) as tmp:
        if suffix == ".csv":
            scored.to_csv(tmp, index=False)
        elif suffix == ".parquet":
            scored.to_parquet(tmp, index=False)
        else:
            scored.to_json(tmp, orient="records", lines=True)


def score_file(
    bundle: Bundle, frame: pd.DataFrame, output: str | Path, label: str | None = None
) -> BatchResult:
    """Score ``frame`` and write the result to ``output`` (csv, parquet or jsonl)."""
    label = label or bundle.label
    scored = score_frame(bundle, frame, label)
    if bundle.regression:
        pairs = labelled_values(scored, label)
        write_scored(scored, output)
        n = 0 if pairs is None else len(pairs[0])
        return BatchResult(len(scored), str(output), None, n, pairs)
    accuracy, labelled = accuracy_against(scored, label)
    write_scored(scored, output)
    return BatchResult(len(scored), str(output), accuracy, labelled)
