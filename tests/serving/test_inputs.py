"""What a bundle records about its inputs (bundle.json ``inputs``) reaches the server: object
instances may carry the columns the model left out on purpose (ignored, as batch predict
ignores them), /health says what the model takes, an image-folder model's wrong-length list
is described as an image, and a bundle written before ``inputs`` existed serves as before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from components.core.bundle_format import write_manifest
from components.core.model.bundle import load_bundle
from components.serving.instances import BadRequest, InstanceDecoder
from components.serving.model import image_list_form, load_serving_model
from tests.bundle_damage import make_old

LABEL = "label"
IMAGE_SIZE = 16
CSV = {"source": "/data/private/customers.csv", "source_kind": "csv"}
OLD_HEALTH_KEYS = {
    "status",
    "model_name",
    "model_version",
    "backend",
    "features",
    "classes",
    "integrity",
}


def _train(path: Path, frame: pd.DataFrame, name: str, provenance: dict) -> Path:
    """A bundle written exactly as the train step writes it, with ``provenance``."""
    from components.core.data.features import fit_preprocessor
    from components.core.data.split import SplitConfig, split_frame
    from components.core.steps import train_frames
    from components.core.training.config import TrainConfig

    parts = split_frame(frame, LABEL, SplitConfig())
    config = TrainConfig(max_epochs=3, seed=0, hidden_sizes=(16,))
    pre = fit_preprocessor(parts["train"], LABEL)
    train, val = parts["train"], parts["val"]
    train_frames(train, val, pre, LABEL, config, path, name, provenance=provenance)
    return path


@pytest.fixture(scope="module")
def customers(helpers) -> pd.DataFrame:
    """The mixed table plus a customer_id column that training leaves out as ID-like."""
    frame = helpers.mixed_frame(1000, seed=3)
    frame.insert(0, "customer_id", [f"C{i:05d}" for i in range(len(frame))])
    return frame


@pytest.fixture(scope="module")
def id_bundle(tmp_path_factory, customers) -> Path:
    path = _train(tmp_path_factory.mktemp("ids") / "bundle", customers, "customers", CSV)
    inputs = json.loads((path / "bundle.json").read_text())["inputs"]
    assert list(inputs["columns_dropped"]) == ["customer_id"]  # what these tests rely on
    return path


@pytest.fixture(scope="module")
def image_bundle(tmp_path_factory) -> Path:
    """Trained on a real image folder (two classes of 20x20 noise, read at 16x16)."""
    from PIL import Image

    from components.core.data.sources import describe_source, load_source

    root = tmp_path_factory.mktemp("images")
    folder = root / "shapes"
    rng = np.random.default_rng(0)
    for label, (low, high) in {"dark": (0, 90), "light": (150, 255)}.items():
        (folder / label).mkdir(parents=True)
        for k in range(40):
            pixels = rng.integers(low, high, (20, 20), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / label / f"{k}.png")
    frame = load_source(str(folder), LABEL, image_size=IMAGE_SIZE)
    provenance = describe_source(str(folder), IMAGE_SIZE)
    return _train(root / "bundle", frame, "shapes", provenance)


def _strip_inputs(src: Path, dest: Path) -> Path:
    """``src`` as a bundle written before sigdeploy kept ``inputs``, and so before it kept a
    manifest (such a bundle loads unverified)."""
    shutil.copytree(src, dest)
    make_old(dest)
    for name, key in (("bundle.json", "inputs"), ("preprocessor.json", "dropped")):
        obj = json.loads((dest / name).read_text())
        del obj[key]
        (dest / name).write_text(json.dumps(obj))
    return dest


@pytest.fixture()
def client_of(config_for, client_for):
    return lambda bundle: client_for(config_for(storage_uri=str(bundle)))


def _records(frame: pd.DataFrame) -> list[dict]:
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in frame.to_dict("records")
    ]


def test_a_dropped_id_column_is_accepted_and_ignored(id_bundle, customers, client_of):
    client = client_of(id_bundle)
    rows = customers.drop(columns=LABEL).iloc[:40].reset_index(drop=True)
    with_ids = _records(rows)
    without = [{k: v for k, v in r.items() if k != "customer_id"} for r in with_ids]
    # any value at all: the server never looks at it
    odd = [dict(r, customer_id=[7, None, [1], {"a": 1}][i % 4]) for i, r in enumerate(with_ids)]
    mixed = [r if i % 2 else without[i] for i, r in enumerate(with_ids)]  # some with, some not
    answers = [client.post("/predict", json={"instances": b}) for b in (with_ids, odd, mixed)]
    plain = client.post("/predict", json={"instances": without})
    assert plain.status_code == 200
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json() == plain.json()
    offline = load_bundle(id_bundle)  # batch predict, with the ID column in the frame
    assert [p["label"] for p in plain.json()["predictions"]] == offline.predict(rows).tolist()


def test_unknown_and_missing_keys_are_still_a_located_400(id_bundle, client_of):
    client = client_of(id_bundle)
    good = {"customer_id": "C1", "x1": 0.1, "x2": 2.0, "color": "red"}
    bogus = client.post("/predict", json={"instances": [good, dict(good, bogus=1)]})
    assert bogus.status_code == 400
    assert bogus.json() == {
        "error": "instance 1, field 'bogus': unknown feature; the model expects 3 features as "
        "in its schema (and ignores customer_id, left out in training)",
        "instance": 1,
        "field": "bogus",
    }
    missing = client.post("/predict", json={"instances": [{"customer_id": "C1", "x1": 0.1}]})
    assert missing.status_code == 400
    assert missing.json()["field"] == "x2" and "missing feature" in missing.json()["error"]


def test_health_says_what_the_model_takes(id_bundle, image_bundle, client_of):
    table = client_of(id_bundle).get("/health").json()
    assert OLD_HEALTH_KEYS <= table.keys() and table["features"] == 3
    # the source itself (a path, bucket or query) is not shown to whoever can reach /health
    assert table["inputs"] == {
        "source_kind": "csv",
        "features": 3,
        "ignored_columns": ["customer_id"],
    }
    image = client_of(image_bundle).get("/health").json()
    assert image["inputs"] == {
        "source_kind": "image_folder",
        "image_size": IMAGE_SIZE,
        "image_mode": "L",
        "image_resample": "bilinear",
        "features": IMAGE_SIZE * IMAGE_SIZE,
        "ignored_columns": [],
    }


def test_an_image_list_of_the_wrong_length_names_the_image_size(image_bundle, client_of):
    client = client_of(image_bundle)
    pixels = [0] * (IMAGE_SIZE * IMAGE_SIZE)
    assert client.post("/predict", json={"instances": [pixels]}).status_code == 200
    wrong = client.post("/predict", json={"instances": [pixels, [0] * 784]})  # a 28x28 image
    assert wrong.status_code == 400
    assert wrong.json()["instance"] == 1
    assert wrong.json()["error"] == (
        "instance 1: expected 256 values in schema order (a 16x16 grayscale image, row by row), "
        "got 784"
    )
    scalar = client.post("/predict", json={"instances": [5]}).json()["error"]
    assert "(a 16x16 grayscale image, row by row)" in scalar


def test_an_old_bundle_without_inputs_serves_as_before(tmp_path, id_bundle, client_of, customers):
    old = _strip_inputs(id_bundle, tmp_path / "old")
    client = client_of(old)
    health = client.get("/health").json()
    assert health.keys() == OLD_HEALTH_KEYS  # no "inputs": the bundle does not say
    assert health["integrity"] == "unverified"  # nor does it have a manifest
    row = _records(customers.drop(columns=LABEL).iloc[:1])[0]
    refused = client.post("/predict", json={"instances": [row]})
    assert refused.status_code == 400 and refused.json()["field"] == "customer_id"
    assert refused.json()["error"] == (
        "instance 0, field 'customer_id': unknown feature; the model expects 3 features as in "
        "its schema"
    )
    del row["customer_id"]
    assert client.post("/predict", json={"instances": [row]}).status_code == 200
    short = client.post("/predict", json={"instances": [[0.1, 2.0, "red", 1]]}).json()
    assert short["error"] == "instance 0, field '[3]': expected 3 values in schema order, got 4"


def test_an_old_image_bundle_keeps_the_table_message(tmp_path, image_bundle):
    model = load_serving_model(_strip_inputs(image_bundle, tmp_path / "old"), "1")
    with pytest.raises(BadRequest) as info:
        model.predict_body(json.dumps({"instances": [[0] * 784]}).encode(), 10)
    assert info.value.message == (
        "instance 0, field '[256]': expected 256 values in schema order, got 784"
    )


@pytest.mark.parametrize(
    "inputs, n, expected",
    [
        ({"source_kind": "image_folder", "image_size": 16, "image_mode": "L"}, 256, "a 16x16"),
        ({"source_kind": "image_folder", "image_size": 8, "image_mode": "L"}, 64, "an 8x8"),
        ({"source_kind": "image_folder", "image_size": 11, "image_mode": "L"}, 121, "an 11x11"),
        ({"source_kind": "image_folder", "image_size": 16, "image_mode": "L"}, 255, None),
        ({"source_kind": "image_folder", "image_size": 16, "image_mode": "CMYK"}, 256, None),
        ({"source_kind": "csv"}, 256, None),
        ({}, 256, None),
    ],
)
def test_image_list_form(inputs, n, expected):
    """Said only when the features are exactly that image's pixels."""
    form = image_list_form(inputs, n)
    assert form == (None if expected is None else f"{expected} grayscale image, row by row")


def test_decoder_ignores_only_columns_that_are_not_features():
    decoder = InstanceDecoder(["a", "b"], ["a", "b"], [], [], ignored=["id", "b"])
    assert decoder.ignored == ("id",)  # a feature is never ignored
    rows = decoder.encode([{"a": 1, "b": 2, "id": "x"}, {"b": 4, "a": 3}])
    assert rows.numeric.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_a_malformed_inputs_entry_is_a_one_line_load_error(tmp_path, id_bundle):
    from components.core.errors import RegistryError

    bad = tmp_path / "bad"
    shutil.copytree(id_bundle, bad)
    meta = json.loads((bad / "bundle.json").read_text())
    meta["inputs"]["columns_dropped"] = ["customer_id"]
    (bad / "bundle.json").write_text(json.dumps(meta))
    write_manifest(bad)  # not caught by the manifest: training wrote it so
    with pytest.raises(RegistryError) as info:
        load_serving_model(bad, "1")
    message = str(info.value)
    assert "inputs.columns_dropped is not an object" in message and "\n" not in message
