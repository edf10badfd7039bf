"""A split identity that survives schema change (issue 12, item 2).

The row key: order- and dtype-independent, salt-free, different for different rows. Then, for
each schema change, a champion trained through the real steps on a CSV and a challenger on the
changed data: no test row the champion trained or validated on is in the comparison, and the
decision says how many were left out and why. Data the champion cannot score is refused
before training.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from components.core import steps
from components.core.data.features import FeatureConfig
from components.core.data.sources import SourceConfig
from components.core.data.split import (
    KEY_FORMAT,
    RowKey,
    SplitConfig,
    SplitDefinition,
    SplitRecord,
    check_key_function,
    content_keys,
    id_keys,
    read_record,
    splits_of,
    unit_interval,
    value_hashes,
)
from components.core.errors import ConfigError, DataError, RegistryError, SigdeployError
from components.core.evaluation.gate import GatePolicy
from components.core.registry import LocalRegistry
from components.core.settings import Settings
from components.core.training.config import TrainConfig

NAME = "churn"

# ------------------------------------------------------------------ the key itself


def _h(values: Any, dtype: Any = None) -> np.ndarray:
    return value_hashes(pd.Series(values, dtype=dtype))


def test_a_number_has_one_key_whatever_its_type():
    three = [
        _h([3]),
        _h([3.0]),
        _h([3], np.int8),
        _h([3], np.uint32),
        _h([3], np.float32),
        _h([3], "Int64"),
        _h([3.0], "Float64"),
        _h([np.int64(3)], object),
        _h([np.float32(3)], object),
        _h([3.0], object),
    ]
    assert len({int(h[0]) for h in three}) == 1
    assert _h([True])[0] == _h([1])[0] == _h([1.0], np.float32)[0]
    assert _h([-0.0])[0] == _h([0])[0]
    # a float32 and a float64 of the same decimal agree (float32 precision)
    decimals = [0.1, -2.675, 1e-7, 123.456, 3.4e38]
    np.testing.assert_array_equal(_h(decimals), _h(decimals, np.float32))
    np.testing.assert_array_equal(_h(decimals), _h(np.float32(decimals).tolist(), object))


def test_missing_values_have_one_key_and_text_is_text():
    missing = [
        _h([np.nan]),
        _h([None], object),
        _h([pd.NA], "Int64"),
        _h([None], "string"),
        _h([None], "str"),
        _h([pd.NaT]),
        _h(pd.Categorical([None], categories=["a"])),
    ]
    assert len({int(h[0]) for h in missing}) == 1
    text = [_h(["red"]), _h(["red"], object), _h(["red"], "string"), _h(["red"], "category")]
    assert len({int(h[0]) for h in text}) == 1
    assert _h(["3"])[0] != _h([3])[0]  # text as text: "3" is not the number 3
    assert _h(["nan"])[0] != _h([np.nan])[0]
    mixed = _h([1, "1", 2.5, None], object)
    assert mixed[0] == _h([1])[0] and mixed[1] == _h(["1"])[0] and mixed[2] == _h([2.5])[0]
    assert mixed[3] == missing[0][0]


def test_the_key_ignores_column_order_and_dtypes():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=500),
            "n": rng.integers(0, 9, 500),
            "s": rng.choice(["x", "y"], 500),
            "label": rng.integers(0, 3, 500),
        }
    )
    frame.loc[::7, "a"] = np.nan
    keys = content_keys(frame, frame.columns)
    retyped = frame[["label", "s", "n", "a"]].astype(
        {"a": np.float32, "n": np.float64, "label": np.float64, "s": "category"}
    )
    np.testing.assert_array_equal(content_keys(retyped, retyped.columns), keys)
    assert len(np.unique(keys)) == len(frame.drop_duplicates())


def test_different_rows_get_different_keys():
    rng = np.random.default_rng(1)
    n = 200_000
    frame = pd.DataFrame({"a": rng.integers(0, 1000, n), "b": rng.integers(0, 1000, n)})
    distinct = len(frame.drop_duplicates())
    assert len(np.unique(content_keys(frame, ["a", "b"]))) == distinct
    # the same values in other columns are another row; so is a value moved across
    swapped = frame.rename(columns={"a": "b", "b": "a"})
    assert (content_keys(swapped, ["a", "b"]) != content_keys(frame, ["a", "b"])).mean() > 0.99
    one = pd.DataFrame({"a": [1, 0], "b": [0, 1]})
    assert len(set(content_keys(one, ["a", "b"]).tolist())) == 2
    assert _h([0.1])[0] != _h([0.2])[0] and _h([1])[0] != _h([-1])[0]


def test_the_key_is_salt_free_and_the_salt_assigns_the_split():
    keys = content_keys(pd.DataFrame({"a": np.arange(10_000)}), ["a"])
    a, b = unit_interval(keys, "one"), unit_interval(keys, "two")
    assert (a != b).all() and 0 <= a.min() and a.max() < 1
    shares = pd.Series(splits_of(keys, SplitConfig(0.6, 0.2, "one"))).value_counts(normalize=True)
    assert abs(shares["train"] - 0.6) < 0.02 and abs(shares["test"] - 0.2) < 0.02


def test_an_id_key_reads_one_column_whatever_else_changes():
    frame = pd.DataFrame({"customer_id": ["c1", "c2", "c3"], "x": [1.0, 2.0, 3.0]})
    key = RowKey(column="customer_id")
    changed = frame.assign(x=[9.0, 8.0, 7.0], new=1)[["new", "x", "customer_id"]]
    np.testing.assert_array_equal(key.keys(changed), key.keys(frame))
    np.testing.assert_array_equal(id_keys(frame["customer_id"].astype("category")), key.keys(frame))
    with pytest.raises(DataError, match="split_key column 'customer_id': 1 row") as info:
        key.keys(frame.assign(customer_id=["c1", None, "c3"]))
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match=r"split_key 'customer_id' is not a column of the data"):
        key.keys(frame.drop(columns="customer_id"))
    with pytest.raises(DataError, match=r"did you mean customer_id\?"):
        RowKey(column="customer_di").keys(frame)
    with pytest.raises(DataError, match=r"^the split of v1 keys rows on id column customer_id"):
        key.check(frame.drop(columns="customer_id"), "the split of v1")


def test_the_key_function_is_pinned():
    check_key_function()  # the reference row's key is the one KEY_FORMAT defines
    assert KEY_FORMAT == "sigdeploy-rowkey/v1"


@pytest.mark.slow
def test_keys_of_a_million_rows_by_thirty_columns_take_seconds():
    rng = np.random.default_rng(0)
    n = 1_000_000
    columns: dict[str, Any] = {f"f{i:02d}": rng.normal(size=n) for i in range(20)}
    columns |= {f"i{i}": rng.integers(0, 1000, n) for i in range(5)}
    columns |= {f"c{i}": rng.choice(["red", "green", "blue", "amber"], n) for i in range(4)}
    columns["customer_id"] = [f"C{i:08d}" for i in range(n)]
    frame = pd.DataFrame(columns)
    started = time.perf_counter()
    keys = content_keys(frame, frame.columns)
    seconds = time.perf_counter() - started
    record = SplitRecord(
        SplitDefinition(RowKey.content(frame.columns), SplitConfig()), np.unique(keys[:800_000])
    )
    started = time.perf_counter()
    assert record.seen(frame).sum() == 800_000
    lookup = time.perf_counter() - started
    print(f"\nrow keys, 1,000,000 rows x 30 columns: {seconds:.2f} s; seen lookup {lookup:.2f} s")
    assert len(np.unique(keys)) == n
    assert seconds < 20


# ------------------------------------------------------------------ the record


def _record(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    frame = pd.DataFrame({"a": np.arange(50), "label": np.arange(50) % 2})
    definition = SplitDefinition(RowKey.content(frame.columns), SplitConfig())
    record = SplitRecord.of(definition, frame.iloc[:30], frame.iloc[30:40])
    record.save(tmp_path)
    meta = {"split": record.to_json()}
    loaded = read_record(tmp_path, meta, "champion version 1")
    assert loaded is not None and loaded.definition == definition
    np.testing.assert_array_equal(loaded.seen(frame), np.arange(50) < 40)
    assert (tmp_path / "split_keys.npy").stat().st_size == 128 + 8 * 40  # npy header + keys
    return tmp_path, meta


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (lambda d, m: (d / "split_keys.npy").unlink(), "split_keys.npy is missing"),
        (
            lambda d, m: (d / "split_keys.npy").write_bytes(b"\x93NUMPY"),
            "does not match its sha256",
        ),
        (lambda d, m: m["split"].pop("salt"), "salt or fractions missing"),
        (lambda d, m: m["split"].update(format="other/v9"), "format 'other/v9' is not"),
        (lambda d, m: m["split"].update(key_format="rowkey/v0"), "key format 'rowkey/v0'"),
        (lambda d, m: m["split"].update(key={"kind": "magic"}), "neither an id column nor"),
        (lambda d, m: m["split"].pop("seen"), "does not name its keys file"),
    ],
    ids=["no-keys", "corrupt-keys", "no-salt", "foreign", "other-key-format", "bad-key", "no-seen"],
)
def test_a_broken_record_is_one_line_that_says_what_to_do(tmp_path, damage, says):
    directory, meta = _record(tmp_path)
    damage(directory, meta)
    with pytest.raises(RegistryError, match=says) as info:
        read_record(directory, meta, "champion version 1 of 'churn'")
    message = str(info.value)
    assert "\n" not in message and message.startswith("champion version 1 of 'churn'")
    assert "rollback" in message


def test_a_pickled_keys_file_is_refused(tmp_path):
    import hashlib
    import io

    directory, meta = _record(tmp_path)
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"not": "keys"}], dtype=object), allow_pickle=True)
    (directory / "split_keys.npy").write_bytes(buffer.getvalue())
    meta["split"]["seen"]["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    with pytest.raises(RegistryError, match="not a numpy array file"):
        read_record(directory, meta, "champion")


# ------------------------------------------------------------------ through the real steps


def table(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """A customer table: an ID-like text column (left out of the features, part of the row's
    content), three measurements, a small count and an integer label of three classes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return pd.DataFrame(
        {
            "rid": [f"R{i:05d}" for i in range(n)],
            "a": x[:, 0],
            "b": x[:, 1],
            "c": x[:, 2],
            "visits": rng.integers(0, 6, n),
            "label": (x[:, 0] + x[:, 1] > 0).astype(int) + (x[:, 2] > 0.5).astype(int),
        }
    )


