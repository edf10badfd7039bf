"""Sources and validation: every bad input gives one clear line that names the input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from components.core.data.sources import (
    content_sha256,
    dataset_metadata,
    load_source,
    validate_frame,
)
from components.core.data.split import SplitConfig, split_frame
from components.core.errors import DataError


@pytest.mark.parametrize(
    "name,rows,classes", [("digits", 1797, 10), ("breast_cancer", 569, 2), ("wine", 178, 3)]
)
def test_bundled_sources(name, rows, classes):
    frame = load_source(f"sklearn:{name}", "label")
    assert len(frame) == rows
    assert frame["label"].nunique() == classes
    validate_frame(frame, "label")


def test_csv_and_parquet_round_trip(tmp_path, mixed_frame):
    csv, pq = tmp_path / "d.csv", tmp_path / "d.parquet"
    mixed_frame.to_csv(csv, index=False)
    mixed_frame.to_parquet(pq, index=False)
    from_csv, from_pq = load_source(str(csv)), load_source(str(pq))
    assert list(from_csv.columns) == list(mixed_frame.columns)
    pd.testing.assert_frame_equal(from_pq, mixed_frame)
    assert from_csv["color"].isna().sum() == mixed_frame["color"].isna().sum()


def test_metadata_names_rows_columns_classes_and_content_hash(mixed_frame):
    meta = dataset_metadata(mixed_frame, "label")
    assert meta["rows"] == 300 and meta["columns"] == 5 and meta["label"] == "label"
    assert sum(meta["class_counts"].values()) == 300
    shuffled = mixed_frame.sample(frac=1.0, random_state=1)
    # Row order changes the digest: it fingerprints this exact data set.
    assert content_sha256(mixed_frame) == content_sha256(mixed_frame.copy())
    assert content_sha256(shuffled) != content_sha256(mixed_frame)


def _write_images(root, classes=("A", "B"), per_class=6, size=(12, 10)):
    rng = np.random.default_rng(0)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 255, size=size, dtype=np.uint8)
            Image.fromarray(arr).convert("RGB").save(root / cls / f"{i}.png")


def test_image_folder_is_grayscale_resized_pixels(tmp_path):
    _write_images(tmp_path / "imgs")
    frame = load_source(str(tmp_path / "imgs"), "label", image_size=8)
    assert frame.shape == (12, 8 * 8 + 2)  # the pixels, the image's path and the label
    assert sorted(frame["label"].unique()) == ["A", "B"]
    assert frame.drop(columns=["label", "image_path"]).to_numpy().max() <= 255
    assert frame["image_path"].tolist()[:2] == ["A/0.png", "A/1.png"]


def test_an_image_path_identifies_the_row_and_is_no_feature(tmp_path):
    """The split keys an image folder on the image's path (so an image keeps its split at
    any image_size, or re-encoded); the path is never a feature, nor a column "left out"."""
    from components.core.data.features import FeatureConfig, select_columns
    from components.core.data.split import SplitConfig, default_key

    _write_images(tmp_path / "imgs", per_class=15)
    frame = load_source(str(tmp_path / "imgs"), "label", image_size=8)
    for config in (FeatureConfig(), FeatureConfig(id_columns="none")):
        features, dropped = select_columns(frame, "label", config)
        assert "image_path" not in features and dropped == {}
    features, _ = select_columns(frame, "label", FeatureConfig(feature_columns=("image_path",)))
    assert features == ["image_path"]  # only when asked for
    key = default_key(frame, SplitConfig(), "image_folder")
    assert key.column == "image_path"
    assert default_key(frame, SplitConfig(), "csv").column == ""  # a table: its content


def test_image_that_cannot_be_decoded_is_named(tmp_path):
    _write_images(tmp_path / "imgs")
    bad = tmp_path / "imgs" / "B" / "broken.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(DataError, match="broken.png.*cannot be decoded"):
        load_source(str(tmp_path / "imgs"))


@pytest.mark.parametrize(
    "setup,pattern",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text(""), "empty"),
        (lambda p: p.write_bytes(b"a,b\n1,2,3,4\n\xff\xfe,\x00\n"), "cannot be read as CSV"),
        (lambda p: p.write_text("a,b\n1,2\n3,4\n"), "label column 'label' not found"),
        (lambda p: p.write_text("label\n1\n2\n"), "no feature columns"),
        (lambda p: p.write_text("x,label\n1,a\n2,\n3,b\n"), "1 row\\(s\\) have no value"),
        (lambda p: p.write_text("x,label\n1,a\n2,a\n3,a\n"), "has 'a' in every row"),
    ],
    ids=[
        "missing",
        "empty",
        "unreadable",
        "no-label",
        "no-features",
        "missing-labels",
        "one-class",
    ],
)
def test_bad_csv_inputs_give_one_clear_line(tmp_path, setup, pattern):
    path = tmp_path / "data.csv"
    setup(path)
    with pytest.raises(DataError, match=pattern) as info:
        frame = load_source(str(path), "label")
        validate_frame(frame, "label", str(path))
    message = str(info.value)
    assert "\n" not in message
    assert "data" in message or "data.csv" in message


def test_class_too_small_for_every_split_is_refused(mixed_frame):
    frame = pd.concat(
        [
            mixed_frame,
            pd.DataFrame(
                {"x1": [0.1], "x2": [1.0], "color": ["red"], "size": ["S"], "label": ["rare"]}
            ),
        ]
    )
    with pytest.raises(DataError, match="class 'rare' has 1 row"):
        split_frame(frame.reset_index(drop=True), "label", SplitConfig())


def test_unknown_sklearn_source_and_unsupported_suffix(tmp_path):
    with pytest.raises(DataError, match="sklearn:digits"):
        load_source("sklearn:iris")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(DataError, match="unsupported file type"):
        load_source(str(tmp_path / "x.xlsx"))


# ------------------------------------------------------------------ data edge cases (issue 14)


def _rows(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"x1": rng.normal(size=n), "x2": rng.normal(size=n), "label": rng.choice(["a", "b"], n)}
    )


def _refused(path, pattern, label="label"):
    """load + validate as ingest does: DataError, one line, naming the input."""
    with pytest.raises(DataError, match=pattern) as info:
        validate_frame(load_source(str(path), label), label, str(path))
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("dup", ["x1", "label"])
def test_a_csv_column_named_twice_is_refused_by_name(tmp_path, dup):
    """pandas renames the copy to 'x1.1' / 'label.1': a copied label became a feature."""
    path = tmp_path / "d.csv"
    header = ["x1", "x2", "label"]
    header[1] = dup
    path.write_text(
        ",".join(header) + "\n" + "".join(f"{i},{i % 2},{'ab'[i % 2]}\n" for i in range(9))
    )
    message = _refused(path, f"column '{dup}' appears 2 times in the header")
    assert "rename or remove the copies" in message


@pytest.mark.parametrize("dup", ["x1", "label"])
def test_a_parquet_column_named_twice_is_refused_by_name(tmp_path, dup):
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = _rows()
    names = {"x1": ["x1", "x1", "label"], "label": ["x1", "label", "label"]}[dup]
    table = pa.Table.from_arrays([pa.array(frame[c]) for c in frame.columns], names=names)
    pq.write_table(table, tmp_path / "d.parquet")
    message = _refused(tmp_path / "d.parquet", f"column '{dup}' appears 2 times in the Parquet")
    assert "ArrowInvalid" not in message


def test_duplicate_columns_in_gcs_style_file_objects_are_refused():
    """gs:// objects are read from bytes: the same checks, and the object is named."""
    import io

    from components.core.data.sources import read_csv_table, read_parquet_table

    with pytest.raises(DataError, match="'b.csv': column 'a' appears 2 times"):
        read_csv_table(io.BytesIO(b"a,a,label\n1,2,x\n3,4,y\n"), "b.csv")
    frame = read_csv_table(io.BytesIO(b"a,b,label\n1,2,x\n3,4,y\n"), "ok.csv")
    assert list(frame.columns) == ["a", "b", "label"] and len(frame) == 2
    buf = io.BytesIO()
    _rows().to_parquet(buf, index=False)
    buf.seek(0)
    assert list(read_parquet_table(buf, "ok.parquet").columns) == ["x1", "x2", "label"]


