"""The fitted preprocessor: a scikit-learn ColumnTransformer fitted on train only, stored as
plain JSON parameters.

numeric columns: impute the median, then standardise; categorical columns: impute the most
frequent value, then one-hot encode with unknown categories ignored. The JSON form is loaded
without unpickling anything and transforms with numpy, so serving does not need scikit-learn
and a bundle from an untrusted place cannot run code.
"""

from __future__ import annotations

import datetime
import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from components.core.bundle_format import PREPROCESSOR_KIND
from components.core.data.sources import IMAGE_PATH, check_values, quoted
from components.core.errors import ConfigError, DataError, SchemaMismatchError, did_you_mean

log = logging.getLogger(__name__)

# A column is ID-like when nearly every row has its own value (at least this share of the
# rows, over at least ID_MIN_ROWS rows) and it is text, or whole numbers that are either
# named like an identifier or a dense counter (1, 2, 3, ...). Such a column cannot
# generalise: one-hot encoded, each test row gets a category never seen in training.
ID_MIN_ROWS = 20
ID_DISTINCT_SHARE = 0.95
ID_NAME = re.compile(r"(?:^|[^a-zA-Z])(?:id|uuid|guid|key|idx|index|row|rownum)$", re.I)
ID_CAMEL = re.compile(r"[a-z](?:Id|ID|Key|Uuid|UUID)$")  # customerId, orderKey
COUNTER_SPAN = 1.1  # a counter covers nearly every whole number between its ends
AUTO, NONE = "auto", "none"
# Text that is an ISO date or timestamp (2024-05-01, 2024-05-01T12:30:00Z): one-hot encoded,
# nearly every test row would be a date never seen in training, so such a column is left
# out unless named in feature_columns. DATE_SAMPLE values are looked at.
ISO_DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)
DATE_SAMPLE = 1000
# A text column whose values are at least this share numbers is a numeric column with stray
# text in it ("?", "unknown", "1,234"): refused, since one-hot encoding would make every
# number a category of its own.
MIXED_NUMBER_SHARE = 0.5


@dataclass(frozen=True)
class FeatureConfig:
    """Which columns are features; fields are pipeline parameters."""

    id_columns: str = AUTO  # auto = leave out ID-like columns; none; or the names, e.g. id,email
    feature_columns: tuple[str, ...] = ()  # empty = every other column; or exactly these

    def __post_init__(self) -> None:
        named = self.named_ids()
        both = sorted(set(named or ()) & set(self.feature_columns))
        if both:
            raise ConfigError(
                f"id_columns and feature_columns both name {', '.join(both)}; "
                "a column is either an ID or a feature"
            )

    def named_ids(self) -> tuple[str, ...] | None:
        """The ID columns named explicitly; None when they are detected (auto)."""
        text = self.id_columns.strip()
        if text.lower() == AUTO:
            return None
        if text.lower() in (NONE, ""):
            return ()
        return tuple(c.strip() for c in text.split(",") if c.strip())


def id_like(series: pd.Series, name: str) -> str | None:
    """Why ``series`` looks like an identifier, or None when it does not."""
    values = series.dropna()
    n = len(values)
    if n < ID_MIN_ROWS or pd.api.types.is_bool_dtype(values):
        return None
    distinct = int(values.nunique())
    if distinct < ID_DISTINCT_SHARE * n:
        return None
    why = f"ID-like: {distinct:,} distinct values in {n:,} rows"
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(numbers)) or not np.all(numbers == np.round(numbers)):
            return None  # measurements, not identifiers
        if ID_NAME.search(str(name)) or ID_CAMEL.search(str(name)):
            return why
        span = float(numbers.max() - numbers.min()) + 1
        return f"{why}, a counter" if span <= COUNTER_SPAN * distinct else None
    return why


def date_like(series: pd.Series) -> bool:
    """Whether ``series`` holds dates or times: a datetime dtype, date objects, or text in
    ISO form."""
    if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
        return True
    if _is_numeric(series):
        return False
    values = series.dropna().iloc[:DATE_SAMPLE]
    if not len(values):
        return False
    if all(isinstance(v, (datetime.date, datetime.time)) for v in values):
        return True
    return all(isinstance(v, str) and ISO_DATE.fullmatch(v.strip()) for v in values)


def mixed_numbers(series: pd.Series) -> tuple[int, int, Any] | None:
    """(numbers, other values, one of them) when a text column is mostly numbers, else None."""
    if _is_numeric(series):
        return None
    values = series.dropna()
    numbers = pd.to_numeric(values, errors="coerce").notna().to_numpy()
    n_numbers = int(numbers.sum())
    if n_numbers == len(values) or n_numbers < MIXED_NUMBER_SHARE * len(values):
        return None
    return n_numbers, len(values) - n_numbers, values[~numbers].iloc[0]