@dataclass
class Run:
    dir: Path
    prep: dict[str, Any]
    decision: dict[str, Any] | None = None
    compared: pd.DataFrame | None = None  # the test rows compare.score() scored both models on

    def rids(self, *splits: str) -> set[str]:
        return {r for s in splits for r in pd.read_parquet(self.dir / f"{s}.parquet")["rid"]}


def run_steps(
    work: Path,
    source: str,
    registry: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    split: SplitConfig | None = None,
    image_size: int = 28,
    register: bool = False,
) -> Run:
    """ingest, preprocess, train and evaluate as the components call them; ``register``:
    make the bundle the champion (as deploy does)."""
    from components.core.evaluation import compare as compare_mod

    work.mkdir(parents=True)
    split = split or SplitConfig()
    label = "label"
    p = {k: str(work / f"{k}.parquet") for k in ("data", "train", "val", "test")}
    steps.ingest(SourceConfig(source, label, image_size=image_size), split, p["data"])
    prep = steps.preprocess(
        p["data"], label, split, FeatureConfig(), p["train"], p["val"], p["test"],
        str(work / "pre.json"), registry=str(registry), model_name=NAME,
    )  # fmt: skip
    steps.train(
        p["train"], p["val"], str(work / "pre.json"), label,
        TrainConfig(max_epochs=12, hidden_sizes=(32,), seed=0), str(work / "model"), NAME,
    )  # fmt: skip
    seen: dict[str, pd.DataFrame] = {}
    real = compare_mod.score

    def spy(challenger, test_df, policy, **kwargs):
        seen["test"] = test_df
        return real(challenger, test_df, policy, **kwargs)

    monkeypatch.setattr(compare_mod, "score", spy)
    steps.evaluate(
        str(work / "model"), p["train"], p["test"], str(registry), NAME,
        GatePolicy(), str(work / "decision.json"), str(work / "report.html"),
        str(work / "summary.md"),
    )  # fmt: skip
    monkeypatch.setattr(compare_mod, "score", real)
    if register:
        LocalRegistry(registry, NAME).register(work / "model", {"deploy": True})
    decision = json.loads((work / "decision.json").read_text())
    return Run(work, prep, decision, seen["test"])