@pytest.mark.parametrize(
    "make,pattern",
    [
        (lambda pa, n: pa.array([[1, 2]] * n), r"column 'c' holds lists \(e.g. \[1, 2\]\)"),
        (lambda pa, n: pa.array([{"a": 1, "b": "x"}] * n), "column 'c' holds records"),
        (
            lambda pa, n: pa.array([[("k", 1)]] * n, type=pa.map_(pa.string(), pa.int64())),
            "column 'c' holds lists",
        ),
    ],
    ids=["list", "struct", "map"],
)
def test_a_parquet_column_of_lists_or_records_is_refused(tmp_path, make, pattern):
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = _rows()
    table = pa.table({"x1": frame["x1"], "c": make(pa, len(frame)), "label": frame["label"]})
    pq.write_table(table, tmp_path / "d.parquet")
    message = _refused(tmp_path / "d.parquet", pattern)
    assert "flatten it into columns" in message


@pytest.mark.parametrize("value,shown", [(np.inf, "inf"), (-np.inf, "-inf"), (1e308, "1e+308")])
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_inf_and_overflowing_numbers_are_refused_naming_column_and_rows(
    tmp_path, value, shown, suffix
):
    """Not imputed as missing: inf is nearly always an upstream bug (a division by zero), and
    serving refuses it too; the message says how to have those cells imputed instead."""
    frame = _rows()
    frame.loc[[3, 7, 8], "x2"] = value
    path = tmp_path / f"d{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)
    message = _refused(path, "column 'x2' has 3 row\\(s\\) holding inf, -inf or a number")
    assert f"the first is data row 4: {shown}" in message
    assert "leave those cells empty to have them imputed" in message


