"""The model bundle: round trip gives identical predictions; nothing is unpickled; a bundle
whose files changed after training, or whose parts cannot work together, is refused in one
line by every reader (load, register, evaluate)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from components.core.bundle_format import write_manifest
from components.core.errors import RegistryError, SchemaMismatchError
from components.core.model.bundle import load_bundle
from tests.bundle_damage import (
    DAMAGES,
    NAN,
    assert_one_line,
    edit_json,
    make_old,
    set_item,
    set_weight,
)


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
    assert files == ["bundle.json", "manifest.json", "model.safetensors", "preprocessor.json"]


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
    write_manifest(tmp_path / "img")  # an edit on purpose: the manifest is written again
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
    write_manifest(broken)
    with pytest.raises(RegistryError, match="bundle.json has no valid model_config"):
        load_bundle(broken)


# --- integrity: the manifest, and the checks a regenerated manifest cannot hide (the
# entry points, register, evaluate and predict, are in test_bundle_integrity.py) ---


def _copy(trained_bundle, tmp_path, name="copy"):
    target = tmp_path / name
    shutil.copytree(trained_bundle, target)
    return target


def test_the_manifest_holds_the_sha256_of_every_other_file(trained_bundle):
    import hashlib

    manifest = json.loads((trained_bundle / "manifest.json").read_text())
    assert manifest["format"] == "sigdeploy-manifest/v1"
    assert manifest["sha256"] == {
        name: hashlib.sha256((trained_bundle / name).read_bytes()).hexdigest()
        for name in ("bundle.json", "model.safetensors", "preprocessor.json")
    }
    assert json.loads((trained_bundle / "bundle.json").read_text())["manifest"] == "manifest.json"
    assert load_bundle(trained_bundle).verified


@pytest.mark.parametrize("what", list(DAMAGES))
def test_a_damaged_bundle_is_refused_in_one_line(trained_bundle, tmp_path, what):
    from components.core.model.mlp_numpy import verify_bundle

    damage, clause = DAMAGES[what]
    folder = _copy(trained_bundle, tmp_path)
    damage(folder)
    for check in (load_bundle, verify_bundle):
        with pytest.raises(RegistryError) as info:
            check(folder)
        assert_one_line(str(info.value), folder, clause)
        assert "refused: use an intact copy of the bundle" in str(info.value)


def test_a_missing_or_added_file_is_refused(trained_bundle, tmp_path):
    added = _copy(trained_bundle, tmp_path, "added")
    np.save(added / "split_keys.npy", np.arange(3, dtype=np.uint64))  # a file loaders read
    with pytest.raises(RegistryError, match="split_keys.npy is not in manifest.json"):
        load_bundle(added)
    listed = _copy(trained_bundle, tmp_path, "listed")
    manifest = json.loads((listed / "manifest.json").read_text())
    manifest["sha256"]["notes.txt"] = "0" * 64
    (listed / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match="notes.txt is listed in manifest.json but missing"):
        load_bundle(listed)
    manifest["sha256"] = {"../bundle.json": "0" * 64}
    (listed / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match="manifest.json is not a sigdeploy-manifest/v1"):
        load_bundle(listed)
    (listed / "manifest.json").write_text("{not json")
    with pytest.raises(RegistryError, match="manifest.json is unreadable"):
        load_bundle(listed)
    other = _copy(trained_bundle, tmp_path, "other")
    (other / "README.txt").write_text("a file no loader reads")  # e.g. a registry's marker
    assert load_bundle(other).verified


def test_a_bundle_from_before_manifests_loads_unverified_with_a_warning(
    trained_bundle, tmp_path, caplog, digits_parts
):
    old = _copy(trained_bundle, tmp_path, "old")
    make_old(old)
    with caplog.at_level("WARNING"):
        bundle = load_bundle(old)
    assert not bundle.verified
    assert f"model bundle '{old}' has no manifest.json" in caplog.text
    test = digits_parts["test"]
    expected = load_bundle(trained_bundle).predict_proba(test)
    np.testing.assert_array_equal(bundle.predict_proba(test), expected)


NUMERIC_PARTS = ("numeric", "medians", "means", "scales")
SANITY = {
    "NaN weight": (set_weight("net.0.weight", 5, NAN), "NaN or infinite value(s) in net.0"),
    "inf bias": (set_weight("net.3.bias", 1, np.inf), "1 NaN or infinite value(s) in net.3.bias"),
    "negative scale": (set_item("preprocessor.json", "scales", 3, -1.0), "not positive"),
    "NaN scale": (
        set_item("preprocessor.json", "scales", 3, NAN),
        "preprocessor.json scales of 'pixel_0_3' is nan, not finite",
    ),
    "inf median": (set_item("preprocessor.json", "medians", 0, float("inf")), "medians of"),
    "a class twice": (
        set_item("bundle.json", "classes", 9, 0),
        "bundle.json lists class '0' twice",
    ),
    "a renamed feature": (
        edit_json("bundle.json", lambda m: m["schema"]["features"].__setitem__(0, "pixel_x")),
        "the features of bundle.json and preprocessor.json differ (pixel_0_0, pixel_x)",
    ),
    "a feature fewer in the preprocessor": (
        edit_json("preprocessor.json", lambda p: [p[k].pop() for k in NUMERIC_PARTS]),
        "differ (pixel_7_7)",
    ),
}


@pytest.mark.parametrize("what", list(SANITY))
def test_a_bundle_that_cannot_work_is_refused_even_with_a_fresh_manifest(
    trained_bundle, tmp_path, what
):
    """A manifest written again over the damage (or a bundle trained that way) passes the
    hash check; the load-time checks still refuse it, before any request is answered."""
    from components.core.model.mlp_numpy import verify_bundle

    change, expected = SANITY[what]
    folder = _copy(trained_bundle, tmp_path)
    change(folder)
    write_manifest(folder)
    for check in (load_bundle, verify_bundle):
        with pytest.raises(RegistryError) as info:
            check(folder)
        assert_one_line(str(info.value), folder, expected)
