"""Google Cloud Storage and BigQuery: fetch table objects, copy model bundles, keep small JSON
records.

Imported for ``gs://`` / ``bq://`` sources, Vertex AI (the ``gcp`` extra) and a served
``gs://`` bundle (the serving image has google-cloud-storage: this module imports no pandas).
Clients are made per call from Application Default Credentials. ``STORAGE_EMULATOR_HOST``
(honoured by google-cloud-storage itself) and ``BIGQUERY_EMULATOR_HOST`` (honoured here, the
same convention) point them at local servers; with either set no credentials are sent.

This module also owns what every Google client call shares: :func:`google_errors` turns a
refused call or missing credentials into one line (a DataError here; Vertex AI and the
``submit`` command pass their own error class), and ``PROJECT_ID`` is what a project id
looks like.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from components.core.errors import DataError, SigdeployError

log = logging.getLogger(__name__)

PROJECT_ID = r"[a-z][a-z0-9-]{4,28}[a-z0-9]"  # a Google Cloud project id, to use in patterns
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
# the project part also takes the legacy domain-scoped form, example.com:my-project
BQ_TABLE = re.compile(rf"^bq://({PROJECT_ID}|[\w.:-]+)\.(\w+)\.([\w$-]+)$")
BIGQUERY_EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"
CREDENTIALS_HINT = (
    "run `gcloud auth application-default login`, or run where a service account is attached"
)
STORAGE_GRANT = (
    "grant the caller roles/storage.objectViewer on gs://{bucket} "
    "(roles/storage.objectAdmin to write)"
)
BIGQUERY_GRANT = (
    "grant roles/bigquery.dataViewer on the dataset and roles/bigquery.jobUser on the project"
)


def is_project_id(text: str) -> bool:
    """Whether ``text`` is a project id (6-30 lowercase letters, digits and hyphens)."""
    return re.fullmatch(PROJECT_ID, text) is not None


# ------------------------------------------------------------------------------ errors


def first_line(exc: BaseException) -> str:
    """The service's own reason, one line, without the request URL it often starts with."""
    message = getattr(exc, "message", "") or str(exc)
    line = (message.strip().splitlines() or [type(exc).__name__])[0]
    return re.sub(r"^(GET|POST|PUT|PATCH|DELETE) \S+: ", "", line)


def google_error(
    exc: BaseException,
    subject: str,
    doing: str,
    error: type[SigdeployError],
    *,
    grant: str = "",
    hint: str = "",
) -> SigdeployError:
    """The one line for a failed Google client call: ``<subject>: <what went wrong>``.

    ``subject`` names the service or the object (``Vertex AI (PROJECT/REGION)``, ``'gs://...'``),
    ``doing`` what was being done (``list models``; empty when the subject says it),
    ``grant`` what to grant when permission is denied (without it the service's own reason
    is kept) and ``hint`` what to do about any other failure.
    """
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import DefaultCredentialsError

    to = f" to {doing}" if doing else ""
    if isinstance(exc, DefaultCredentialsError):
        return error(f"{subject}: no credentials{to or ' found'}; {CREDENTIALS_HINT}")
    if grant and isinstance(exc, gexc.Forbidden | gexc.Unauthorized):
        return error(f"{subject}: permission denied{to}; {grant}")
    could_not = f"could not {doing}: " if doing else ""
    return error(f"{subject}: {could_not}{first_line(exc)}" + (f"; {hint}" if hint else ""))


@contextlib.contextmanager
def google_errors(
    subject: str,
    doing: str,
    error: type[SigdeployError] = DataError,
    *,
    grant: str = "",
    hint: str = "",
    keep: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> Iterator[None]:
    """Google client calls inside that fail (a refusal, no credentials, no connection)
    raise :func:`google_error`'s line instead; exceptions of the ``keep`` types pass
    through for the caller to handle."""
    from google.api_core import exceptions as gexc
    from google.auth.exceptions import DefaultCredentialsError, TransportError

    try:
        yield
    except keep:
        raise
    except (DefaultCredentialsError, TransportError, gexc.GoogleAPICallError) as exc:
        raise google_error(exc, subject, doing, error, grant=grant, hint=hint) from exc


def split_gcs_uri(uri: str, what: str = "gs:// URI") -> tuple[str, str]:
    """``gs://bucket/a/b`` -> ("bucket", "a/b"); the path may be empty."""
    if not uri.startswith("gs://"):
        raise DataError(f"{what} '{uri}': must start with gs://")
    bucket, _, path = uri[len("gs://") :].partition("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]", bucket):
        raise DataError(f"{what} '{uri}': '{bucket}' is not a bucket name; write gs://BUCKET/PATH")
    return bucket, path


def storage_client(project: str | None = None) -> Any:
    from google.cloud import storage  # type: ignore[attr-defined]

    with google_errors("Google Cloud Storage", ""):
        return storage.Client(project=project)


def _not_found(uri: str, client: Any, bucket: str) -> DataError:
    """One line for a missing object: says whether the bucket is missing too."""
    from google.api_core import exceptions as gexc

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


def _call(
    uri: str, client: Any, bucket: str, doing: str, fn: Any, *args: Any, **kwargs: Any
) -> Any:
    """One Cloud Storage call about ``uri``; a failure is one DataError line."""
    from google.api_core import exceptions as gexc

    try:
        with google_errors(
            f"'{uri}'",
            doing,
            grant=STORAGE_GRANT.format(bucket=bucket),
            hint="try again",
            keep=gexc.NotFound,
        ):
            return fn(*args, **kwargs)
    except gexc.NotFound as exc:
        raise _not_found(uri, client, bucket) from exc


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
            for b in _call(
                uri,
                client,
                bucket_name,
                "list the objects",
                lambda: list(bucket.list_blobs(prefix=path)),
            )
            if b.name.lower().endswith(TABLE_SUFFIXES)
        ]
        if not blobs:
            if not _call(uri, client, bucket_name, "check the bucket", bucket.exists):
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
        data = _call(name, client, bucket_name, "read the object", blob.download_as_bytes)
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
    with google_errors("BigQuery", ""):
        return bigquery.Client(project=project)


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
    doing = "run the query" if query.strip() else "read the table"
    try:
        with google_errors(
            f"data source '{uri}'",
            doing,
            grant=BIGQUERY_GRANT,
            keep=(gexc.NotFound, gexc.BadRequest),
        ):
            if query.strip():
                sql = query.replace("{table}", f"`{table_id}`")
                rows = client.query_and_wait(sql, project=project, max_results=limit)
            else:
                rows = client.list_rows(client.get_table(table_id), max_results=limit)
            frame = rows.to_arrow(create_bqstorage_client=False).to_pandas()
    except gexc.NotFound as exc:
        raise DataError(
            f"data source '{uri}': {first_line(exc)}; check the project, dataset and table names"
        ) from exc
    except gexc.BadRequest as exc:
        raise DataError(
            f"data source '{uri}': BigQuery refused the query: {first_line(exc)}"
        ) from exc
    log.info("read %d rows from %s", len(frame), uri)
    return frame


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
        _call(uri, client, bucket_name, f"upload {file.name}", blob.upload_from_filename, str(file))
        written.append(f"gs://{bucket_name}/{name}")
    if not written:
        raise DataError(f"'{root}': no files to upload")
    return written


