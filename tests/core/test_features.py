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


# ------------------------------------------------------------------ column kinds (issue 14)


def _frame(n=60, **extra):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=n), "label": rng.choice(["a", "b"], n)})
    for name, values in extra.items():
        frame[name] = values
    return frame


def test_a_column_without_values_is_left_out_unless_named():
    frame = _frame(empty=np.nan)
    features, dropped = select_columns(frame, "label")
    assert features == ["x"] and dropped == {"empty": "no values in any row"}
    pre = fit_preprocessor(frame, "label")
    assert pre.features == ("x",)
    with pytest.raises(DataError, match="column 'empty' \\(in feature_columns\\) has no values"):
        select_columns(frame, "label", FeatureConfig(feature_columns=("x", "empty")))


@pytest.mark.parametrize(
    "values",
    [
        pd.date_range("2024-01-01", periods=60, freq="D").repeat(1),  # datetime64 (Parquet)
        [f"2024-01-{1 + i % 28:02d}" for i in range(60)],  # ISO text (CSV), repeating
        [f"2024-01-01T{i % 24:02d}:30:00Z" for i in range(60)],
    ],
    ids=["datetime64", "iso-date-text", "iso-timestamp-text"],
)
def test_dates_are_left_out_with_what_to_do_unless_named(values):
    """One-hot encoded, a date in the test rows is nearly always one never seen in training
    (and it was only by luck left out as ID-like when every row had its own)."""
    frame = _frame(when=values)
    features, dropped = select_columns(frame, "label")
    assert features == ["x"]
    assert dropped["when"].startswith("dates or times; to use it, derive number columns")
    features, _ = select_columns(frame, "label", FeatureConfig(feature_columns=("x", "when")))
    assert features == ["x", "when"]  # named: taken as it is (as categories)


def test_text_that_only_starts_like_a_date_is_no_date():
    frame = _frame(code=[f"2024-01-01 batch {i % 3}" for i in range(60)])
    assert select_columns(frame, "label")[0] == ["x", "code"]


def test_a_column_of_numbers_with_stray_text_is_refused():
    values = [str(i * 1.5) for i in range(60)]
    values[5] = values[17] = "?"
    frame = _frame(reading=values)
    with pytest.raises(DataError) as info:
        select_columns(frame, "label")
    assert str(info.value) == (
        "column 'reading' mixes numbers and text: 58 of its values are numbers, 2 are not "
        "(e.g. '?'); make every value a number (an empty cell for a missing one), or name it "
        "in id_columns to leave it out"
    )
    features, dropped = select_columns(frame, "label", FeatureConfig(id_columns="reading"))
    assert features == ["x"] and "reading" in dropped


def test_text_categories_with_a_few_numbers_are_categories():
    frame = _frame(size=["S", "M", "L", "10"] * 15)
    pre = fit_preprocessor(frame, "label")
    assert pre.categorical == ("size",) and pre.categories[0] == ("10", "L", "M", "S")


def test_a_boolean_column_is_a_numeric_feature():
    frame = _frame(flag=[True, False, False] * 20)
    pre = fit_preprocessor(frame, "label")
    assert pre.numeric == ("x", "flag")
    assert pre.means[1] == pytest.approx(1 / 3)


def test_long_text_values_are_categories_and_never_quoted_whole():
    long = ["word " * 50_000 + str(i % 3) for i in range(60)]
    pre = fit_preprocessor(_frame(text=long), "label")
    assert pre.categorical == ("text",) and len(pre.categories[0]) == 3
    values = [str(i) for i in range(60)]
    values[3] = "x" * 100_000
    with pytest.raises(DataError) as info:
        select_columns(_frame(reading=values), "label")
    assert len(str(info.value)) < 300 and "'xxxx" in str(info.value)


def test_inf_is_refused_when_fitting_too():
    frame = _frame()
    frame.loc[4, "x"] = -np.inf
    with pytest.raises(DataError, match="train split: column 'x' has 1 row\\(s\\) holding inf"):
        fit_preprocessor(frame, "label")
