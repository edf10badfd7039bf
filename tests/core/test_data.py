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
        (lambda p: p.write_text("x,label\n1,a\n2,a\n3,a\n"), "has 1 class"),
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