def select_columns(
    frame: pd.DataFrame, label: str, config: FeatureConfig | None = None
) -> tuple[list[str], dict[str, str]]:
    """The feature columns, in frame order, and the columns left out with the reason.

    Without feature_columns, a column is left out when it is named in id_columns, has no
    values at all, holds dates or times, or (id_columns=auto) looks like an ID; a text
    column that is mostly numbers is refused. Columns named in feature_columns are taken as
    they are (text as categories), but each must have a value somewhere."""
    config = config or FeatureConfig()
    columns = [c for c in frame.columns if c != label]
    wanted = list(config.feature_columns)
    named = config.named_ids()
    unknown = [c for c in [*wanted, *(named or ())] if c not in columns]
    if unknown:
        name = unknown[0]
        raise DataError(
            f"column '{name}' (in feature_columns or id_columns) is not in the data"
            f"{did_you_mean(name, columns)}; the data has {len(columns)} columns besides "
            f"the label '{label}'"
        )
    dropped: dict[str, str] = {}
    # An image folder's path column identifies the row (the split keys on it): no feature,
    # and not "left out" either, unless named.
    columns = [c for c in columns if c != IMAGE_PATH or c in wanted or c in (named or ())]
    for col in columns:
        if named is not None and col in named:
            dropped[col] = "named in id_columns"
        elif wanted and col not in wanted:
            dropped[col] = "not in feature_columns"
        elif wanted:
            if frame[col].isna().all():
                raise DataError(
                    f"column '{col}' (in feature_columns) has no values in any of the "
                    f"{len(frame):,} rows; fill it in or take it out of feature_columns"
                )
        elif frame[col].isna().all():
            dropped[col] = "no values in any row"
        elif date_like(frame[col]):
            dropped[col] = (
                "dates or times; to use it, derive number columns from it (e.g. the weekday)"
            )
        elif found := mixed_numbers(frame[col]):
            # before the ID check: nearly every reading differs, and a measurement column
            # with stray text would otherwise be left out as ID-like text without a word
            numbers, others, example = found
            raise DataError(
                f"column '{col}' mixes numbers and text: {numbers:,} of its values are numbers, "
                f"{others:,} are not (e.g. {quoted(example)}); make every value a number "
                f"(an empty cell for a missing one), or name it in id_columns to leave it out"
            )
        elif named is None and (why := id_like(frame[col], col)):
            dropped[col] = why
    features = [c for c in columns if c not in dropped]
    if not features:
        raise DataError(
            f"no feature columns are left besides the label '{label}' "
            f"({len(dropped)} left out, e.g. {next(iter(dropped), '-')}); "
            "set feature_columns, or id_columns=none to keep ID-like columns"
        )
    return features, dropped


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _as_category_array(series: pd.Series) -> np.ndarray:
    """Object array of strings with np.nan for missing values (what the imputer expects)."""
    values = series.astype(object)
    missing = values.isna().to_numpy()
    out = values.to_numpy(copy=True)
    out[~missing] = values[~missing].astype(str).to_numpy()
    out[missing] = np.nan
    return out


@dataclass(frozen=True)
class Preprocessor:
    """Fitted parameters; ``transform`` maps raw rows to the network's input matrix."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    medians: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    fill_values: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    dropped: tuple[tuple[str, str], ...] = ()  # columns left out of the features, and why

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @property
    def n_outputs(self) -> int:
        return len(self.numeric) + sum(len(c) for c in self.categories)

    def check_columns(self, frame: pd.DataFrame, what: str = "data") -> None:
        missing = [c for c in self.features if c not in frame.columns]
        if missing:
            raise SchemaMismatchError(
                f"{what}: missing feature column(s) {', '.join(missing[:5])}"
                f"{' ...' if len(missing) > 5 else ''}; the model expects {len(self.features)} "
                "features as in its bundle.json"
            )

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        self.check_columns(frame)
        parts = []
        if self.numeric:
            x = frame.loc[:, list(self.numeric)].to_numpy(dtype=np.float64, na_value=np.nan)
            x = np.where(np.isnan(x), np.asarray(self.medians), x)
            parts.append((x - np.asarray(self.means)) / np.asarray(self.scales))
        pairs = zip(self.categorical, self.fill_values, self.categories, strict=True)
        for col, fill, cats in pairs:
            values = _as_category_array(frame[col])
            values = np.where(pd.isna(values), fill, values)
            codes = pd.Index(list(cats)).get_indexer(values)  # -1: unseen category
            onehot = np.zeros((len(values), len(cats)))
            known = np.flatnonzero(codes >= 0)
            onehot[known, codes[known]] = 1.0  # unseen categories stay all zeros
            parts.append(onehot)
        return (
            np.hstack(parts).astype(np.float32) if parts else np.zeros((len(frame), 0), np.float32)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": PREPROCESSOR_KIND,
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "medians": list(self.medians),
            "means": list(self.means),
            "scales": list(self.scales),
            "fill_values": list(self.fill_values),
            "categories": [list(c) for c in self.categories],
            "dropped": dict(self.dropped),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Preprocessor:
        if obj.get("kind") != PREPROCESSOR_KIND:
            raise SchemaMismatchError(
                f"preprocessor kind {obj.get('kind')!r} is not understood by this sigdeploy; "
                "retrain the model with this version"
            )
        return cls(
            numeric=tuple(obj["numeric"]),
            categorical=tuple(obj["categorical"]),
            medians=tuple(float(v) for v in obj["medians"]),
            means=tuple(float(v) for v in obj["means"]),
            scales=tuple(float(v) for v in obj["scales"]),
            fill_values=tuple(obj["fill_values"]),
            categories=tuple(tuple(c) for c in obj["categories"]),
            dropped=tuple((str(k), str(v)) for k, v in (obj.get("dropped") or {}).items()),
        )


def split_columns(
    frame: pd.DataFrame, label: str, columns: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """``columns`` (default: all but the label) as (numeric, categorical), in frame order."""
    numeric: list[str] = []
    categorical: list[str] = []
    for col in columns if columns is not None else frame.columns:
        if col == label:
            continue
        (numeric if _is_numeric(frame[col]) else categorical).append(col)
    return numeric, categorical


def build_column_transformer(numeric: list[str], categorical: list[str]) -> Any:
    """The scikit-learn ColumnTransformer that defines the preprocessing."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    return ColumnTransformer(
        [
            (
                "numeric",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                numeric,
            ),
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent", missing_values=np.nan)),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            ),
        ],
        remainder="drop",
        sparse_threshold=0.0,
    )


