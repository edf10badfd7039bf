"""The preprocessor: fitted on train only; its JSON form equals scikit-learn's transform."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.core.errors import SchemaMismatchError
from components.core.features import (
    Preprocessor,
    build_column_transformer,
    categorical_frame,
    fit_preprocessor,
    split_columns,
)


def test_json_transform_matches_sklearn_column_transformer(mixed_frame):
    train, test = mixed_frame.iloc[:200], mixed_frame.iloc[200:].copy()
    test.loc[test.index[:3], "size"] = "XXL"  # unseen category: ignored, all zeros
    pre = fit_preprocessor(train, "label")
    numeric, categorical = split_columns(train, "label")
    ct = build_column_transformer(numeric, categorical).fit(categorical_frame(train, categorical))
    expected = ct.transform(categorical_frame(test, categorical))
    np.testing.assert_allclose(pre.transform(test), expected, rtol=1e-6, atol=1e-6)


def test_fitted_on_train_only(mixed_frame):
    train = mixed_frame.iloc[:200]
    pre = fit_preprocessor(train, "label")
    i = pre.numeric.index("x2")
    assert pre.means[i] == pytest.approx(train["x2"].mean())
    assert pre.means[i] != pytest.approx(mixed_frame["x2"].mean())
    assert pre.medians[pre.numeric.index("x1")] == pytest.approx(train["x1"].median())


def test_json_round_trip_is_plain_json(mixed_frame):
    pre = fit_preprocessor(mixed_frame, "label")
    text = json.dumps(pre.to_json())
    again = Preprocessor.from_json(json.loads(text))
    np.testing.assert_array_equal(again.transform(mixed_frame), pre.transform(mixed_frame))


def test_missing_column_is_a_schema_error(mixed_frame):
    pre = fit_preprocessor(mixed_frame, "label")
    with pytest.raises(SchemaMismatchError, match="missing feature column.*color"):
        pre.transform(mixed_frame.drop(columns=["color"]))


def test_missing_numeric_values_take_the_train_median():
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0, 10.0], "label": [0, 1, 0, 1]})
    pre = fit_preprocessor(train, "label")
    out = pre.transform(pd.DataFrame({"a": [np.nan]}))
    expected = (2.5 - train["a"].mean()) / train["a"].std(ddof=0)
    assert out[0, 0] == pytest.approx(expected, rel=1e-6)
