"""Google Cloud Storage and BigQuery: fetch table objects, copy model bundles, keep small JSON
records.

Only imported for ``gs://`` / ``bq://`` sources and the Vertex registry (the ``gcp`` extra).
Clients are made per call from Application Default Credentials. ``STORAGE_EMULATOR_HOST``
(honoured by google-cloud-storage itself) and ``BIGQUERY_EMULATOR_HOST`` (honoured here, the
same convention) point them at local servers; with either set no credentials are sent.
Every failure a user can fix becomes a one-line DataError (sources) or RegistryError.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.core.errors import DataError, SigdeployError

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
BQ_TABLE = re.compile(r"^bq://([a-z][a-z0-9-]{4,61}[a-z0-9]|[\w.:-]+)\.(\w+)\.([\w$-]+)$")
BIGQUERY_EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"
CREDENTIALS_HINT = (
    "run `gcloud auth application-default login`, or run where a service account is attached"
)


def split_gcs_uri(uri: str, what: str = "gs:// URI") -> tuple[str, str]:
    """``gs://bucket/a/b`` -> ("bucket", "a/b"); the path may be empty."""
    if not uri.startswith("gs://"):
        raise DataError(f"{what} '{uri}': must start with gs://")
    bucket, _, path = uri[len("gs://") :].partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]", bucket):
        raise DataError(f"{what} '{uri}': '{bucket}' is not a bucket name; write gs://BUCKET/PATH")
    return bucket, path


def storage_client(project: str | None = None) -> Any:
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import storage  # type: ignore[attr-defined]

    try:
        return storage.Client(project=project)
    except DefaultCredentialsError as exc:
        raise DataError(f"Google Cloud Storage: no credentials found; {CREDENTIALS_HINT}") from exc


def _gcs_error(uri: str, exc: Exception, client: Any, bucket: str) -> SigdeployError:
    """One line for a failed GCS call: missing bucket, missing object, or no permission."""
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.NotFound):
        try:
            bucket_exists = client.bucket(bucket).exists()
        except gexc.GoogleAPICallError:
            bucket_exists = True  # cannot tell; report the object
        if not bucket_exists:
            return DataError(
                f"'{uri}': bucket gs://{bucket} does not exist (or is in another project); "
                "check the bucket name"
            )
        return DataError(
            f"'{uri}': no such object; check the path with `gcloud storage ls gs://{bucket}/`"
        )
    if isinstance(exc, gexc.Forbidden | gexc.Unauthorized):
        return DataError(
            f"'{uri}': permission denied; grant the caller roles/storage.objectViewer on "
            f"gs://{bucket} (roles/storage.objectAdmin to write)"
        )
    return DataError(f"'{uri}': Cloud Storage request failed ({type(exc).__name__}); try again")


def _call(uri: str, client: Any, bucket: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    from google.api_core import exceptions as gexc

    try:
        return fn(*args, **kwargs)
    except gexc.GoogleAPICallError as exc:
        raise _gcs_error(uri, exc, client, bucket) from exc


# ---------------------------------------------------------------------------------- tables


def read_gcs_objects(uri: str, client: Any = None) -> list[tuple[str, bytes]]:
    """(gs:// URI, content) of a CSV or Parquet object, or of every such object under a
    ``gs://bucket/prefix/``, in name order. Parsing them is the data sources' job."""
    bucket_name, path = split_gcs_uri(uri, "data source")
    client = client or storage_client()
    bucket = client.bucket(bucket_name)
    if not path or path.endswith("/"):
        blobs = [
            b
            for b in _call(uri, client, bucket_name, lambda: list(bucket.list_blobs(prefix=path)))
            if b.name.lower().endswith(TABLE_SUFFIXES)
        ]
        if not blobs:
            if not _call(uri, client, bucket_name, bucket.exists):
                raise DataError(f"data source '{uri}': bucket gs://{bucket_name} does not exist")
            raise DataError(
                f"data source '{uri}': no .csv or .parquet objects under this prefix; "
                "check the path"
            )
        log.info("reading %d objects under %s", len(blobs), uri)
    elif not path.lower().endswith(TABLE_SUFFIXES):
        raise DataError(
            f"data source '{uri}': unsupported object type; use a .csv or .parquet object, "
            "or a prefix ending in / that holds such objects"
        )
    else:
        blobs = [bucket.blob(path)]
    out = []
    for blob in blobs:
        name = f"gs://{bucket_name}/{blob.name}"
        data = _call(name, client, bucket_name, blob.download_as_bytes)
        if not data:
            raise DataError(
                f"data source '{name}': the object is empty; point to an object with rows"
            )
        out.append((name, data))
    return out


def parse_bigquery_uri(uri: str) -> tuple[str, str, str]:
    """``bq://project.dataset.table`` -> (project, dataset, table)."""
    m = BQ_TABLE.match(uri.strip())
    if not m:
        raise DataError(
            f"data source '{uri}': write bq://PROJECT.DATASET.TABLE (e.g. bq://my-proj.sales.orders)"
        )
    return m.group(1), m.group(2), m.group(3)


def bigquery_client(project: str) -> Any:
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import bigquery

    emulator = os.environ.get(BIGQUERY_EMULATOR_ENV, "").strip()
    if emulator:
        from google.auth.credentials import AnonymousCredentials

        endpoint = emulator if "://" in emulator else f"http://{emulator}"
        return bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
        )
    try:
        return bigquery.Client(project=project)
    except DefaultCredentialsError as exc:
        raise DataError(f"BigQuery: no credentials found; {CREDENTIALS_HINT}") from exc