def _blobs_under(uri: str, client: Any) -> Iterator[tuple[Any, str]]:
    bucket_name, prefix = split_gcs_uri(uri.rstrip("/"))
    prefix = f"{prefix}/" if prefix else ""
    for blob in _call(
        uri,
        client,
        bucket_name,
        "list the objects",
        lambda: list(client.list_blobs(bucket_name, prefix=prefix)),
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
            _call(
                uri,
                client,
                blob.bucket.name,
                f"download {relative}",
                blob.download_to_filename,
                str(dest),
            )
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
    _call(
        uri,
        client,
        bucket_name,
        "write the object",
        blob.upload_from_string,
        text,
        content_type="application/json",
    )


def read_json(uri: str, client: Any = None) -> Any:
    bucket_name, name = split_gcs_uri(uri)
    client = client or storage_client()
    blob = client.bucket(bucket_name).blob(name)
    data = _call(uri, client, bucket_name, "read the object", blob.download_as_bytes)
    return json.loads(data)


def exists(uri: str, client: Any = None) -> bool:
    """Whether the object ``uri`` exists (False for a missing bucket too)."""
    bucket_name, name = split_gcs_uri(uri)
    client = client or storage_client()
    blob = client.bucket(bucket_name).blob(name)
    return bool(_call(uri, client, bucket_name, "check the object", blob.exists))


def list_names(uri: str, client: Any = None) -> list[str]:
    """The names of every object under the ``uri`` prefix, relative to it, sorted; [] when
    there are none."""
    client = client or storage_client()
    return sorted(relative for _, relative in _blobs_under(uri, client))


def read_bytes(uri: str, client: Any = None) -> bytes:
    """The content of the object ``uri`` (DataError, one line, when it is missing)."""
    bucket_name, name = split_gcs_uri(uri)
    client = client or storage_client()
    blob = client.bucket(bucket_name).blob(name)
    return bytes(_call(uri, client, bucket_name, "read the object", blob.download_as_bytes))


def create(uri: str, data: bytes, content_type: str, client: Any = None) -> bool:
    """Write the object ``uri`` only if it does not exist yet (a generation-0 precondition:
    of two writers racing for one name exactly one succeeds). False when it existed."""
    from google.api_core import exceptions as gexc

    bucket_name, name = split_gcs_uri(uri)
    client = client or storage_client()
    blob = client.bucket(bucket_name).blob(name)
    try:
        _call(
            uri,
            client,
            bucket_name,
            "write the object",
            blob.upload_from_string,
            data,
            content_type=content_type,
            if_generation_match=0,
        )
    except DataError as exc:
        if isinstance(exc.__cause__, gexc.PreconditionFailed):
            return False
        raise
    return True


def list_json(uri: str, client: Any = None) -> list[tuple[str, Any]]:
    """Every ``.json`` object directly under the ``uri`` prefix as (object URI, value), sorted
    by name; [] when there are none. An object that is not JSON is skipped with a warning."""
    client = client or storage_client()
    found = []
    for blob, relative in sorted(_blobs_under(uri, client), key=lambda pair: pair[1]):
        if "/" in relative or not relative.endswith(".json"):
            continue
        object_uri = f"gs://{blob.bucket.name}/{blob.name}"
        data = _call(
            object_uri, client, blob.bucket.name, "read the object", blob.download_as_bytes
        )
        try:
            found.append((object_uri, json.loads(data)))
        except (json.JSONDecodeError, UnicodeDecodeError):
            log.warning("%s is not JSON; skipped", object_uri)
    return found
