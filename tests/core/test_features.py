"""The preprocessor: fitted on train only; its JSON form equals scikit-learn's transform."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from components.core.data.features import (
    FeatureConfig,
    Preprocessor,
    build_column_transformer,
    categorical_frame,
    fit_preprocessor,
    select_columns,
    split_columns,
)
from components.core.errors import DataError, SchemaMismatchError


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


def _customers(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in rng.permutation(n)],
            "line": np.arange(n),  # a counter written by a spreadsheet
            "accountId": rng.integers(10**8, 10**9, n),  # random but named like an identifier
            "income": rng.integers(10_000, 10**6, n),  # near-unique whole numbers: a measurement
            "tenure": rng.normal(size=n),
            "plan": rng.choice(["basic", "pro", "team"], n),
            "paid": rng.integers(0, 10**9, n),  # ends in "id" but is no identifier
            "label": rng.integers(0, 2, n),
        }
    )


def test_id_like_columns_are_left_out_with_the_reason(caplog):
    frame = _customers()
    with caplog.at_level("INFO", logger="components.core.data.features"):
        pre = fit_preprocessor(frame, "label")
    dropped = dict(pre.dropped)
    assert set(dropped) == {"customer_id", "line", "accountId"}
    assert dropped["customer_id"] == "ID-like: 2,000 distinct values in 2,000 rows"
    assert dropped["line"].endswith(", a counter")
    assert set(pre.features) == {"income", "tenure", "plan", "paid"}
    assert pre.n_outputs == 3 + 3  # not ~2,000 one-hot columns of customer ids
    assert "column customer_id left out of the features: ID-like" in caplog.text
    again = Preprocessor.from_json(json.loads(json.dumps(pre.to_json())))
    assert again.dropped == pre.dropped


@pytest.mark.parametrize("n", [10, 19])
def test_too_few_rows_never_look_like_ids(n):
    assert select_columns(_customers(n), "label")[1] == {}


def test_bundled_data_sets_lose_no_column():
    from components.core.data.sources import load_source

    for name in ("digits", "wine", "breast_cancer"):
        features, dropped = select_columns(load_source(f"sklearn:{name}"), "label")
        assert dropped == {} and len(features) > 10, name


def test_id_and_feature_columns_override_the_detection():
    frame = _customers(200)
    kept_all = select_columns(frame, "label", FeatureConfig(id_columns="none"))
    assert kept_all[1] == {} and len(kept_all[0]) == 7
    named = select_columns(frame, "label", FeatureConfig(id_columns="paid"))
    assert named[1] == {"paid": "named in id_columns"}  # named ones only: no detection
    chosen = select_columns(frame, "label", FeatureConfig(feature_columns=("tenure", "line")))
    assert chosen[0] == ["line", "tenure"]  # frame order; a named feature is used as asked
    assert chosen[1]["plan"] == "not in feature_columns"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (FeatureConfig(feature_columns=("Tenure",)), "column 'Tenure' (in feature_columns or "),
        (FeatureConfig(id_columns="customerid"), "(did you mean customer_id?)"),
    ],
)
def test_unknown_column_names_are_one_line_with_a_suggestion(config, message):
    with pytest.raises(DataError) as info:
        select_columns(_customers(50), "label", config)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_nothing_left_to_learn_from_is_refused():
    frame = pd.DataFrame({"id": [f"u{i}" for i in range(50)], "label": [0, 1] * 25})
    with pytest.raises(DataError, match="no feature columns are left .* id_columns=none"):
        select_columns(frame, "label")
