"""train: the PyTorch MLP, as ONE model bundle plus per-epoch metrics.

Its parameters after ``model_name`` are the fields of
``components.core.training.config.TrainConfig``, one to one and with the same names.
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.describe import documented
from components.images import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
@documented
def train(
    train_data: Input[Dataset],
    val_data: Input[Dataset],
    preprocessor: Input[Artifact],
    label: str,
    model_name: str,
    hidden_sizes: str,
    dropout: float,
    learning_rate: float,
    weight_decay: float,
    batch_size: int,
    max_epochs: int,
    patience: int,
    schedule: str,
    warmup_fraction: float,
    seed: int,
    precision: str,
    compile: bool,
    device: str,
    deterministic: bool,
    cpu_threads: int,
    cuda_graphs: bool,
    data_budget_mb: int,
    distributed: str,
    regression_loss: str,
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Train the MLP and write one model bundle (preprocessor + network + schema).

    Args:
        train_data: the raw training rows from preprocess.
        val_data: the raw validation rows, for early stopping.
        preprocessor: the preprocessor fitted on the training rows; it goes into the bundle.

    Returns:
        model: one bundle: weights, fitted preprocessor, bundle.json and a sha256 manifest.
        metrics: loss and accuracy on train and validation rows, per epoch.
    """
    parameters = dict(locals())  # first line: only the task's inputs are bound yet
    import os

    from components.core import settings, steps
    from components.core.progress import task_logging
    from components.core.training.config import TrainConfig

    task_logging()
    config = settings.build(TrainConfig, parameters)
    # Beside the output, so a retry of this task (same output URI) resumes from it.
    checkpoints = os.path.join(os.path.dirname(model.path), "checkpoints")
    history, summary = steps.train(
        train_data.path,
        val_data.path,
        preprocessor.path,
        label,
        config,
        model.path,
        model_name,
        checkpoints,
    )
    keys: tuple[str, ...] = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    if summary.get("val_accuracy") is None:  # a regressor: its losses only
        keys = ("train_loss", "val_loss")
    for row in history:
        for key in keys:
            metrics.log_metric(f"epoch{row['epoch']:03d}_{key}", round(row[key], 6))
    model.metadata.update({"framework": "pytorch", "name": model_name} | summary)
