"""The training pipeline: wiring only. Every default comes from the core config dataclasses.

No `from __future__ import annotations` here: KFP reads the parameter annotations as types.
"""

from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Markdown, Model

from components import images
from components.core.gate import GatePolicy
from components.core.split import SplitConfig
from components.core.train_config import TrainConfig
from components.core.vertex_registry import EndpointConfig
from components.deploy import deploy
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
_T, _G, _S, _E = TrainConfig(), GatePolicy(), SplitConfig(), EndpointConfig()


def build_pipeline(target: Target) -> Any:
    """The pipeline function for one compile target."""

    @dsl.pipeline(name="promote", description="Deploy the challenger only if the gate said so.")
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
        # The dsl.If sits in its own small pipeline so that its condition reads a pipeline
        # input: the KFP local runner (2.17) cannot resolve a condition on a named output of
        # a sibling task, while Vertex and KFP resolve both forms.
        with dsl.If(deploy_model == True, name="significantly-better"):  # noqa: E712
            deploy_task = deploy(
                model=model,
                decision=decision,
                registry=registry,
                model_name=model_name,
                platform=target.name,  # how to serve is fixed per compile target
                serving_image=serving_image,
                endpoint_name=endpoint_name,
                machine_type=machine_type,
                min_replicas=min_replicas,
                max_replicas=max_replicas,
                canary_percent=canary_percent,
            ).set_display_name("deploy")
            deploy_task.set_caching_options(False)
            target.configure_task(deploy_task)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Train an MLP and deploy it only when a significance test says it beats "
        "the champion on the same test rows.",
    )
    def training_pipeline(
        source: str = "sklearn:digits",
        label: str = "label",
        model_name: str = "digits-mlp",
        registry: str = target.default_registry,
        image_size: int = 28,
        row_limit: int = 0,
        query: str = "",
        train_fraction: float = _S.train_fraction,
        val_fraction: float = _S.val_fraction,
        split_salt: str = _S.salt,
        hidden_sizes: str = ",".join(map(str, _T.hidden_sizes)),
        dropout: float = _T.dropout,
        learning_rate: float = _T.learning_rate,
        weight_decay: float = _T.weight_decay,
        batch_size: int = _T.batch_size,
        max_epochs: int = _T.max_epochs,
        patience: int = _T.patience,
        schedule: str = _T.schedule,
        warmup_fraction: float = _T.warmup_fraction,
        seed: int = _T.seed,
        precision: str = _T.precision,
        compile: bool = _T.compile,
        device: str = _T.device,
        deterministic: bool = _T.deterministic,
        cpu_threads: int = _T.cpu_threads,
        cuda_graphs: bool = _T.cuda_graphs,
        data_budget_mb: int = _T.data_budget_mb,
        distributed: str = _T.distributed,
        alpha: float = _G.alpha,
        primary_metrics: str = ",".join(_G.primary_metrics),
        margin: float = _G.margin,
        guardrails: str = "",
        min_test_rows: int = _G.min_test_rows,
        baseline: str = _G.baseline,
        accuracy_floor: float = _G.accuracy_floor,
        # serving (vertex: Model Registry + endpoint; kind: Deployment/Service); see
        # components/core/vertex_registry.EndpointConfig and components/core/kube.KubeServing
        serving_image: str = images.SERVING_IMAGE,
        endpoint_name: str = _E.endpoint_name,
        machine_type: str = _E.machine_type,
        min_replicas: int = _E.min_replicas,
        max_replicas: int = _E.max_replicas,
        canary_percent: int = _E.canary_percent,
    ) -> PipelineOutputs:
        ingest_task = ingest(
            source=source,
            label=label,
            image_size=image_size,
            row_limit=row_limit,
            query=query,
            train_fraction=train_fraction,
            val_fraction=val_fraction,
            split_salt=split_salt,
        ).set_display_name("ingest")
        # Fresh data and the current champion must never come from a cache.
        ingest_task.set_caching_options(False)

        prep_task = preprocess(
            dataset=ingest_task.outputs["dataset"],
            label=label,
            train_fraction=train_fraction,
            val_fraction=val_fraction,
            split_salt=split_salt,
        ).set_display_name("preprocess")

        train_task = train(
            train_data=prep_task.outputs["train_data"],
            val_data=prep_task.outputs["val_data"],
            preprocessor=prep_task.outputs["preprocessor"],
            label=label,
            model_name=model_name,
            hidden_sizes=hidden_sizes,
            dropout=dropout,
            learning_rate=learning_rate,
            weight_decay=weight_decay,
            batch_size=batch_size,
            max_epochs=max_epochs,
            patience=patience,
            schedule=schedule,
            warmup_fraction=warmup_fraction,
            seed=seed,
            precision=precision,
            compile=compile,
            device=device,
            deterministic=deterministic,
            cpu_threads=cpu_threads,
            cuda_graphs=cuda_graphs,
            data_budget_mb=data_budget_mb,
            distributed=distributed,
        ).set_display_name("train")
        target.configure_train(train_task)
        # A preempted GPU node is retried; the retry resumes from the epoch checkpoint.
        train_task.set_retry(num_retries=3, backoff_duration="60s", backoff_factor=2.0)

        eval_task = evaluate(
            model=train_task.outputs["model"],
            train_data=prep_task.outputs["train_data"],
            test_data=prep_task.outputs["test_data"],
            registry=registry,
            model_name=model_name,
            alpha=alpha,
            primary_metrics=primary_metrics,
            margin=margin,
            guardrails=guardrails,
            min_test_rows=min_test_rows,
            baseline=baseline,
            accuracy_floor=accuracy_floor,
        ).set_display_name("evaluate")
        eval_task.set_caching_options(False)

        promote_task = promote(
            deploy_model=eval_task.outputs["deploy"],
            model=train_task.outputs["model"],
            decision=eval_task.outputs["decision"],
            registry=registry,
            model_name=model_name,
            serving_image=serving_image,
            endpoint_name=endpoint_name,
            machine_type=machine_type,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            canary_percent=canary_percent,
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
