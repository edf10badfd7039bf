"""The model bundle: round trip gives identical predictions; nothing is unpickled."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from components.core.errors import RegistryError, SchemaMismatchError
from components.core.model.bundle import load_bundle


def test_round_trip_gives_identical_predictions(trained_bundle, digits_parts, tmp_path):
    test = digits_parts["test"]
    first = load_bundle(trained_bundle)
    copy = tmp_path / "copy"
    shutil.copytree(trained_bundle, copy)
    second = load_bundle(copy)
    np.testing.assert_array_equal(first.predict_proba(test), second.predict_proba(test))
    assert (first.predict(test) == second.predict(test)).all()


def test_bundle_holds_schema_labels_config_and_versions(trained_bundle):
    meta = json.loads((trained_bundle / "bundle.json").read_text())
    assert meta["schema"]["label"] == "label"
    assert len(meta["schema"]["features"]) == 64
    assert meta["classes"] == list(range(10))
    assert meta["model_config"]["in_features"] == 64
    assert {"torch", "numpy", "scikit-learn"} <= set(meta["library_versions"])
    files = sorted(p.name for p in trained_bundle.iterdir())
    assert files == ["bundle.json", "model.safetensors", "preprocessor.json"]


def test_digits_model_is_accurate(trained_bundle, digits_parts):
    test = digits_parts["test"]
    bundle = load_bundle(trained_bundle)
    accuracy = float((bundle.predict(test) == test["label"].to_numpy()).mean())
    assert accuracy >= 0.9


def test_incomplete_bundle_is_refused(trained_bundle, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(trained_bundle, broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(RegistryError, match="model.safetensors is missing"):
        load_bundle(broken)


def test_schema_check_names_the_missing_features_and_accepts_extra_columns(
    trained_bundle, digits_parts
):
    """A model needs its own features; other columns may come and go (a challenger with a
    new feature is compared with it on the same rows)."""
    bundle = load_bundle(trained_bundle)
    bundle.check_schema(digits_parts["test"].assign(extra=1.0))
    bundle.check_schema(digits_parts["test"][list(reversed(digits_parts["test"].columns))])
    frame = digits_parts["test"].drop(columns=["pixel_0_0"]).assign(extra=1.0)
    with pytest.raises(
        SchemaMismatchError,
        match=r"^model 'digits-mlp': needs 1 feature column\(s\) that the data lacks \(pixel_0_0\)",
    ):
        bundle.check_schema(frame)


def test_images_of_another_size_are_refused(trained_bundle, digits_parts, tmp_path):
    """Pixel columns of a 10x10 image include every name of an 8x8 one, meaning other
    pixels: the size the model was trained at decides."""
    shutil.copytree(trained_bundle, tmp_path / "img")
    meta = json.loads((tmp_path / "img" / "bundle.json").read_text())
    meta["inputs"] |= {"source_kind": "image_folder", "image_size": 8}
    (tmp_path / "img" / "bundle.json").write_text(json.dumps(meta))
    bundle = load_bundle(tmp_path / "img")
    test = digits_parts["test"]
    bundle.check_inputs(test, {"source_kind": "image_folder", "image_size": 8})
    bundle.check_inputs(test, {"source_kind": "parquet"})  # the same pixels as a table
    with pytest.raises(SchemaMismatchError, match="trained on 8x8 images, and these are read at"):
        bundle.check_inputs(test, {"source_kind": "image_folder", "image_size": 10})


def test_a_bundle_without_a_split_record_loads_and_says_so(trained_bundle):
    bundle = load_bundle(trained_bundle)  # written by train_frames without a split
    assert "split" not in bundle.meta and bundle.split_record() is None


def test_failed_save_leaves_nothing(tmp_path, trained_bundle, monkeypatch):
    from components.core.model import bundle as bundle_mod

    loaded = load_bundle(trained_bundle)
    target = tmp_path / "out" / "model"

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", boom)
    with pytest.raises(OSError):
        bundle_mod.save_bundle(target, loaded.network, loaded.preprocessor, loaded.classes, "label")
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_bundle_without_a_model_config_is_a_clear_error(trained_bundle, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(trained_bundle, broken)
    meta = json.loads((broken / "bundle.json").read_text())
    del meta["model_config"]
    (broken / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(RegistryError, match="bundle.json has no valid model_config"):
        load_bundle(broken)
