"""gs:// and bq:// sources through the real clients: the GCS emulator and a BigQuery fake."""

from __future__ import annotations

import pandas as pd
import pytest

from components.core.data.sources import load_source
from components.core.errors import DataError
from components.core.platforms import gcp


@pytest.fixture()
def bucket(gcs):
    return gcs.create_bucket("data-bucket")


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "b", "a", "b"], "label": [0, 1, 0, 1]}
    )


def test_reads_csv_and_parquet_objects(bucket):
    frame = _frame()
    bucket.blob("t/train.csv").upload_from_string(frame.to_csv(index=False))
    bucket.blob("t/train.parquet").upload_from_string(frame.to_parquet(index=False))
    pd.testing.assert_frame_equal(load_source("gs://data-bucket/t/train.csv"), frame)
    pd.testing.assert_frame_equal(load_source("gs://data-bucket/t/train.parquet"), frame)


def test_reads_every_shard_under_a_prefix(bucket):
    frame = _frame()
    bucket.blob("shards/part-0.parquet").upload_from_string(frame[:2].to_parquet(index=False))
    bucket.blob("shards/part-1.parquet").upload_from_string(frame[2:].to_parquet(index=False))
    bucket.blob("shards/_SUCCESS").upload_from_string("")
    pd.testing.assert_frame_equal(load_source("gs://data-bucket/shards/"), frame)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("gs://data-bucket/missing.csv", "'gs://data-bucket/missing.csv': no such object"),
        ("gs://no-such-bucket/x.csv", "bucket gs://no-such-bucket does not exist"),
        ("gs://data-bucket/empty/", "no .csv or .parquet objects under this prefix"),
        ("gs://data-bucket/t/data.json", "unsupported object type"),
        ("gs://B/x.csv", "is not a bucket name"),
    ],
)
def test_gcs_errors_are_one_line(bucket, uri, expected):
    with pytest.raises(DataError) as info:
        load_source(uri)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_unreadable_csv_names_the_object(bucket):
    bucket.blob("bad.csv").upload_from_string(b"\xff\xfe\x00\x01garbage\n\x00")
    with pytest.raises(DataError, match="'gs://data-bucket/bad.csv': cannot be read as CSV"):
        load_source("gs://data-bucket/bad.csv")


def test_bundle_directories_round_trip(bucket, tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "bundle.json").write_text("{}")
    (src / "sub" / "w.bin").write_bytes(b"\x00\x01")
    written = gcp.upload_dir(src, "gs://data-bucket/models/m/1")
    assert sorted(written) == [
        "gs://data-bucket/models/m/1/bundle.json",
        "gs://data-bucket/models/m/1/sub/w.bin",
    ]
    out = gcp.download_dir("gs://data-bucket/models/m/1/", tmp_path / "dst")
    assert (out / "sub" / "w.bin").read_bytes() == b"\x00\x01"
    gcp.write_json("gs://data-bucket/h/1.json", {"a": 1})
    assert gcp.read_json("gs://data-bucket/h/1.json") == {"a": 1}


# ----------------------------------------------------------------------------- BigQuery

SCHEMA = [
    {"name": "x", "type": "FLOAT", "mode": "NULLABLE"},
    {"name": "c", "type": "STRING", "mode": "NULLABLE"},
    {"name": "label", "type": "INTEGER", "mode": "NULLABLE"},
]


@pytest.fixture()
def bq(bigquery_server):
    bigquery_server.schema = SCHEMA
    bigquery_server.rows = [[1.5, "a", 0], [2.5, "b", 1], [3.5, None, 0]]
    bigquery_server.tables = {"proj-1.ds.tbl"}
    return bigquery_server


def test_reads_a_bigquery_table_with_a_row_limit(bq):
    frame = load_source("bq://proj-1.ds.tbl", row_limit=2)
    assert list(frame.columns) == ["x", "c", "label"]
    assert frame["x"].tolist() == [1.5, 2.5]
    assert frame["label"].tolist() == [0, 1]
    (rows_call,) = bq.find("GET", r"/tables/tbl/data$")
    assert rows_call.query["maxResults"] == ["2"]
    assert rows_call.headers.get("authorization") is None  # the emulator gets no token


def test_runs_a_query_with_the_table_substituted(bq):
    query = "SELECT * FROM {table} WHERE x > 1"
    frame = load_source("bq://proj-1.ds.tbl", row_limit=10, query=query)
    assert len(frame) == 3 and frame["c"].isna().sum() == 1
    (call,) = bq.find("POST", r"/projects/proj-1/queries$")
    body = call.json()
    assert body["query"] == "SELECT * FROM `proj-1.ds.tbl` WHERE x > 1"
    assert body["maxResults"] == 10


@pytest.mark.parametrize(
    ("uri", "query", "expected"),
    [
        ("bq://proj-1.ds.missing", "", "data source 'bq://proj-1.ds.missing': Not found: Table"),
        ("bq://proj-1.ds.tbl", "SELECT nonsense", "BigQuery refused the query"),
        ("bq://just-a-table", "", "write bq://PROJECT.DATASET.TABLE"),
    ],
)
def test_bigquery_errors_are_one_line(bq, uri, query, expected):
    with pytest.raises(DataError) as info:
        load_source(uri, query=query)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)