@pytest.fixture()
def champion(tmp_path, monkeypatch) -> tuple[Path, Path, Run, pd.DataFrame]:
    """A champion trained through the steps on a CSV; returns (work, registry, run, data)."""
    data = table()
    data.to_csv(tmp_path / "base.csv", index=False)
    registry = tmp_path / "registry"
    run = run_steps(
        tmp_path / "champion", str(tmp_path / "base.csv"), registry, monkeypatch, register=True
    )
    assert run.decision["excluded"]["guarantee"] == "first run"
    return tmp_path, registry, run, data


def _never_on_seen_rows(champion_run: Run, challenger: Run) -> int:
    """Assert that no compared row is one the champion trained or validated on; return how
    many of the challenger's test rows were such rows (which must be those excluded)."""
    seen_by_champion = champion_run.rids("train", "val")
    assert challenger.compared is not None
    compared = set(challenger.compared["rid"])
    assert not compared & seen_by_champion
    overlap = len(challenger.rids("test") & seen_by_champion)
    excluded = challenger.decision["excluded"]
    assert excluded["rows"] == overlap
    assert excluded["compared"] == len(compared) == challenger.decision["counts"]["test_rows"]
    assert excluded["guarantee"] == "full"
    print(f"excluded {overlap} of {excluded['test_rows']} test rows", end=" ")
    return overlap


