"""ingest: a source URI to a Parquet Dataset with metadata."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def ingest(
    source: str,
    label: str,
    image_size: int,
    row_limit: int,
    query: str,
    train_fraction: float,
    val_fraction: float,
    split_salt: str,
    dataset: Output[Dataset],
):
    from components.core import steps
    from components.core.data import SourceOptions
    from components.core.split import SplitConfig

    meta = steps.ingest(
        source,
        label,
        dataset.path,
        SourceOptions(image_size=image_size, row_limit=row_limit, query=query),
        SplitConfig(train_fraction, val_fraction, split_salt),
    )
    dataset.metadata.update(meta)
