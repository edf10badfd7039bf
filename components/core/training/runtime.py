"""Where and how a run computes: device, precision and CPU threads, resolved once per run.

CUDA: bf16 autocast by default (fp16 with a gradient scaler before Ampere or on request) and
TF32 matmuls. CPU: fp32, deterministic kernels and a thread count that fits the cores this
process may use (affinity, capped by a cgroup CPU quota).
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from components.core.errors import ConfigError
from components.core.training.config import TrainConfig

__all__ = ["Runtime", "configure_torch", "cpu_thread_count"]


@dataclass(frozen=True)
class Runtime:
    """Device, precision and CPU threads, resolved once per training run."""

    device: torch.device
    precision: str  # bf16 | fp16 | fp32
    threads: int = 0  # CPU threads for torch; 0 = leave torch's setting alone

    @classmethod
    def resolve(cls, config: TrainConfig) -> Runtime:
        want = config.device
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        if want.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(
                f"device={config.device!r}: CUDA is not available on this host; use auto or cpu"
            )
        try:
            device = torch.device(want)
        except RuntimeError as exc:
            raise ConfigError(
                f"device={config.device!r}: not a device name; use auto, cpu or cuda"
            ) from exc
        precision = config.precision
        if precision == "auto" and device.type == "cuda":
            # bf16 needs Ampere (8.0) or newer; older GPUs (T4, V100) run fp16 + scaler.
            precision = "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"
        elif precision == "auto":
            precision = "fp32"
        if device.type == "cpu" and precision == "fp16":
            raise ConfigError("precision='fp16' needs CUDA; use fp32 or bf16 on CPU")
        threads = cpu_thread_count(config.cpu_threads) if device.type == "cpu" else 0
        return cls(device=device, precision=precision, threads=threads)

    @property
    def data_dtype(self) -> torch.dtype:
        """How rows are kept on the device: in the autocast dtype on CUDA, which halves the
        memory and the gather traffic at no cost in accuracy (autocast would cast them to
        that dtype before the first matmul anyway)."""
        if self.device.type == "cuda" and self.precision == "bf16":
            return torch.bfloat16
        if self.device.type == "cuda" and self.precision == "fp16":
            return torch.float16
        return torch.float32

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)


def cpu_thread_count(requested: int = 0) -> int:
    """Threads for CPU training.

    The cores this process may use (affinity, capped by a cgroup CPU quota). It does not
    depend on the momentary load, so the same run on the same host gets the same thread
    count and therefore the same weights. On a host shared with other busy processes set
    ``cpu_threads`` explicitly: oversubscribed cores are far worse than an idle one (each
    OpenMP barrier waits for a descheduled thread; 2 threads ran 40x slower than 1 on a
    shared 2-core host).
    """
    if requested > 0:
        return requested
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    if quota is not None:
        return max(1, min(cores, math.floor(quota)))
    return max(1, cores)


def _cgroup_cpu_quota() -> float | None:
    """CPUs granted by a cgroup (v2 cpu.max or v1 cfs quota), None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None


def configure_torch(config: TrainConfig, runtime: Runtime) -> None:
    """Set torch's process-wide switches for this run: TF32 on CUDA, threads and
    deterministic kernels on CPU."""
    if runtime.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    elif runtime.threads:
        torch.set_num_threads(runtime.threads)
    want = config.deterministic and runtime.device.type == "cpu"
    if torch.are_deterministic_algorithms_enabled() != want:
        # Only on a change: the first call imports torch's compiler stack (seconds).
        torch.use_deterministic_algorithms(want)