def test_columns_reordered(champion, monkeypatch):
    work, registry, champ, data = champion
    data[list(reversed(data.columns))].to_csv(work / "reordered.csv", index=False)
    run = run_steps(work / "reordered", str(work / "reordered.csv"), registry, monkeypatch)
    assert _never_on_seen_rows(champ, run) == 0
    assert run.rids("test") == champ.rids("test")  # every row kept its split
    assert run.decision["champion_version"] == "1"
    assert "none of the" in run.decision["excluded"]["why"]


def test_another_split_salt(champion, monkeypatch):
    work, registry, champ, _ = champion
    source = str(work / "base.csv")
    run = run_steps(
        work / "salt", source, registry, monkeypatch, split=SplitConfig(split_salt="other")
    )
    excluded = _never_on_seen_rows(champ, run)
    total = run.decision["excluded"]["test_rows"]
    assert 0.7 < excluded / total < 0.9  # about train + val = 80% of them
    assert f"{excluded:,} of {total:,} test rows were among" in run.decision["excluded"]["why"]
    assert "salt 'sigdeploy-v1'" in run.decision["excluded"]["why"]  # the champion's split
    assert f"{excluded:,} of {total:,} test rows were left out" in run.decision["reason"]
    report = (work / "salt" / "report.html").read_text()
    assert "excluded" in report and f"{excluded:,} of {total:,} test rows" in report
    assert "excluded test rows:" in (work / "salt" / "summary.md").read_text()


def test_lowered_split_fractions(champion, monkeypatch):
    work, registry, champ, _ = champion
    run = run_steps(
        work / "fractions",
        str(work / "base.csv"),
        registry,
        monkeypatch,
        split=SplitConfig(train_fraction=0.5, val_fraction=0.2),
    )
    excluded = _never_on_seen_rows(champ, run)
    assert 0.25 < excluded / run.decision["excluded"]["test_rows"] < 0.42  # 0.1 of 0.3
    assert champ.rids("test") <= run.rids("test")  # the champion's test rows stay test


def test_an_int_label_read_as_float(champion, monkeypatch):
    work, registry, champ, data = champion
    data.assign(label=data["label"].astype(float)).to_csv(work / "float.csv", index=False)
    assert pd.read_csv(work / "float.csv")["label"].dtype == np.float64
    run = run_steps(work / "float", str(work / "float.csv"), registry, monkeypatch)
    assert _never_on_seen_rows(champ, run) == 0
    assert run.rids("test") == champ.rids("test")
    # the champion's classes 0, 1, 2 are the challenger's 0.0, 1.0, 2.0: scored, not zeroed
    from components.core.model.bundle import load_bundle

    bundle = load_bundle(champ.dir / "model")
    rows = run.compared
    direct = float((bundle.predict(rows).astype(float) == rows["label"].to_numpy()).mean())
    assert run.decision["metrics"]["champion"]["accuracy"] == pytest.approx(direct)
    assert direct > 0.6
    assert (
        run.decision["metrics"]["champion"]["log_loss"] < 1.5
    )  # not the 34.5 of zeroed probabilities


def test_float32_features_against_float64(champion, monkeypatch):
    work, registry, champ, data = champion
    narrow = pd.read_csv(work / "base.csv").astype({"a": np.float32, "b": np.float32})
    narrow.astype({"c": np.float32})[["c", "label", "rid", "b", "visits", "a"]].to_parquet(
        work / "float32.parquet", index=False
    )
    run = run_steps(work / "f32", str(work / "float32.parquet"), registry, monkeypatch)
    assert _never_on_seen_rows(champ, run) == 0
    assert run.rids("test") == champ.rids("test")