def categorical_frame(frame: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """Categorical columns as strings with NaN for missing, as both fit and transform see them."""
    out = frame.copy()
    for col in categorical:
        out[col] = _as_category_array(frame[col])
    return out


def fit_preprocessor(
    train: pd.DataFrame, label: str, config: FeatureConfig | None = None
) -> Preprocessor:
    """Fit on the train split only and keep the fitted parameters as plain values.

    Which columns are features is decided here, on the train split (``select_columns``);
    the columns left out are kept in the preprocessor with the reason, and logged.
    """
    features, dropped = select_columns(train, label, config)
    for col, why in dropped.items():
        log.info("column %s left out of the features: %s", col, why)
    numeric, categorical = split_columns(train, label, features)
    all_nan = [c for c in numeric if train[c].isna().all()]
    if all_nan:
        raise DataError(
            f"train split: numeric column(s) {', '.join(all_nan[:5])} have no values at all; "
            "drop them or provide data"
        )
    check_values(train, numeric, "train split")
    ct = build_column_transformer(numeric, categorical)
    ct.fit(categorical_frame(train, categorical))
    medians: list[float] = []
    means: list[float] = []
    scales: list[float] = []
    if numeric:
        num = ct.named_transformers_["numeric"]
        medians = [float(v) for v in num.named_steps["impute"].statistics_]
        means = [float(v) for v in num.named_steps["scale"].mean_]
        scales = [float(v) for v in num.named_steps["scale"].scale_]
    fills: list[str] = []
    cats: list[tuple[str, ...]] = []
    if categorical:
        cat = ct.named_transformers_["categorical"]
        fills = [str(v) for v in cat.named_steps["impute"].statistics_]
        cats = [tuple(str(v) for v in c) for c in cat.named_steps["onehot"].categories_]
    return Preprocessor(
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        medians=tuple(medians),
        means=tuple(means),
        scales=tuple(scales),
        fill_values=tuple(fills),
        categories=tuple(cats),
        dropped=tuple(dropped.items()),
    )


def feature_statistics(frame: pd.DataFrame, pre: Preprocessor) -> dict[str, Any]:
    """Training statistics kept in the bundle so serving can measure drift."""
    stats: dict[str, Any] = {"numeric": {}, "categorical": {}}
    for col in pre.numeric:
        x = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
        finite = x[np.isfinite(x)]
        edges = (
            np.unique(np.quantile(finite, np.linspace(0, 1, 11))) if finite.size else np.array([])
        )
        # The training share of each bin between the edges: with tied deciles (most digits
        # pixels) the bins are not tenths, and serving's PSI needs the real shares.
        fractions = (
            (np.histogram(finite, bins=edges)[0] / finite.size).tolist() if edges.size >= 2 else []
        )
        stats["numeric"][col] = {
            "mean": float(finite.mean()) if finite.size else 0.0,
            "std": float(finite.std()) if finite.size else 0.0,
            "missing_rate": float(1 - finite.size / max(len(x), 1)),
            "quantiles": [float(e) for e in edges],
            "fractions": [float(f) for f in fractions],
        }
    for col in pre.categorical:
        freq = pd.Series(_as_category_array(frame[col])).value_counts(normalize=True, dropna=False)
        stats["categorical"][col] = {str(k): float(v) for k, v in freq.items()}
    return stats