def test_missing_values_are_not_refused(tmp_path):
    frame = _rows()
    frame.loc[[1, 2], "x1"] = np.nan
    frame.to_csv(tmp_path / "d.csv", index=False)
    validate_frame(load_source(str(tmp_path / "d.csv")), "label")


def test_a_header_only_csv_is_refused(tmp_path):
    (tmp_path / "d.csv").write_text("x1,x2,label\n")
    _refused(tmp_path / "d.csv", "has no rows; point to a file with data")


@pytest.mark.parametrize(
    "text,pattern",
    [
        ("x1,x2,label\n1,2,a\n3,4\n5,6,b\n", "line 3 has 2 field\\(s\\) but the header has 3"),
        ("x1,x2,label\n1,2,a\n3,4,b,9\n5,6,b\n", "line 3 has 4 field\\(s\\) but the header has 3"),
        # a trailing comma on every data row: pandas took x1 as the row index and shifted
        # every column left, so 'label' came out empty
        ("x1,x2,label\n1,2,a,\n3,4,b,\n", "line 2 has 4 field\\(s\\) but the header has 3"),
    ],
    ids=["short-row", "long-row", "trailing-comma"],
)
def test_ragged_csv_rows_are_refused_naming_the_line(tmp_path, text, pattern):
    (tmp_path / "d.csv").write_text(text)
    assert "one field per column" in _refused(tmp_path / "d.csv", pattern)


def test_csv_rows_with_quotes_long_fields_and_blank_lines_are_not_ragged(tmp_path):
    """The row check follows pandas' quoting: quoted commas and newlines are one field, a
    field may be longer than the csv module's default limit, blank lines are skipped."""
    long = "w" * 300_000
    path = tmp_path / "d.csv"
    path.write_text(
        f'x1,text,label\n1,"a, b",a\n\n2,"two\nlines",b\n3,{long},a\n4,,\n5,x,b\n', "utf-8"
    )
    frame = load_source(str(path))
    assert frame["text"].tolist()[:3] == ["a, b", "two\nlines", long]
    assert frame["label"].isna().sum() == 1  # an empty field, not a missing one


def test_a_byte_order_mark_does_not_hide_the_first_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(_rows().iloc[:, ::-1].to_csv(index=False), encoding="utf-8-sig")
    frame = load_source(str(path))
    assert list(frame.columns) == ["label", "x2", "x1"]
    validate_frame(frame, "label")


def test_a_label_with_a_different_value_in_every_row_is_refused(tmp_path):
    frame = _rows()
    frame["label"] = [f"id-{i}" for i in range(len(frame))]
    frame.to_csv(tmp_path / "d.csv", index=False)
    message = _refused(tmp_path / "d.csv", "text with 40 different values in 40 rows")
    assert "too many to be classes, and text cannot be a regression target" in message


def test_a_class_with_a_single_row_is_refused_by_the_split(mixed_frame):
    from components.core.data.split import assign_for, resolve_key

    frame = mixed_frame.copy()
    frame.loc[0, "label"] = "rare"
    validate_frame(frame, "label")
    key = resolve_key(frame, SplitConfig(), None, "csv")
    with pytest.raises(DataError, match="class 'rare' has 1 row"):
        assign_for(frame, "label", SplitConfig(), key)


def _png(size=64):
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (size, size), np.uint8)).save(
        buf, "PNG"
    )
    return buf.getvalue()


@pytest.mark.parametrize(
    "content,pattern",
    [
        (b"", "cannot be decoded \\(UnidentifiedImageError\\)"),
        (_png()[:200], "cannot be decoded \\(OSError: image file is truncated"),
    ],
    ids=["zero-bytes", "truncated"],
)
def test_a_damaged_image_is_named(tmp_path, content, pattern):
    _write_images(tmp_path / "imgs")
    (tmp_path / "imgs" / "B" / "bad.png").write_bytes(content)
    with pytest.raises(DataError, match=f"image '.*bad.png': {pattern}") as info:
        load_source(str(tmp_path / "imgs"))
    assert str(info.value).endswith("remove or replace the file")


def test_an_image_over_pillows_size_limit_is_named(tmp_path, monkeypatch):
    """Pillow raises DecompressionBombError (not an OSError) past twice its pixel limit."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    _write_images(tmp_path / "imgs")
    (tmp_path / "imgs" / "B" / "big.png").write_bytes(_png(64))  # 4,096 pixels > 2 x 1,000
    with pytest.raises(DataError, match="big.png': Image size \\(4096 pixels\\) exceeds limit"):
        load_source(str(tmp_path / "imgs"))


@pytest.mark.parametrize("error", [SyntaxError("broken PNG file"), TypeError("IFDRational")])
def test_any_other_decoder_failure_is_named(tmp_path, monkeypatch, error):
    """A damaged file makes Pillow raise nearly anything (fuzzing found SyntaxError and
    TypeError besides OSError): every one is one line naming the file."""
    _write_images(tmp_path / "imgs")

    def convert(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(Image.Image, "convert", convert)
    with pytest.raises(DataError, match=f"cannot be decoded \\({type(error).__name__}: "):
        load_source(str(tmp_path / "imgs"))