def test_an_added_feature_column_is_compared_on_the_same_rows(champion, monkeypatch):
    from components.core.model.bundle import load_bundle

    work, registry, champ, data = champion
    rng = np.random.default_rng(5)
    data.assign(tenure=rng.normal(size=len(data))).to_csv(work / "added.csv", index=False)
    run = run_steps(work / "added", str(work / "added.csv"), registry, monkeypatch)
    assert _never_on_seen_rows(champ, run) == 0
    assert run.rids("test") == champ.rids("test")  # keyed on the champion's columns
    assert "tenure" in load_bundle(work / "added" / "model").features
    assert "tenure" not in load_bundle(champ.dir / "model").features
    assert run.decision["champion_version"] == "1"  # compared, each through its own bundle
    record = json.loads((work / "added" / "model" / "bundle.json").read_text())["split"]
    assert "tenure" not in record["key"]["columns"] and "label" in record["key"]["columns"]


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_a_removed_feature_the_champion_needs_is_refused_before_training(champion, tmp_path):
    work, registry, _, data = champion
    data.drop(columns="c").to_csv(work / "removed.csv", index=False)
    pointer = (registry / NAME / "champion").read_bytes()
    params = {"source": str(work / "removed.csv"), "registry": str(registry), "model_name": NAME}
    with pytest.raises(ConfigError) as info:
        steps.preflight(Settings.from_params(params))
    message = _one_line(info)
    assert "champion version 1 of 'churn'" in message and "lacks (c)" in message
    # and again in preprocess, before the train task (what a Vertex run meets)
    out = tmp_path / "removed"
    out.mkdir()
    p = {k: str(out / f"{k}.parquet") for k in ("data", "train", "val", "test")}
    steps.ingest(SourceConfig(str(work / "removed.csv")), SplitConfig(), p["data"])
    with pytest.raises(SigdeployError) as info:
        steps.preprocess(
            p["data"], "label", SplitConfig(), FeatureConfig(), p["train"], p["val"],
            p["test"], str(out / "pre.json"), registry=str(registry), model_name=NAME,
        )  # fmt: skip
    assert "lacks (c)" in _one_line(info)
    assert not Path(p["train"]).exists()  # nothing split, nothing trained
    assert (registry / NAME / "champion").read_bytes() == pointer


def test_a_removed_column_of_the_champions_key_is_refused(champion):
    """``rid`` is no feature, but the champion's split is keyed on every column."""
    work, registry, _, data = champion
    data.drop(columns="rid").to_csv(work / "no-rid.csv", index=False)
    params = {"source": str(work / "no-rid.csv"), "registry": str(registry), "model_name": NAME}
    with pytest.raises(ConfigError) as info:
        steps.preflight(Settings.from_params(params))
    message = _one_line(info)
    assert "the split of champion version 1 of 'churn' keys rows on the content" in message
    assert "lacks 1 of them (rid)" in message


def test_an_old_champion_without_a_split_record_is_compared_as_before(champion, monkeypatch):
    work, registry, champ, _ = champion
    version = registry / NAME / "versions" / "1"
    meta = json.loads((version / "bundle.json").read_text())
    del meta["split"]
    del meta["manifest"]  # bundles from before split records had no manifest either
    (version / "bundle.json").write_text(json.dumps(meta))
    (version / "split_keys.npy").unlink()
    (version / "manifest.json").unlink()
    run = run_steps(work / "old", str(work / "base.csv"), registry, monkeypatch)
    excluded = run.decision["excluded"]
    assert excluded["guarantee"] == "weaker" and excluded["rows"] == 0
    assert excluded["compared"] == excluded["test_rows"] == len(run.rids("test"))
    assert "no split record" in excluded["why"] and "weaker guarantee" in run.decision["reason"]
    assert "weaker guarantee" in (work / "old" / "report.html").read_text()


def test_a_corrupt_champion_record_stops_the_run_before_training(champion, tmp_path):
    work, registry, _, _ = champion
    version = registry / NAME / "versions" / "1"
    (version / "split_keys.npy").write_bytes(b"garbage")
    before = sorted(p.name for p in (registry / NAME).iterdir())
    params = {"source": str(work / "base.csv"), "registry": str(registry), "model_name": NAME}
    with pytest.raises(ConfigError) as info:
        steps.preflight(Settings.from_params(params))
    message = _one_line(info)
    assert "split_keys.npy does not match its sha256 in manifest.json" in message
    assert "sigdeploy registry rollback" in message
    assert sorted(p.name for p in (registry / NAME).iterdir()) == before


