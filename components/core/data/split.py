"""Deterministic split into train / validation / test, from a key that survives schema change.

Every row has a 64-bit key that depends on the row alone, never on the salt: the value of an
id column (``split_key``), or else a canonical encoding of the row's values by column name
(columns sorted by name; 3, 3.0, np.int64(3) and np.float32(3) encode alike; other floats at
float32 precision; every kind of missing value alike; text as text). The salt and the split
fractions then turn the key into the row's split. So a row keeps its split when the data grows
or gains, reorders or retypes columns, and duplicate rows land together.

A model bundle records its split (``SplitDefinition``: key, salt, fractions) and the keys of
the rows it trained and validated on (``SplitRecord``), so a later evaluation can leave out
every test row the champion saw, whatever this run's salt, fractions or columns.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.core.bundle_format import SPLIT_KEYS
from components.core.data.sources import IMAGE_PATH
from components.core.errors import ConfigError, DataError, RegistryError, did_you_mean

SPLITS = ("train", "val", "test")
KEY_FORMAT = "sigdeploy-rowkey/v1"  # how a row's key is computed; changing it needs a new tag
RECORD_FORMAT = "sigdeploy-split/v1"  # bundle.json "split": the definition and the seen keys


@dataclass(frozen=True)
class SplitConfig:
    """How rows are assigned to train / validation / test; fields are pipeline parameters."""

    train_fraction: float = 0.6  # share of rows (by hash) used to fit
    val_fraction: float = 0.2  # share used for early stopping; the rest is test
    split_salt: str = "sigdeploy-v1"  # changing it reshuffles every row: do so only on purpose
    split_key: str = ""  # a column that identifies a row, e.g. customer_id; empty = the
    # champion's key, else the row's content (every column; image folders: the image's path)

    def __post_init__(self) -> None:
        test = 1.0 - self.train_fraction - self.val_fraction
        if not (0 < self.train_fraction < 1 and 0 < self.val_fraction < 1 and test > 1e-9):
            raise ConfigError(
                f"split fractions train={self.train_fraction} val={self.val_fraction}: each must "
                "be in (0, 1) and together below 1 so that test rows remain"
            )


# ------------------------------------------------------------------ hashing, vectorised

_U64 = np.uint64
_MISSING = _U64(0x6D697373696E6721)  # every kind of missing value, in any column
_TAG_INT = _U64(0x1F83D9ABFB41BD6B)  # whole numbers (3, 3.0, True)
_TAG_FLOAT = _U64(0x5BE0CD19137E2179)  # other numbers, at float32 precision
_TAG_TEXT = _U64(0x9B05688C2B3E6C1F)  # text
_TAG_ID = _U64(0x510E527FADE682D1)  # an id column's key
_SEED = _U64(0x6A09E667F3BCC908)  # a content key before its first column
_TWO_63 = float(2**63)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A bijective 64-bit mixer: every input bit affects every output bit."""
    with np.errstate(over="ignore"):
        x = x + _U64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
        return x ^ (x >> _U64(31))


def _text_bits(text: str) -> np.uint64:
    return _U64(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))


def _int_hashes(ints: np.ndarray) -> np.ndarray:
    return _splitmix64(ints.astype(np.int64, copy=False).view(_U64) ^ _TAG_INT)


def _float_hashes(x: np.ndarray) -> np.ndarray:
    """Numbers as float64 (NaN already masked by the caller): whole numbers like integers,
    the others rounded to float32 first, so a float32 and a float64 of one decimal agree."""
    with np.errstate(over="ignore", invalid="ignore"):
        y = x.astype(np.float32).astype(np.float64)  # float32 precision
        whole_x = np.isfinite(x) & (np.trunc(x) == x) & (np.abs(x) < _TWO_63)
        whole_y = np.isfinite(y) & (np.trunc(y) == y) & (np.abs(y) < _TWO_63)
        whole = np.where(whole_x, x, np.where(whole_y, y, 0.0))
        y = np.where(y == 0, 0.0, y)  # -0.0 is 0
    hashed = np.where(
        whole_x | whole_y,
        _int_hashes(whole.astype(np.int64)),
        _splitmix64(np.ascontiguousarray(y).view(_U64) ^ _TAG_FLOAT),
    )
    return hashed


