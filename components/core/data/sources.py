"""Data sources, validation and dataset metadata.

A source is a URI: ``sklearn:digits`` (the embedded default), ``sklearn:breast_cancer``,
``sklearn:wine``, ``sklearn:diabetes`` (a regression target), a local ``.csv`` or
``.parquet`` file, a folder of images with one sub-folder per class,
``gs://bucket/path.csv|.parquet`` or ``bq://project.dataset.table``.
Everything becomes one pandas DataFrame with feature columns and one label column.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from components.core.data.task import TASKS, detect_task
from components.core.errors import ConfigError, DataError, did_you_mean

log = logging.getLogger(__name__)

SKLEARN_SOURCES = ("digits", "breast_cancer", "wine", "diabetes")  # diabetes: regression
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
DEFAULT_LABEL = "label"
MAX_IMAGE_SIZE = 1024
PROVENANCE_KEY = b"sigdeploy.inputs"  # Parquet footer key: how the rows were made
IMAGE_MODE = "L"  # images become 8-bit grayscale (PIL mode L), one column per pixel
# Image folders: the image's path under the folder ("class/file.png"). It identifies the row
# (the split keys on it, so an image keeps its split at any image_size) and is no feature.
IMAGE_PATH = "image_path"
SPLIT_FOOTER_KEY = b"sigdeploy.split"  # Parquet footer key: how the rows were split
# Numbers beyond this size are refused like inf: standardising squares them, and above
# about 1e154 the square overflows float64 and training fails far from the cause.
MAX_ABS_VALUE = 1e150


@dataclass(frozen=True)
class SourceConfig:
    """What to read and how; fields are pipeline parameters."""

    source: str = "sklearn:digits"  # sklearn:NAME, .csv/.parquet, image folder, gs://, bq://
    label: str = DEFAULT_LABEL  # the column to predict
    image_size: int = 28  # image folders: images are resized to this many pixels per side
    row_limit: int = 0  # bq:// only: stop after this many rows (0 = no limit)
    query: str = ""  # bq:// only: a SQL query to run instead of reading the whole table
    task: str = "auto"  # auto | classification | regression; auto: text, true/false and up
    # to 20 distinct whole numbers are classes, other numbers a regression target

    def __post_init__(self) -> None:
        problems = []
        if not self.label.strip():
            problems.append("label is empty: name the column to predict")
        if not 1 <= self.image_size <= MAX_IMAGE_SIZE:
            problems.append(
                f"image_size={self.image_size} must be 1-{MAX_IMAGE_SIZE} pixels per side, e.g. 28"
            )
        if self.row_limit < 0:
            problems.append(f"row_limit={self.row_limit} must be >= 0 (0 = no limit)")
        if self.task not in TASKS:
            problems.append(f"task={self.task!r} must be one of {', '.join(TASKS)}")
        if problems:
            raise ConfigError("; ".join(problems))

    def load(self) -> pd.DataFrame:
        return load_source(
            self.source,
            self.label,
            image_size=self.image_size,
            row_limit=self.row_limit,
            query=self.query,
        )

    def describe(self) -> dict[str, Any]:
        """How the raw rows were made, as a model bundle records it."""
        return describe_source(self.source, self.image_size)


def source_kind(source: str) -> str:
    """sklearn | csv | parquet | image_folder | gcs | bigquery | unknown."""
    source = source.strip()
    if source.startswith("sklearn:"):
        return "sklearn"
    if source.startswith("gs://"):
        return "gcs"
    if source.startswith("bq://"):
        return "bigquery"
    path = Path(source).expanduser()
    if path.is_dir():
        return "image_folder"
    suffix = path.suffix.lower()
    return {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "unknown")


def describe_source(source: str, image_size: int = 28) -> dict[str, Any]:
    kind = source_kind(source)
    out: dict[str, Any] = {"source": source, "source_kind": kind}
    if kind == "image_folder":
        out |= {"image_size": image_size, "image_mode": IMAGE_MODE, "image_resample": "bilinear"}
    return out


def load_source(
    source: str,
    label: str = DEFAULT_LABEL,
    *,
    image_size: int = 28,
    row_limit: int = 0,
    query: str = "",
) -> pd.DataFrame:
    """Read ``source`` into a DataFrame that has ``label`` as a column.

    ``image_size`` applies to image folders, ``row_limit`` and ``query`` to bq:// tables.
    Raises DataError with a one-line message for anything a user must fix.
    """
    if not source or not source.strip():
        raise DataError("data source is empty; pass a path, sklearn:digits, gs:// or bq:// URI")
    source = source.strip()
    if source.startswith("sklearn:"):
        return _load_sklearn(source, label)
    if source.startswith("gs://"):
        return read_gcs_table(source)
    if source.startswith("bq://"):
        from components.core.platforms import gcp

        return gcp.read_bigquery(source, row_limit=row_limit, query=query)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(
            f"data source '{source}': no such file or folder; check the path "
            "(or use sklearn:digits for the embedded data)"
        )
    if path.is_dir():
        return _load_image_folder(path, label, image_size)
    suffix = path.suffix.lower()
    readers: dict[str, Callable[[Path], pd.DataFrame]] = {
        ".csv": _read_csv,
        ".parquet": _read_parquet,
        ".pq": _read_parquet,
    }
    if suffix not in readers:
        raise DataError(
            f"data source '{source}': unsupported file type '{suffix or '(none)'}'; "
            "use a .csv or .parquet file or a folder of class sub-folders of images"
        )
    if path.stat().st_size == 0:
        raise DataError(f"data source '{source}': the file is empty; point to a file with rows")
    return readers[suffix](path)


def _load_sklearn(source: str, label: str) -> pd.DataFrame:
    from sklearn import datasets

    name = source.split(":", 1)[1]
    if name not in SKLEARN_SOURCES:
        raise DataError(
            f"data source '{source}': unknown bundled data set; use one of "
            + ", ".join(f"sklearn:{n}" for n in SKLEARN_SOURCES)
        )
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.frame.rename(columns={"target": label})
    frame.columns = [str(c) for c in frame.columns]
    return frame


# pandas' message for a row with more fields than the header
_PANDAS_FIELDS = re.compile(
    r"Expected (?P<want>\d+) fields in line (?P<line>\d+), saw (?P<saw>\d+)"
)


def read_csv_table(source: Any, name: str) -> pd.DataFrame:
    """A CSV from a path or a file object; ``name`` is what error messages call it.

    Refused, naming the column or line: a header that names a column twice (pandas would
    rename the copy ``a.1`` and a copied label would become a feature), and rows with more
    or fewer fields than the header (pandas would fill the missing ones with NaN, or take
    the first column as the row index and shift every column by one)."""
    try:
        frame = pd.read_csv(source)
    except pd.errors.EmptyDataError as exc:
        raise DataError(
            f"data source '{name}': the CSV has no rows or header; check the file"
        ) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = _first_line(exc)
        if m := _PANDAS_FIELDS.search(first):
            raise DataError(
                _ragged(name, int(m.group("line")), int(m.group("saw")), int(m.group("want")))
            ) from exc
        raise DataError(
            f"data source '{name}': cannot be read as CSV ({first}); "
            "save it as comma-separated UTF-8 text with a header row"
        ) from exc
    _check_csv_shape(source, frame, name)
    return frame


def _ragged(name: str, line: int, fields: int, header: int) -> str:
    return (
        f"data source '{name}': line {line} has {fields} field(s) but the header has {header} "
        "columns; give every row one field per column (an empty field for a missing value), "
        "and quote values that contain commas"
    )


def _csv_records(source: Any) -> Generator[tuple[int, list[str]], None, None]:
    """(line number, fields) of each non-blank record, with the quoting rules pandas uses;
    ``source`` (a path or a binary file object) is left at its start."""
    import csv
    import io

    limit = csv.field_size_limit(sys.maxsize)  # pandas reads fields of any length
    seekable = hasattr(source, "seek")
    text = (
        io.TextIOWrapper(source, encoding="utf-8-sig", newline="")
        if seekable
        else open(source, encoding="utf-8-sig", newline="")
    )
    try:
        reader = csv.reader(text)
        for fields in reader:
            if fields and fields != [""]:
                yield reader.line_num, fields
    finally:
        csv.field_size_limit(limit)
        if seekable:
            text.detach()
            source.seek(0)
        else:
            text.close()


def _check_csv_shape(source: Any, frame: pd.DataFrame, name: str) -> None:
    if hasattr(source, "seek"):
        source.seek(0)
    records = _csv_records(source)
    try:
        _, header = next(records, (0, []))
        names = [h for h in header if h]
        dup = next((h for h in names if names.count(h) > 1), None)
        if dup is not None:
            where = [i + 1 for i, h in enumerate(header) if h == dup]
            raise DataError(
                f"data source '{name}': column '{dup}' appears {len(where)} times in the header "
                f"(columns {', '.join(map(str, where))}); rename or remove the copies so each "
                "column has its own name"
            )
        # Only a file pandas read with a made-up index or NaN in its last column can hold a
        # row of the wrong length: the common case costs no second pass.
        suspect = not isinstance(frame.index, pd.RangeIndex) or (
            frame.shape[1] > 0 and bool(frame.iloc[:, -1].isna().any())
        )
        if suspect:
            for line, fields in records:
                if len(fields) != len(header):
                    raise DataError(_ragged(name, line, len(fields), len(header)))
    finally:
        records.close()


def read_parquet_table(source: Any, name: str) -> pd.DataFrame:
    """A Parquet table from a path or a file object; ``name`` is what errors call it."""
    _check_parquet_names(source, name)
    try:
        return pd.read_parquet(source)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(
            f"data source '{name}': cannot be read as Parquet ({type(exc).__name__}); "
            "check that the file is a complete Parquet file"
        ) from exc


def _check_parquet_names(source: Any, name: str) -> None:
    """Parquet can hold two columns of one name, which pandas cannot read (it reports only
    "ArrowInvalid"): refuse them by name. A file whose schema cannot be read is left to
    ``pd.read_parquet`` to report."""
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(source).names
    except Exception:  # a damaged file: read_parquet says what is wrong with it
        return
    finally:
        if hasattr(source, "seek"):
            source.seek(0)
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise DataError(
            f"data source '{name}': column '{dup}' appears {names.count(dup)} times in the "
            "Parquet schema; write the file again with one column of each name"
        )


def read_gcs_table(uri: str, client: Any = None) -> pd.DataFrame:
    """A CSV or Parquet object, or every such object under a ``gs://bucket/prefix/`` (the
    shards must share one header)."""
    import io

    from components.core.platforms import gcp  # the gcp extra; only needed for gs:// sources

    objects = gcp.read_gcs_objects(uri, client)
    frames = [
        read_csv_table(io.BytesIO(data), name)
        if name.lower().endswith(".csv")
        else read_parquet_table(io.BytesIO(data), name)
        for name, data in objects
    ]
    first = list(frames[0].columns)
    for (name, _), frame in zip(objects[1:], frames[1:], strict=True):
        if list(frame.columns) != first:
            raise DataError(
                f"data source '{uri}': {name} has different columns from the first object; "
                "every shard needs the same header"
            )
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _read_csv(path: Path) -> pd.DataFrame:
    return read_csv_table(path, str(path))


def _read_parquet(path: Path) -> pd.DataFrame:
    return read_parquet_table(path, str(path))


def _load_image_folder(root: Path, label: str, size: int) -> pd.DataFrame:
    from PIL import Image, UnidentifiedImageError

    if size < 1:
        raise DataError(f"image_size {size}: must be a positive number of pixels, e.g. 28")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(
            f"data source '{root}': a folder needs one sub-folder of images per class "
            "(e.g. A/, B/); none found"
        )
    rows: list[np.ndarray] = []
    labels: list[str] = []
    paths: list[str] = []
    for class_dir in class_dirs:
        files = sorted(
            p for p in class_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        for file in files:
            try:
                with Image.open(file) as img:
                    pixels = img.convert(IMAGE_MODE).resize((size, size), Image.Resampling.BILINEAR)
                    rows.append(np.asarray(pixels, dtype=np.float32).reshape(-1))
            except Image.DecompressionBombError as exc:
                raise DataError(
                    f"image '{file}': {exc.args[0].split(',')[0]} (Pillow refuses larger images "
                    "as a decompression bomb); shrink, remove or replace the file"
                ) from exc
            except UnidentifiedImageError as exc:
                raise DataError(
                    f"image '{file}': cannot be decoded ({type(exc).__name__}); "
                    "remove or replace the file"
                ) from exc
            except Exception as exc:  # a damaged file makes Pillow raise nearly anything
                raise DataError(
                    f"image '{file}': cannot be decoded ({type(exc).__name__}: "
                    f"{_first_line(exc)}); remove or replace the file"
                ) from exc
            labels.append(class_dir.name)
            paths.append(file.relative_to(root).as_posix())
    if not rows:
        raise DataError(f"data source '{root}': the class sub-folders hold no image files")
    columns = [f"px_{r}_{c}" for r in range(size) for c in range(size)]
    frame = pd.DataFrame(np.stack(rows), columns=columns)
    frame[IMAGE_PATH] = paths
    frame[label] = labels
    return frame


def feature_columns(frame: pd.DataFrame, label: str) -> list[str]:
    return [c for c in frame.columns if c != label]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def quoted(value: Any, width: int = 40) -> str:
    """A value as an error message quotes it: repr, cut to ``width`` characters."""
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    return text if len(text) <= width else text[: width - 3] + "..."


def check_values(frame: pd.DataFrame, columns: Any, what: str) -> None:
    """Every number in ``columns`` is finite and within MAX_ABS_VALUE: NaN is a missing value
    (imputed), but inf, -inf or 1e308 is almost always a computation gone wrong upstream
    (a division by zero, an overflow), which imputing would hide; serving refuses them too."""
    for col in columns:
        series = frame[col]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            continue
        x = series.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.flatnonzero(np.isinf(x) | (np.abs(np.nan_to_num(x)) > MAX_ABS_VALUE))
        if bad.size:
            raise DataError(
                f"{what}: column '{col}' has {bad.size} row(s) holding inf, -inf or a number "
                f"beyond ±{MAX_ABS_VALUE:g} (the first is data row {bad[0] + 1}: {x[bad[0]]:g}); "
                "replace them with real values, or leave those cells empty to have them "
                "imputed like other missing values"
            )


def _nested_value(series: pd.Series) -> Any:
    """The first list, dict or array in ``series``, or None: a cell must hold one value."""
    if series.dtype != object:
        return None
    if pd.api.types.infer_dtype(series, skipna=True) not in ("mixed", "mixed-integer"):
        return None  # all strings, all numbers, ...
    containers = (list, tuple, dict, set, np.ndarray)
    return next((v for v in series if isinstance(v, containers)), None)


def validate_frame(
    frame: pd.DataFrame, label: str, source: str = "data", task: str = "auto"
) -> str:
    """Checks that hold for any data set before it is split; returns the task the label
    asks for (``task``: auto | classification | regression, ``data.task.detect_task``)."""
    if frame.empty:
        raise DataError(f"data source '{source}': has no rows; point to a file with data")
    duplicated = frame.columns[frame.columns.duplicated()]
    if len(duplicated):
        dup = duplicated[0]
        raise DataError(
            f"data source '{source}': column '{dup}' appears "
            f"{int((frame.columns == dup).sum())} times; give each column its own name"
        )
    if label not in frame.columns:
        shown = ", ".join(map(str, list(frame.columns)[:8]))
        more = ", ..." if frame.shape[1] > 8 else ""
        raise DataError(
            f"data source '{source}': label column '{label}' not found"
            f"{did_you_mean(label, frame.columns)} (columns: {shown}{more}); "
            "pass --label with the name of the column to predict"
        )
    if not feature_columns(frame, label):
        raise DataError(
            f"data source '{source}': no feature columns besides the label '{label}'; "
            "the data needs at least one input column"
        )
    for col in frame.columns:
        if (value := _nested_value(frame[col])) is not None:
            kind = "records" if isinstance(value, dict) else "lists"
            raise DataError(
                f"data source '{source}': column '{col}' holds {kind} (e.g. {quoted(value)}), "
                "not one value per cell; flatten it into columns of numbers or text, or drop it"
            )
    missing = int(frame[label].isna().sum())
    if missing:
        raise DataError(
            f"data source '{source}': {missing} row(s) have no value in label column '{label}'; "
            "drop or fill those rows"
        )
    try:
        task = detect_task(frame[label], task, label)
    except DataError as exc:
        raise DataError(f"data source '{source}': {exc}") from None
    if task == "regression":
        check_values(frame, frame.columns, f"data source '{source}'")
        return task
    n_classes = frame[label].nunique()
    if n_classes < 2:
        raise DataError(
            f"data source '{source}': label column '{label}' has {n_classes} class; "
            "a classifier needs at least two"
        )
    if n_classes == len(frame):
        raise DataError(
            f"data source '{source}': label column '{label}' has a different value in every "
            f"one of its {len(frame):,} rows; a classifier needs several rows of each class: "
            "pass --label with the column of classes to predict"
        )
    check_values(frame, frame.columns, f"data source '{source}'")
    return task


def content_sha256(frame: pd.DataFrame) -> str:
    """A digest of the rows' content, independent of file format and row index."""
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(hashes.tobytes())
    return digest.hexdigest()


