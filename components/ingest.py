"""ingest: a source URI to a Parquet Dataset with metadata."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.describe import documented
from components.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
@documented
def ingest(
    source: str,
    label: str,
    image_size: int,
    row_limit: int,
    query: str,
    task: str,
    train_fraction: float,
    val_fraction: float,
    split_salt: str,
    dataset: Output[Dataset],
    split_key: str = "",
):
    """Read the source and write it as one Parquet Dataset.

    Parameters are described by their config fields' comments (components/describe.py).

    Returns:
        dataset: the rows as Parquet; its metadata: rows, columns, classes, sha256, origin.
    """
    params = dict(locals())  # first line: only the task's inputs are bound yet
    from components.core import settings, steps
    from components.core.data.sources import SourceConfig
    from components.core.data.split import SplitConfig
    from components.core.progress import task_logging

    task_logging()
    meta = steps.ingest(
        settings.build(SourceConfig, params), settings.build(SplitConfig, params), dataset.path
    )
    dataset.metadata.update(meta)
