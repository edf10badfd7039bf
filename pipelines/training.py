"""The training pipeline: wiring only.

Every parameter is a field of a config in components/core/settings.py, with that field's
default; each task receives the parameters its component declares, by name. Adding a
parameter: the config field, the component's input, and one line in the signature below.

No `from __future__ import annotations` here: KFP reads the parameter annotations as types.
"""

from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Model

from components.core.settings import defaults
from components.deploy import deploy
from components.describe import documented
from components.evaluate import evaluate
from components.ingest import ingest
from components.preprocess import preprocess
from components.train import train
from pipelines.targets import Target

PIPELINE_NAME = "sigdeploy-training"
# What a run hands back: the bundle, the gate's decision and the report.
PipelineOutputs = NamedTuple(
    "Outputs",
    [("model", Model), ("decision", Artifact), ("report", HTML), ("summary", Markdown)],
)
D = defaults()


def inputs(component: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The pipeline parameters that ``component`` declares as inputs, by name."""
    declared = component.component_spec.inputs or {}
    return {name: value for name, value in params.items() if name in declared}


def build_pipeline(target: Target) -> Any:
    """The pipeline function for one compile target."""

    @dsl.pipeline(name="promote", description="Deploy the challenger only if the gate said so.")
    @documented
    def promote(
        deploy_model: bool,
        model: Input[Model],
        decision: Input[Artifact],
        registry: str,
        model_name: str,
        serving_image: str,
        endpoint_name: str,
        machine_type: str,
        min_replicas: int,
        max_replicas: int,
        canary_percent: int,
    ):
        """Register and serve the challenger when the gate said so.

        Args:
            deploy_model: the gate's verdict: deploy only when true.
            model: the challenger's model bundle.
            decision: the gate's decision JSON.
        """
        # The dsl.If sits in its own small pipeline so that its condition reads a pipeline
        # input: the KFP local runner (2.17) cannot resolve a condition on a named output of
        # a sibling task, while Vertex and KFP resolve both forms.
        params = dict(locals())
        with dsl.If(deploy_model == True, name="significantly-better"):  # noqa: E712
            deploy_task = deploy(
                platform=target.name,  # how to serve is fixed per compile target
                **inputs(deploy, params),  # model, decision and the serving settings
            ).set_display_name("deploy")
            deploy_task.set_caching_options(False)
            target.configure_task(deploy_task)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Train an MLP and deploy it only when a significance test says it beats "
        "the champion on the same test rows.",
    )
    @documented
    def training_pipeline(
        # data: components/core/data/sources.SourceConfig
        source: str = D["source"],
        label: str = D["label"],
        image_size: int = D["image_size"],
        row_limit: int = D["row_limit"],
        query: str = D["query"],
        task: str = D["task"],
        # features: components/core/data/features.FeatureConfig
        id_columns: str = D["id_columns"],
        feature_columns: str = D["feature_columns"],
        # split: components/core/data/split.SplitConfig
        train_fraction: float = D["train_fraction"],
        val_fraction: float = D["val_fraction"],
        split_salt: str = D["split_salt"],
        split_key: str = D["split_key"],
        # trainer: components/core/training/config.TrainConfig
        hidden_sizes: str = D["hidden_sizes"],
        dropout: float = D["dropout"],
        learning_rate: float = D["learning_rate"],
        weight_decay: float = D["weight_decay"],
        batch_size: int = D["batch_size"],
        max_epochs: int = D["max_epochs"],
        patience: int = D["patience"],
        schedule: str = D["schedule"],
        warmup_fraction: float = D["warmup_fraction"],
        seed: int = D["seed"],
        precision: str = D["precision"],
        compile: bool = D["compile"],
        device: str = D["device"],
        deterministic: bool = D["deterministic"],
        cpu_threads: int = D["cpu_threads"],
        cuda_graphs: bool = D["cuda_graphs"],
        data_budget_mb: int = D["data_budget_mb"],
        distributed: str = D["distributed"],
        regression_loss: str = D["regression_loss"],
        # gate: components/core/evaluation/gate.GatePolicy
        alpha: float = D["alpha"],
        primary_metrics: str = D["primary_metrics"],
        margin: float = D["margin"],
        guardrails: str = D["guardrails"],
        min_test_rows: int = D["min_test_rows"],
        baseline: str = D["baseline"],
        first_run_guard: str = D["first_run_guard"],
        baseline_tolerance: float = D["baseline_tolerance"],
        accuracy_floor: float = D["accuracy_floor"],
        mcnemar_method: str = D["mcnemar_method"],
        target_effect: float = D["target_effect"],
        bootstrap_resamples: int = D["bootstrap_resamples"],
        bootstrap_seed: int = D["bootstrap_seed"],
        alpha_accounting: str = D["alpha_accounting"],
        min_fresh_rows: int = D["min_fresh_rows"],
        regression_error: str = D["regression_error"],
        regression_test: str = D["regression_test"],
        # registry: components/core/registry/base.RegistryConfig (the default depends on the target)
        registry: str = target.default_registry,
        model_name: str = D["model_name"],
        # serving: components/core/platforms/deploy_config.DeployConfig
        serving_image: str = D["serving_image"],
        endpoint_name: str = D["endpoint_name"],
        machine_type: str = D["machine_type"],
        min_replicas: int = D["min_replicas"],
        max_replicas: int = D["max_replicas"],
        canary_percent: int = D["canary_percent"],
    ) -> PipelineOutputs:
        """Train an MLP, test it against the champion, and deploy it only if it is better.

        Returns:
            model: the challenger's model bundle.
            decision: the gate's decision JSON, with the reason in plain words.
            report: the HTML report of the comparison.
            summary: the decision and its figures in Markdown.
        """
        params = dict(locals())  # first line: every pipeline parameter, by name
        ingest_task = ingest(**inputs(ingest, params)).set_display_name("ingest")
        # Fresh data and the current champion must never come from a cache.
        ingest_task.set_caching_options(False)

        prep_task = preprocess(
            dataset=ingest_task.outputs["dataset"], **inputs(preprocess, params)
        ).set_display_name("preprocess")
        # It reads the champion's split record from the registry: never from a cache either.
        prep_task.set_caching_options(False)

        train_task = train(
            train_data=prep_task.outputs["train_data"],
            val_data=prep_task.outputs["val_data"],
            preprocessor=prep_task.outputs["preprocessor"],
            **inputs(train, params),
        ).set_display_name("train")
        target.configure_train(train_task)
        # A preempted GPU node is retried; the retry resumes from the epoch checkpoint.
        train_task.set_retry(num_retries=3, backoff_duration="60s", backoff_factor=2.0)

        eval_task = evaluate(
            model=train_task.outputs["model"],
            train_data=prep_task.outputs["train_data"],
            test_data=prep_task.outputs["test_data"],
            **inputs(evaluate, params),
        ).set_display_name("evaluate")
        eval_task.set_caching_options(False)

        promote_task = promote(
            deploy_model=eval_task.outputs["deploy"],
            model=train_task.outputs["model"],
            decision=eval_task.outputs["decision"],
            **inputs(promote, params),
        ).set_display_name("promote")
        promote_task.set_caching_options(False)

        for task in (ingest_task, prep_task, train_task, eval_task):
            target.configure_task(task)

        return PipelineOutputs(
            train_task.outputs["model"],
            eval_task.outputs["decision"],
            eval_task.outputs["report"],
            eval_task.outputs["summary"],
        )

    return training_pipeline