def _text_hashes(values: np.ndarray) -> np.ndarray:
    """An object array of str (no missing values) as text."""
    hashed = pd.util.hash_array(values, categorize=True)
    return _splitmix64(hashed.astype(_U64, copy=False) ^ _TAG_TEXT)


def _as_text(values: Any) -> np.ndarray:
    return np.array([v if isinstance(v, str) else str(v) for v in values], dtype=object)


def _object_hashes(values: np.ndarray) -> np.ndarray:
    """An object array without missing values: numbers as numbers, all else as text."""
    kind = pd.api.types.infer_dtype(values, skipna=False)
    if kind in ("string", "empty"):
        return _text_hashes(values)
    if kind in ("integer", "boolean"):
        try:
            return _int_hashes(np.asarray(values, dtype=np.int64))
        except OverflowError:  # beyond int64: as text, the one exact form left
            return _text_hashes(_as_text(values))
    if kind in ("floating", "mixed-integer-float", "decimal"):
        return _float_hashes(np.asarray(values, dtype=np.float64))
    is_number = np.fromiter(
        (isinstance(v, (int, float, np.number)) for v in values), bool, len(values)
    )
    out = np.empty(len(values), _U64)
    if is_number.any():
        out[is_number] = _float_hashes(np.asarray(values[is_number], dtype=np.float64))
    if (~is_number).any():
        out[~is_number] = _text_hashes(_as_text(values[~is_number]))
    return out


