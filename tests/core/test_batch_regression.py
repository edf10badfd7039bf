"""Batch scoring with a regressor: ``predicted_value`` appended (no label or probability
columns), the labelled rows' labels and predictions handed back for RMSE/MAE/R^2, one-line
errors for a non-numeric label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.core.errors import DataError
from components.core.evaluation.regression import regression_metrics
from components.core.model import batch
from components.core.model.bundle import Bundle, load_bundle
from tests.serving.regression_bundle import TARGET, regression_frame, train_regression_bundle


@pytest.fixture(scope="module")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> Bundle:
    path = tmp_path_factory.mktemp("regression") / "bundle"
    return load_bundle(train_regression_bundle(path, regression_frame()))


@pytest.fixture()
def new_data() -> pd.DataFrame:
    frame = regression_frame(120, seed=11)
    frame.insert(0, "row_id", range(len(frame)))  # not a feature: carried through
    return frame


def test_score_frame_appends_the_predicted_value(regressor, new_data):
    scored = batch.score_frame(regressor, new_data)
    assert list(scored.columns) == [*new_data.columns, batch.PREDICTED_VALUE]
    pd.testing.assert_frame_equal(scored[new_data.columns], new_data)
    assert scored[batch.PREDICTED_VALUE].dtype == np.float64
    np.testing.assert_array_equal(
        scored[batch.PREDICTED_VALUE].to_numpy(), regressor.predict_values(new_data)
    )
    # without the target column too: it is never a feature
    unlabelled = batch.score_frame(regressor, new_data.drop(columns=TARGET))
    np.testing.assert_array_equal(
        unlabelled[batch.PREDICTED_VALUE].to_numpy(), scored[batch.PREDICTED_VALUE].to_numpy()
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_score_file_returns_the_labelled_rows_to_score(regressor, new_data, tmp_path: Path, suffix):
    new_data.loc[:9, TARGET] = np.nan  # unlabelled rows are scored but not counted
    out = tmp_path / f"scored{suffix}"
    result = batch.score_file(regressor, new_data, out)
    assert (result.rows, result.labelled_rows, result.accuracy) == (120, 110, None)
    scored = batch.score_frame(regressor, new_data)
    assert result.labelled_values is not None
    truth, predicted = result.labelled_values
    np.testing.assert_array_equal(truth, new_data[TARGET].to_numpy()[10:])
    np.testing.assert_array_equal(predicted, scored[batch.PREDICTED_VALUE].to_numpy()[10:])
    assert regression_metrics(truth, predicted)["r2"] > 0.8  # what `sigdeploy predict` prints
    if suffix == ".csv":
        written = pd.read_csv(out)
    elif suffix == ".parquet":
        written = pd.read_parquet(out)
    else:
        written = pd.read_json(out, lines=True)
    assert batch.PREDICTED_VALUE in written.columns
    assert not [c for c in written.columns if c.startswith(batch.PROBABILITY)]
    assert batch.PREDICTION not in written.columns
    np.testing.assert_allclose(
        written[batch.PREDICTED_VALUE], scored[batch.PREDICTED_VALUE], rtol=1e-12
    )


def test_no_label_column_means_no_metrics(regressor, new_data, tmp_path):
    result = batch.score_file(regressor, new_data.drop(columns=TARGET), tmp_path / "s.csv")
    assert (result.labelled_values, result.labelled_rows, result.accuracy) == (None, 0, None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("text_label", "label column 'y' holds 'n/a', not a number"),
        ("taken", "already has column(s) predicted_value"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(regressor, new_data, tmp_path, change, message):
    if change == "text_label":
        new_data[TARGET] = new_data[TARGET].astype(object)
        new_data.loc[4, TARGET] = "n/a"
    else:
        new_data[batch.PREDICTED_VALUE] = 0.0
    with pytest.raises(DataError) as caught:
        batch.score_file(regressor, new_data, tmp_path / "scored.csv")
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []
