"""preprocess: keyed split into RAW train/val/test, preprocessor fitted on train."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.describe import documented
from components.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
@documented
def preprocess(
    dataset: Input[Dataset],
    label: str,
    train_fraction: float,
    val_fraction: float,
    split_salt: str,
    id_columns: str,
    feature_columns: str,
    train_data: Output[Dataset],
    val_data: Output[Dataset],
    test_data: Output[Dataset],
    preprocessor: Output[Artifact],
    split_key: str = "",
    registry: str = "",
    model_name: str = "",
):
    """Split the rows by key (kept RAW) and fit the preprocessor on train.

    With a champion in the registry, first check that it can be compared on this data, so
    that data it cannot score fails here, before the train task.

    Args:
        dataset: the Parquet Dataset that ingest wrote.

    Returns:
        train_data: the raw training rows (Parquet).
        val_data: the raw validation rows, for early stopping (Parquet).
        test_data: the raw test rows that evaluate scores both models on (Parquet).
        preprocessor: the preprocessor fitted on the training rows (JSON parameters).
    """
    params = dict(locals())  # first line: only the task's inputs are bound yet
    from components.core import settings, steps
    from components.core.data.features import FeatureConfig
    from components.core.data.split import SplitConfig
    from components.core.progress import task_logging

    task_logging()
    meta = steps.preprocess(
        dataset.path,
        label,
        settings.build(SplitConfig, params),
        settings.build(FeatureConfig, params),
        train_data.path,
        val_data.path,
        test_data.path,
        preprocessor.path,
        registry=registry,
        model_name=model_name,
    )
    for artifact, key in (
        (train_data, "train"),
        (val_data, "val"),
        (test_data, "test"),
        (preprocessor, "preprocessor"),
    ):
        artifact.metadata.update(meta[key])