def test_an_id_key_is_inherited_and_survives_changed_values(tmp_path, monkeypatch):
    """split_key=rid: a later run (split_key empty) keys on the champion's id column, so a
    row keeps its split even when its measurements were corrected."""
    data = table()
    data.to_csv(tmp_path / "base.csv", index=False)
    registry = tmp_path / "registry"
    champ = run_steps(
        tmp_path / "champion",
        str(tmp_path / "base.csv"),
        registry,
        monkeypatch,
        split=SplitConfig(split_key="rid"),
        register=True,
    )
    assert "id column rid" in champ.prep["train"]["split_key"]
    data.assign(a=data["a"] + 0.001).to_csv(tmp_path / "fixed.csv", index=False)
    run = run_steps(tmp_path / "fixed", str(tmp_path / "fixed.csv"), registry, monkeypatch)
    assert _never_on_seen_rows(champ, run) == 0
    assert run.rids("test") == champ.rids("test")
    assert "keyed on id column rid" in run.decision["excluded"]["why"]


def _images(root: Path, per_class: int = 30) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, (low, high) in {"dark": (0, 100), "light": (150, 255)}.items():
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(low, high, (12, 12), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(root / cls / f"{i:03d}.png")


def test_images_at_another_size_are_refused_and_keep_their_split(tmp_path, monkeypatch):
    from components.core.data.sources import load_source
    from components.core.data.split import assign_splits, default_key

    _images(tmp_path / "imgs")
    registry = tmp_path / "registry"
    source = str(tmp_path / "imgs")
    champ = run_steps(
        tmp_path / "champion", source, registry, monkeypatch, image_size=8, register=True
    )
    record = json.loads((champ.dir / "model" / "bundle.json").read_text())["split"]
    assert record["key"] == {"kind": "column", "column": "image_path"}
    params = {"source": source, "image_size": 10, "registry": str(registry), "model_name": NAME}
    with pytest.raises(ConfigError) as info:
        steps.preflight(Settings.from_params(params))
    assert "trained on 8x8 images, and these are read at 10x10" in _one_line(info)
    # keyed by path, every image has the same split at any size (and re-encoded)
    small, large = (load_source(source, image_size=s) for s in (8, 10))
    config = SplitConfig()
    a = assign_splits(small, config, default_key(small, config, "image_folder"))
    b = assign_splits(large, config, default_key(large, config, "image_folder"))
    assert (a == b).all() and (small["image_path"] == large["image_path"]).all()
    # the same size again compares, with nothing to exclude
    same = run_steps(tmp_path / "same", source, registry, monkeypatch, image_size=8)
    assert same.decision["excluded"]["rows"] == 0
    assert same.decision["excluded"]["guarantee"] == "full"


def test_the_bundle_records_its_split_compactly(champion):
    _, _, champ, _ = champion
    model = champ.dir / "model"
    meta = json.loads((model / "bundle.json").read_text())
    split = meta["split"]
    seen = len(champ.rids("train", "val"))
    assert split["seen"]["rows"] == seen and split["seen"]["file"] == "split_keys.npy"
    assert split["salt"] == "sigdeploy-v1" and split["train_fraction"] == 0.6
    assert split["key"]["columns"] == sorted(["rid", "a", "b", "c", "visits", "label"])
    keys = np.load(model / "split_keys.npy", allow_pickle=False)
    assert keys.dtype == np.uint64 and (np.diff(keys.astype(object)) > 0).all()  # sorted, unique
    assert (model / "split_keys.npy").stat().st_size == 128 + 8 * seen


def test_when_every_test_row_was_seen_the_gate_refuses_on_size(trained_bundle, digits_parts):
    from components.core.evaluation.compare import compare, exclude_seen
    from components.core.model.bundle import load_bundle

    bundle = load_bundle(trained_bundle)
    test = digits_parts["test"]
    record = SplitRecord.of(SplitDefinition(RowKey.content(test.columns), SplitConfig()), test)
    kept, excluded = exclude_seen(test, record, "1")
    assert len(kept) == 0 and excluded["rows"] == excluded["test_rows"] == len(test)
    ev = compare(
        bundle, kept, GatePolicy(), champion=bundle, champion_version="1", excluded=excluded
    )
    assert not ev.decision.deploy and ev.decision.counts.test_rows == 0
    assert ev.decision.reason.startswith("Not deployed: only 0 test rows, fewer than the 30")
    assert f"{len(test)} of {len(test)} test rows were left out because the champion" in (
        ev.decision.reason
    )
    assert ev.flat_metrics()["excluded_test_rows"] == len(test)
