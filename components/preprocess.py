"""preprocess: content-hash split into RAW train/val/test, preprocessor fitted on train."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def preprocess(
    dataset: Input[Dataset],
    label: str,
    train_fraction: float,
    val_fraction: float,
    split_salt: str,
    train_data: Output[Dataset],
    val_data: Output[Dataset],
    test_data: Output[Dataset],
    preprocessor: Output[Artifact],
):
    from components.core import steps
    from components.core.split import SplitConfig

    meta = steps.preprocess(
        dataset.path,
        label,
        SplitConfig(train_fraction, val_fraction, split_salt),
        train_data.path,
        val_data.path,
        test_data.path,
        preprocessor.path,
    )
    for artifact, key in (
        (train_data, "train"),
        (val_data, "val"),
        (test_data, "test"),
        (preprocessor, "preprocessor"),
    ):
        artifact.metadata.update(meta[key])
