"""Training on several GPUs: DistributedDataParallel, one process per GPU, under torchrun.

``train.train_mlp`` comes here by itself when more than one GPU is visible (``TrainConfig.
distributed == "auto"``): ``launch`` writes the arrays and the config to a job directory,
starts ``torchrun --standalone --nproc-per-node=N -m components.core.training.distributed JOB_DIR``
and reads back what rank 0 wrote. The caller then writes the model bundle exactly as after
single-process training. Every rank shuffles the same permutation and trains on its own
contiguous share of each global batch (``rows.shard_batch``); DDP averages gradients,
so the global batch size and the other hyperparameters mean what they mean on one GPU.
Checkpoints are written by rank 0 and read by every rank on a retry.

Run by hand on a job directory (``write_job``)::

    torchrun --standalone --nproc-per-node=4 -m components.core.training.distributed JOB_DIR
    python -m components.core.training.distributed JOB_DIR     # no torchrun: one process

Each process initialises from the variables torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT): NCCL on GPUs, gloo on CPU.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from components.core.errors import SigdeployError
from components.core.io import atomic_path, write_json
from components.core.model.mlp import MLP, MLPConfig
from components.core.training.config import TrainConfig
from components.core.training.loop import TrainResult, fit
from components.core.training.objective import CLASSIFY, Objective, objective
from components.core.training.runtime import Runtime

log = logging.getLogger(__name__)

JOB_ARRAYS = "arrays.npz"
JOB_SPEC = "job.json"
JOB_RESULT = "result.pt"


__all__ = [
    "DistEnv",
    "DistributedTrainingError",
    "launch",
    "main",
    "read_result",
    "run_worker",
    "write_job",
]


class DistributedTrainingError(SigdeployError):
    """The worker processes of a multi-GPU run failed."""


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the run, as torchrun describes it."""

    rank: int = 0  # global rank; 0 writes checkpoints and the result
    local_rank: int = 0  # rank on this host: the GPU index to use
    world: int = 1  # processes in the run

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DistEnv:
        env = os.environ if environ is None else environ
        return cls(
            rank=int(env.get("RANK", "0")),
            local_rank=int(env.get("LOCAL_RANK", "0")),
            world=int(env.get("WORLD_SIZE", "1")),
        )


def write_job(
    job_dir: str | os.PathLike[str],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    obj: Objective = CLASSIFY,
) -> Path:
    """Everything a worker needs, as plain files (no pickle); ``obj``: what the network is
    trained to do (classify, or regress with mse / huber)."""
    root = Path(job_dir)
    root.mkdir(parents=True, exist_ok=True)
    with atomic_path(root / JOB_ARRAYS) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val)
    write_json(
        root / JOB_SPEC,
        {
            "n_classes": int(n_classes),
            "objective": obj.name,
            "config": config.to_json(),
            "checkpoint_dir": str(checkpoint_dir) if checkpoint_dir else None,
        },
    )
    return root


def run_worker(job_dir: str | os.PathLike[str], env: DistEnv | None = None) -> None:
    """Train as one rank of the run (or alone) and, on rank 0, write the result."""
    env = env or DistEnv.from_env()
    root = Path(job_dir)
    spec = json.loads((root / JOB_SPEC).read_text())
    config = TrainConfig.from_json(spec["config"])
    with np.load(root / JOB_ARRAYS, allow_pickle=False) as arrays:
        x_train, y_train = arrays["x_train"], arrays["y_train"]
        x_val, y_val = arrays["x_val"], arrays["y_val"]
    runtime = Runtime.resolve(config)
    if runtime.device.type == "cuda":
        runtime = replace(runtime, device=torch.device("cuda", env.local_rank))
        torch.cuda.set_device(runtime.device)
    if env.world > 1:
        backend = "nccl" if runtime.device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)  # env:// from torchrun's variables
    try:
        result = fit(
            x_train,
            y_train,
            x_val,
            y_val,
            int(spec["n_classes"]),
            config,
            runtime,
            checkpoint_dir=spec["checkpoint_dir"],
            rank=env.rank,
            world=env.world,
            objective=objective(str(spec.get("objective", CLASSIFY.name))),
        )
        if env.rank == 0:
            _write_result(root / JOB_RESULT, result)
    finally:
        if env.world > 1:
            torch.distributed.destroy_process_group()


def _write_result(path: Path, result: TrainResult) -> None:
    payload = {
        "weights": {k: v.detach().cpu() for k, v in result.network.state_dict().items()},
        "model_config": json.dumps(result.network.config.to_json()),
        "history": [list(h.items()) for h in result.history],
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "device": result.device,
        "precision": result.precision,
        "resumed_from_epoch": result.resumed_from_epoch,
        "seconds": result.seconds,
        "stopped_early": result.stopped_early,
        "extra": json.dumps(result.extra),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def read_result(job_dir: str | os.PathLike[str]) -> TrainResult:
    payload = torch.load(Path(job_dir) / JOB_RESULT, map_location="cpu", weights_only=True)
    network = MLP(MLPConfig.from_json(json.loads(payload["model_config"])))
    network.load_state_dict(payload["weights"])
    network.eval()
    return TrainResult(
        network=network,
        history=[dict(h) for h in payload["history"]],
        best_epoch=int(payload["best_epoch"]),
        best_val_loss=float(payload["best_val_loss"]),
        device=str(payload["device"]),
        precision=str(payload["precision"]),
        resumed_from_epoch=int(payload["resumed_from_epoch"]),
        seconds=float(payload["seconds"]),
        stopped_early=bool(payload["stopped_early"]),
        extra=json.loads(payload["extra"]),
    )


def launch(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    n_classes: int,
    config: TrainConfig,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    *,
    nproc: int,
    timeout: float | None = None,
    obj: Objective = CLASSIFY,
) -> TrainResult:
    """Train with ``nproc`` processes under torchrun; returns rank 0's result (``obj``: the
    training objective; a regressor's network comes back answering standardised values).

    The network comes back on the CPU. A CPU config runs the same code over gloo (tests).
    """
    if nproc < 1:
        raise DistributedTrainingError(f"nproc={nproc}: need at least one process")
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="sigdeploy-ddp-") as job:
        write_job(job, x_train, y_train, x_val, y_val, n_classes, config, checkpoint_dir, obj)
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "components.core.training.distributed",
            job,
        ]
        log.info("training with %d processes: %s", nproc, " ".join(command))
        try:
            done = subprocess.run(command, env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DistributedTrainingError(
                f"distributed training: {nproc} workers did not finish within {timeout} s"
            ) from exc
        if done.returncode != 0 or not (Path(job) / JOB_RESULT).is_file():
            raise DistributedTrainingError(
                f"distributed training: workers exited with status {done.returncode}; see "
                "the worker log above, or set TrainConfig.distributed='off' to use one GPU"
            )
        result = read_result(job)
    result.extra["world_size"] = nproc
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m components.core.training.distributed",
        description="Train one job directory (see write_job) as one rank of a torchrun run.",
    )
    parser.add_argument("job_dir", help="directory holding arrays.npz and job.json")
    args = parser.parse_args(argv)
    env = DistEnv.from_env()
    logging.basicConfig(
        level=logging.INFO if env.rank == 0 else logging.WARNING,
        format=f"[rank {env.rank}] %(levelname)s %(name)s: %(message)s",
    )
    try:
        run_worker(args.job_dir, env)
    except SigdeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