def class_counts(frame: pd.DataFrame, label: str) -> dict[str, int]:
    counts = frame[label].value_counts().sort_index()
    return {str(k): int(v) for k, v in counts.items()}


def dataset_metadata(
    frame: pd.DataFrame, label: str, task: str = "classification"
) -> dict[str, Any]:
    """Artifact metadata every Dataset carries (see ARCHITECTURE.md, Contracts): class
    counts, or a regression target's mean, standard deviation and range."""
    out: dict[str, Any] = {
        "rows": int(len(frame)),
        "columns": int(frame.shape[1]),
        "label": label,
        "task": task,
    }
    if task == "regression":
        y = frame[label].to_numpy(np.float64)
        out["target"] = (
            {
                "mean": float(y.mean()),
                "std": float(y.std()),
                "min": float(y.min()),
                "max": float(y.max()),
            }
            if len(y)
            else {}
        )
    else:
        out["class_counts"] = class_counts(frame, label)
    return out | {"sha256": content_sha256(frame)}


def write_parquet(
    frame: pd.DataFrame,
    path: str | Path,
    provenance: dict[str, Any] | None = None,
    split: dict[str, Any] | None = None,
) -> None:
    """Write atomically; ``provenance`` (how the rows were made) and ``split`` (how they were
    split) go in the file's footer, so every Dataset artifact carries them to the steps after
    it."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from components.core.io import atomic_path

    table = pa.Table.from_pandas(frame, preserve_index=False)
    extra = {PROVENANCE_KEY: provenance, SPLIT_FOOTER_KEY: split}
    if any(extra.values()):
        meta = dict(table.schema.metadata or {})
        for key, value in extra.items():
            if value:
                meta[key] = json.dumps(value, sort_keys=True).encode()
        table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_provenance(path: str | Path) -> dict[str, Any]:
    """What ``write_parquet`` stored about the rows' origin; {} for a file without it."""
    import json

    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(PROVENANCE_KEY)
    return json.loads(raw) if raw else {}


def read_split_footer(path: str | Path) -> dict[str, Any]:
    """What ``write_parquet`` stored about how the rows were split; {} for a file without it."""
    import json

    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(SPLIT_FOOTER_KEY)
    return json.loads(raw) if raw else {}


def read_parquet(path: str | Path) -> pd.DataFrame:
    return pd.read_parquet(path)