def read_bigquery(uri: str, row_limit: int = 0, query: str = "", client: Any = None) -> Any:
    """A whole table, or the result of ``query`` (``{table}`` in it names the URI's table).

    ``row_limit`` > 0 stops after that many rows (for a query too). The query runs, and is
    billed, in the URI's project. Returns a pandas DataFrame (pandas is imported by arrow's
    conversion only: storage alone, as serving uses it, needs no pandas).
    """
    from google.api_core import exceptions as gexc

    project, dataset, table = parse_bigquery_uri(uri)
    if row_limit < 0:
        raise DataError(f"row_limit {row_limit}: must be 0 (no limit) or a positive row count")
    client = client or bigquery_client(project)
    table_id = f"{project}.{dataset}.{table}"
    limit = row_limit or None
    try:
        if query.strip():
            sql = query.replace("{table}", f"`{table_id}`")
            rows = client.query_and_wait(sql, project=project, max_results=limit)
        else:
            rows = client.list_rows(client.get_table(table_id), max_results=limit)
        frame = rows.to_arrow(create_bqstorage_client=False).to_pandas()
    except gexc.NotFound as exc:
        raise DataError(
            f"data source '{uri}': {_first_line(exc)}; check the project, dataset and table names"
        ) from exc
    except (gexc.Forbidden, gexc.Unauthorized) as exc:
        raise DataError(
            f"data source '{uri}': permission denied; grant roles/bigquery.dataViewer on the "
            "dataset and roles/bigquery.jobUser on the project"
        ) from exc
    except gexc.BadRequest as exc:
        raise DataError(
            f"data source '{uri}': BigQuery refused the query: {_first_line(exc)}"
        ) from exc
    log.info("read %d rows from %s", len(frame), uri)
    return frame


def _first_line(exc: Exception) -> str:
    message = getattr(exc, "message", "") or str(exc)
    line = (message.strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^(GET|POST|PUT|PATCH|DELETE) \S+: ", "", line)  # drop the request URL


# ------------------------------------------------------------------------- directories


def upload_dir(local_dir: str | Path, uri: str, client: Any = None) -> list[str]:
    """Copy every file under ``local_dir`` to the ``uri`` prefix; returns the object URIs."""
    bucket_name, prefix = split_gcs_uri(uri.rstrip("/"), "upload target")
    client = client or storage_client()
    bucket = client.bucket(bucket_name)
    root = Path(local_dir)
    written = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        name = "/".join(filter(None, [prefix, file.relative_to(root).as_posix()]))
        blob = bucket.blob(name)
        _call(uri, client, bucket_name, blob.upload_from_filename, str(file))
        written.append(f"gs://{bucket_name}/{name}")
    if not written:
        raise DataError(f"'{root}': no files to upload")
    return written


def _blobs_under(uri: str, client: Any) -> Iterator[tuple[Any, str]]:
    bucket_name, prefix = split_gcs_uri(uri.rstrip("/"))
    prefix = f"{prefix}/" if prefix else ""
    for blob in _call(
        uri, client, bucket_name, lambda: list(client.list_blobs(bucket_name, prefix=prefix))
    ):
        relative = blob.name[len(prefix) :]
        if relative and not relative.endswith("/"):
            yield blob, relative


def download_dir(uri: str, local_dir: str | Path, client: Any = None) -> Path:
    """Copy every object under the ``uri`` prefix into ``local_dir``, replacing it whole."""
    from components.core.io import atomic_dir

    client = client or storage_client()
    target = Path(local_dir)
    count = 0
    with atomic_dir(target) as tmp:
        for blob, relative in _blobs_under(uri, client):
            dest = (tmp / relative).resolve()
            if tmp.resolve() not in dest.parents:
                raise DataError(f"'{uri}': object {blob.name!r} escapes the directory; refusing it")
            dest.parent.mkdir(parents=True, exist_ok=True)
            _call(uri, client, blob.bucket.name, blob.download_to_filename, str(dest))
            count += 1
        if not count:
            raise DataError(f"'{uri}': no objects under this prefix; nothing to download")
    log.info("downloaded %d objects from %s to %s", count, uri, target)
    return target


def write_json(uri: str, obj: Any, client: Any = None) -> None:
    bucket_name, name = split_gcs_uri(uri)
    client = client or storage_client()
    blob = client.bucket(bucket_name).blob(name)
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    _call(uri, client, bucket_name, blob.upload_from_string, text, content_type="application/json")


def read_json(uri: str, client: Any = None) -> Any:
    bucket_name, name = split_gcs_uri(uri)
    client = client or storage_client()
    data = _call(uri, client, bucket_name, client.bucket(bucket_name).blob(name).download_as_bytes)
    return json.loads(data)


def exists(uri: str, client: Any = None) -> bool:
    """Whether the object ``uri`` exists (False for a missing bucket too)."""
    bucket_name, name = split_gcs_uri(uri)
    client = client or storage_client()
    return bool(_call(uri, client, bucket_name, client.bucket(bucket_name).blob(name).exists))


def list_json(uri: str, client: Any = None) -> list[tuple[str, Any]]:
    """Every ``.json`` object directly under the ``uri`` prefix as (object URI, value), sorted
    by name; [] when there are none. An object that is not JSON is skipped with a warning."""
    client = client or storage_client()
    found = []
    for blob, relative in sorted(_blobs_under(uri, client), key=lambda pair: pair[1]):
        if "/" in relative or not relative.endswith(".json"):
            continue
        object_uri = f"gs://{blob.bucket.name}/{blob.name}"
        data = _call(object_uri, client, blob.bucket.name, blob.download_as_bytes)
        try:
            found.append((object_uri, json.loads(data)))
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.warning("%s is not JSON; skipped", object_uri)
    return found