def value_hashes(series: pd.Series) -> np.ndarray:
    """One uint64 per value of ``series``, the same for a value whatever the column's dtype."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = value_hashes(pd.Series(dtype.categories.to_numpy(dtype=object)))
        codes = series.cat.codes.to_numpy()
        return np.where(codes >= 0, categories[np.maximum(codes, 0)], _MISSING)
    missing = series.isna().to_numpy(dtype=bool)
    out = np.full(len(series), _MISSING, _U64)
    present = ~missing
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        ints = series.to_numpy(dtype=np.int64, na_value=0) if missing.any() else None
        if ints is None:
            ints = series.to_numpy().astype(np.int64)
        out[present] = _int_hashes(ints[present])
    elif pd.api.types.is_float_dtype(dtype):
        x = series.to_numpy(dtype=np.float64, na_value=np.nan)
        out[present] = _float_hashes(x[present])
    elif pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        out[present] = _text_hashes(series[present].astype(str).to_numpy(dtype=object))
    else:  # object, str and other extension types
        values = series.to_numpy(dtype=object)
        out[present] = _object_hashes(values[present])
    return out


def content_keys(frame: pd.DataFrame, columns: list[str] | tuple[str, ...]) -> np.ndarray:
    """A uint64 key per row from the values of ``columns``, taken in name order: the same
    for the same values however the columns are ordered or typed."""
    keys = np.full(len(frame), _SEED, _U64)
    for name in sorted(map(str, columns)):
        named = _splitmix64(value_hashes(frame[name]) ^ _text_bits(name))
        keys = _splitmix64(keys ^ named)
    return keys


def id_keys(series: pd.Series) -> np.ndarray:
    """A uint64 key per row from the value of one id column (its name plays no part)."""
    return _splitmix64(value_hashes(series) ^ _TAG_ID)


# A row whose key must never change while KEY_FORMAT stays: a library upgrade that changed
# the encoding would otherwise move rows between splits and hide the champion's rows.
_KNOWN_ROW = {"a": 3, "b": -0.1, "c": "text", "d": None}
_KNOWN_KEY = 0xDCE60DB2C210C2B7


@functools.cache
def check_key_function() -> None:
    """DataError when this installation computes other keys than KEY_FORMAT defines."""
    got = int(content_keys(pd.DataFrame([_KNOWN_ROW]), list(_KNOWN_ROW))[0])
    if got != _KNOWN_KEY:
        raise DataError(
            f"row keys: this installation computes {got:#x} for the reference row, not "
            f"{_KNOWN_KEY:#x} as {KEY_FORMAT} defines (numpy or pandas changed a hash); "
            "install the numpy and pandas versions of the champion's bundle.json"
        )


# ------------------------------------------------------------------ what identifies a row


@dataclass(frozen=True)
class RowKey:
    """What identifies a row: one id column, or the content of the named columns."""

    column: str = ""  # an id column; empty: the content of ``columns``
    columns: tuple[str, ...] = ()  # content columns, sorted by name

    @classmethod
    def content(cls, names: Any) -> RowKey:
        return cls(columns=tuple(sorted(map(str, names))))

    @property
    def needs(self) -> list[str]:
        """The columns the key is computed from."""
        return [self.column] if self.column else list(self.columns)

    def describe(self) -> str:
        if self.column:
            return f"id column {self.column}"
        shown = ", ".join(self.columns[:4]) + (", ..." if len(self.columns) > 4 else "")
        return f"the content of {len(self.columns)} columns ({shown})"

    def check(self, frame: pd.DataFrame, whose: str = "") -> None:
        """DataError (one line) when ``frame`` cannot give every row this key; ``whose``:
        the model whose key it is (empty: this run's own, from ``split_key``)."""
        missing = [c for c in self.needs if c not in frame.columns]
        if missing and self.column and not whose:
            raise DataError(
                f"split_key '{self.column}' is not a column of the data"
                f"{did_you_mean(self.column, frame.columns)}; name a column that identifies a "
                "row, or leave split_key empty to key rows on their content"
            )
        if missing:
            whose = whose or "the split"
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise DataError(
                f"{whose} keys rows on {self.describe()}, and the data lacks {len(missing)} of "
                f"them ({shown}); add them back, or start a new model name"
            )
        if self.column and (n := int(frame[self.column].isna().sum())):
            raise DataError(
                f"split_key column '{self.column}': {n} row(s) have no value, and a row's id "
                "decides its split; fill them, or use split_key= (the row's content)"
            )

    def keys(self, frame: pd.DataFrame) -> np.ndarray:
        self.check(frame)
        if self.column:
            return id_keys(frame[self.column])
        return content_keys(frame, self.columns)

    def to_json(self) -> dict[str, Any]:
        if self.column:
            return {"kind": "column", "column": self.column}
        return {"kind": "content", "columns": list(self.columns)}

    @classmethod
    def from_json(cls, obj: Any) -> RowKey:
        """ValueError when ``obj`` is not what ``to_json`` writes."""
        if not isinstance(obj, dict):
            raise ValueError("key is not an object")
        if obj.get("kind") == "column" and isinstance(obj.get("column"), str) and obj["column"]:
            return cls(column=obj["column"])
        names = obj.get("columns")
        if obj.get("kind") == "content" and isinstance(names, list) and names:
            if all(isinstance(c, str) for c in names):
                return cls.content(names)
        raise ValueError("key names neither an id column nor content columns")


def default_key(frame: pd.DataFrame, config: SplitConfig, source_kind: str = "") -> RowKey:
    """The key of a first model: ``split_key``, an image's path, or every column."""
    if config.split_key:
        return RowKey(column=config.split_key)
    if source_kind == "image_folder" and IMAGE_PATH in frame.columns:
        return RowKey(column=IMAGE_PATH)
    return RowKey.content(frame.columns)


def resolve_key(
    frame: pd.DataFrame,
    config: SplitConfig,
    champion: SplitRecord | None = None,
    source_kind: str = "",
) -> RowKey:
    """This run's key: ``split_key`` when named, else the champion's (so that both models
    key a row alike whatever columns were added), else a first model's default."""
    if not config.split_key and champion is not None:
        return champion.definition.key
    return default_key(frame, config, source_kind)


# ------------------------------------------------------------------ keys to splits


def unit_interval(keys: np.ndarray, salt: str) -> np.ndarray:
    """Map every key to a number in [0, 1) with the salt."""
    salt_bits = np.uint64(int(hashlib.sha256(salt.encode()).hexdigest()[:16], 16))
    hashes = _splitmix64(keys ^ salt_bits)
    # The top 53 bits keep full float64 precision.
    return (hashes >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def splits_of(keys: np.ndarray, config: SplitConfig) -> np.ndarray:
    """An array of 'train' / 'val' / 'test', one per key."""
    u = unit_interval(keys, config.split_salt)
    cut_val = config.train_fraction
    cut_test = config.train_fraction + config.val_fraction
    return np.where(u < cut_val, "train", np.where(u < cut_test, "val", "test"))


def assign_splits(
    frame: pd.DataFrame, config: SplitConfig, key: RowKey | None = None
) -> np.ndarray:
    """An array of 'train' / 'val' / 'test', one per row (``key``: a first model's default)."""
    return splits_of((key or default_key(frame, config)).keys(frame), config)


def assign_for(
    frame: pd.DataFrame,
    label: str,
    config: SplitConfig,
    key: RowKey,
    task: str = "classification",
) -> np.ndarray:
    """``assign_splits``, checked: the key is not the label and every split has rows, with
    every class in each (``task`` regression: a numeric target has no classes)."""
    if key.column == label:
        raise DataError(
            f"split_key '{label}' is the label: every row of a class would share one split; "
            "name a column that identifies a row"
        )
    assignment = assign_splits(frame, config, key)
    if task == "regression":
        check_class_coverage(pd.Series(np.zeros(len(frame))), assignment)
    else:
        check_class_coverage(frame[label], assignment)
    return assignment


def split_frame(
    frame: pd.DataFrame,
    label: str,
    config: SplitConfig,
    key: RowKey | None = None,
    task: str = "classification",
) -> dict[str, pd.DataFrame]:
    """Split (``key``: a first model's default) and check that every class reaches every
    split."""
    assignment = assign_for(frame, label, config, key or default_key(frame, config), task)
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


# ------------------------------------------------------------------ what a bundle records


@dataclass(frozen=True)
class SplitDefinition:
    """How a run split its rows: the key, the salt and the fractions."""

    key: RowKey
    config: SplitConfig

    def describe(self) -> str:
        c = self.config
        return (
            f"salt {c.split_salt!r}, train {c.train_fraction:g} / val {c.val_fraction:g}, "
            f"keyed on {self.key.describe()}"
        )

    def to_json(self) -> dict[str, Any]:
        c = self.config
        return {
            "format": RECORD_FORMAT,
            "key_format": KEY_FORMAT,
            "key": self.key.to_json(),
            "salt": c.split_salt,
            "train_fraction": c.train_fraction,
            "val_fraction": c.val_fraction,
        }

    @classmethod
    def from_json(cls, obj: Any) -> SplitDefinition:
        """ValueError (what is wrong, in words) when ``obj`` is not what ``to_json`` writes."""
        if not isinstance(obj, dict):
            raise ValueError("it is not an object")
        if obj.get("format") != RECORD_FORMAT:
            raise ValueError(f"format {obj.get('format')!r} is not {RECORD_FORMAT}")
        if obj.get("key_format") != KEY_FORMAT:
            raise ValueError(f"key format {obj.get('key_format')!r} is not {KEY_FORMAT}")
        try:
            config = SplitConfig(
                train_fraction=float(obj["train_fraction"]),
                val_fraction=float(obj["val_fraction"]),
                split_salt=str(obj["salt"]),
            )
        except (KeyError, TypeError, ValueError, ConfigError) as exc:
            raise ValueError(f"salt or fractions missing or invalid ({exc})") from None
        return cls(key=RowKey.from_json(obj.get("key")), config=config)


@dataclass(frozen=True)
class SplitRecord:
    """A model's split and the sorted keys of every row it trained or validated on."""

    definition: SplitDefinition
    seen_keys: np.ndarray  # sorted, unique uint64

    @classmethod
    def of(cls, definition: SplitDefinition, *frames: pd.DataFrame) -> SplitRecord:
        check_key_function()
        keys = [definition.key.keys(f) for f in frames]
        return cls(definition, np.unique(np.concatenate(keys)) if keys else np.zeros(0, _U64))

    def seen(self, frame: pd.DataFrame) -> np.ndarray:
        """One bool per row of ``frame``: whether the model trained or validated on it."""
        check_key_function()
        keys = self.definition.key.keys(frame)
        if not len(self.seen_keys):
            return np.zeros(len(keys), bool)
        at = np.minimum(np.searchsorted(self.seen_keys, keys), len(self.seen_keys) - 1)
        return self.seen_keys[at] == keys

    def to_json(self) -> dict[str, Any]:
        """What bundle.json "split" holds; the keys go to ``SPLIT_KEYS`` (``save``)."""
        digest = hashlib.sha256(_npy_bytes(self.seen_keys)).hexdigest()
        return self.definition.to_json() | {
            "seen": {"file": SPLIT_KEYS, "rows": int(len(self.seen_keys)), "sha256": digest}
        }

    def save(self, directory: str | Path) -> None:
        (Path(directory) / SPLIT_KEYS).write_bytes(_npy_bytes(self.seen_keys))

    @classmethod
    def load(cls, directory: str | Path, obj: Any) -> SplitRecord:
        """The record of bundle.json "split" ``obj`` with its keys file in ``directory``;
        ValueError (what is wrong, in words) when it is incomplete, foreign or corrupt;
        DataError when this installation computes other keys than the record's format."""
        definition = SplitDefinition.from_json(obj)
        check_key_function()
        seen = obj.get("seen")
        if not isinstance(seen, dict) or seen.get("file") != SPLIT_KEYS:
            raise ValueError(f"it does not name its keys file {SPLIT_KEYS}")
        path = Path(directory) / SPLIT_KEYS
        if not path.is_file():
            raise ValueError(f"{SPLIT_KEYS} is missing")
        raw = path.read_bytes()
        if hashlib.sha256(raw).hexdigest() != seen.get("sha256"):
            raise ValueError(f"{SPLIT_KEYS} does not match its sha256 in bundle.json")
        import io

        try:
            keys = np.load(io.BytesIO(raw), allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise ValueError(f"{SPLIT_KEYS} is not a numpy array file ({exc})") from None
        if keys.dtype != _U64 or keys.ndim != 1 or len(keys) != seen.get("rows"):
            raise ValueError(f"{SPLIT_KEYS} is not the {seen.get('rows')} uint64 keys it names")
        return cls(definition, keys)


def _npy_bytes(keys: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(keys, dtype=_U64), allow_pickle=False)
    return buffer.getvalue()


def read_record(directory: str | Path, meta: dict[str, Any], what: str) -> SplitRecord | None:
    """The split record of the bundle in ``directory`` (its bundle.json ``meta``); None for a
    bundle written before sigdeploy kept one. RegistryError (one line) when it is unusable."""
    obj = meta.get("split")
    if obj is None:
        return None
    try:
        return SplitRecord.load(directory, obj)
    except ValueError as exc:
        raise RegistryError(
            f"{what}: its split record is unusable ({exc}); restore the version's files from "
            "a backup or roll back to another version (sigdeploy registry rollback); nothing "
            "was changed"
        ) from None
