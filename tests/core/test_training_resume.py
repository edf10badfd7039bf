"""Preemption: a training process killed with SIGKILL and started again ends with the very
weights of an uninterrupted run; a checkpoint that cannot be trusted is reported and ignored."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from components.core.training.checkpoint import CHECKPOINT_FILE
from components.core.training.config import TrainConfig
from components.core.training.train import train_mlp

REPO = Path(__file__).resolve().parents[2]
# Dropout on, so that resuming must also reproduce the random masks; one thread, so that
# the killed run, the resumed run and the reference sum in the same order.
CONFIG = TrainConfig(
    hidden_sizes=(32, 16), dropout=0.2, batch_size=64, max_epochs=8, device="cpu", cpu_threads=1
)

WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    import numpy as np
    from safetensors.torch import save_file

    from components.core.training.config import TrainConfig
    from components.core.training.train import train_mlp

    work, pause = Path(sys.argv[1]), float(sys.argv[2])
    data = np.load(work / "data.npz")
    config = TrainConfig.from_json(json.loads((work / "config.json").read_text()))

    def progress(event):
        # Called after the epoch's checkpoint is on disk: a kill from here on loses nothing.
        tmp = work / "progress.tmp"
        tmp.write_text(str(event.epoch))
        tmp.replace(work / "progress")  # atomic: a reader never sees it half written
        time.sleep(pause)

    result = train_mlp(
        data["x_train"], data["y_train"], data["x_val"], data["y_val"], 4, config,
        checkpoint_dir=work / "checkpoints", on_epoch_end=progress,
    )
    state = {k: v.contiguous() for k, v in result.network.state_dict().items()}
    save_file(state, str(work / "weights.safetensors"))
    (work / "result.json").write_text(json.dumps({
        "resumed_from_epoch": result.resumed_from_epoch, "epochs": len(result.history),
    }))
    """
)


def _data(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1500, 12)).astype(np.float32)
    y = (np.digitize(x[:, 0] + 0.5 * x[:, 1], [-0.7, 0.0, 0.7]) + seed) % 4
    return {"x_train": x[:1200], "y_train": y[:1200], "x_val": x[1200:], "y_val": y[1200:]}


def _train(data, config=CONFIG, **kwargs):
    return train_mlp(
        data["x_train"], data["y_train"], data["x_val"], data["y_val"], 4, config, **kwargs
    )


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


@pytest.fixture(scope="module")
def reference():
    """The uninterrupted run, without any checkpoint."""
    return _train(_data())


def _start(work: Path, pause: float) -> subprocess.Popen:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.Popen(
        [sys.executable, str(work / "worker.py"), str(work), str(pause)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for_epoch(work: Path, proc: subprocess.Popen, epoch: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    progress = work / "progress"
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        # One read: the worker rewrites the file (truncate, then write) after every epoch,
        # so a second read can catch it empty.
        text = progress.read_text().strip() if progress.exists() else ""
        if text.isdigit() and int(text) >= epoch:
            return int(text)
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"the worker did not reach epoch {epoch} within {timeout} s")


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_ends_with_the_uninterrupted_weights(tmp_path, reference):
    from safetensors.torch import load_file

    (tmp_path / "worker.py").write_text(WORKER)
    np.savez(tmp_path / "data.npz", **_data())
    (tmp_path / "config.json").write_text(json.dumps(CONFIG.to_json()))

    first = _start(tmp_path, pause=0.5)
    try:
        _wait_for_epoch(tmp_path, first, epoch=3, timeout=180)
        first.send_signal(signal.SIGKILL)  # preemption: no handler, no cleanup
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    assert (tmp_path / "checkpoints" / CHECKPOINT_FILE).is_file()
    assert not (tmp_path / "weights.safetensors").exists()

    second = _start(tmp_path, pause=0.0)  # the retry: same task, same checkpoint directory
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err.decode()
    summary = json.loads((tmp_path / "result.json").read_text())
    assert 3 <= summary["resumed_from_epoch"] < CONFIG.max_epochs
    assert summary["epochs"] == len(reference.history)
    weights = load_file(str(tmp_path / "weights.safetensors"))
    assert _equal(weights, reference.network.state_dict())


def test_crash_after_two_epochs_then_resume_in_process(tmp_path, reference):
    def crash(event):
        if event.epoch == 2:
            raise RuntimeError("simulated preemption")

    with pytest.raises(RuntimeError, match="simulated"):
        _train(_data(), checkpoint_dir=tmp_path, on_epoch_end=crash)
    resumed = _train(_data(), checkpoint_dir=tmp_path)
    assert resumed.resumed_from_epoch == 2
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in reference.history]
    assert resumed.best_epoch == reference.best_epoch
    assert _equal(resumed.network.state_dict(), reference.network.state_dict())


def test_a_finished_checkpoint_returns_the_result_without_training(tmp_path, reference):
    _train(_data(), checkpoint_dir=tmp_path)
    again = _train(_data(), checkpoint_dir=tmp_path)
    assert again.resumed_from_epoch == len(reference.history)
    assert _equal(again.network.state_dict(), reference.network.state_dict())


def _valid_checkpoint(directory: Path, data=None, config=CONFIG) -> bytes:
    _train(data or _data(), config, checkpoint_dir=directory)
    return (directory / CHECKPOINT_FILE).read_bytes()


def _truncated(tmp: Path) -> bytes:
    blob = _valid_checkpoint(tmp)
    return blob[: len(blob) // 2]


def _random_bytes(tmp: Path) -> bytes:
    return np.random.default_rng(0).bytes(4096)


def _other_data(tmp: Path) -> bytes:
    return _valid_checkpoint(tmp, data=_data(seed=1))


def _other_config(tmp: Path) -> bytes:
    from dataclasses import replace

    return _valid_checkpoint(tmp, config=replace(CONFIG, learning_rate=1e-3))


def _not_a_checkpoint(tmp: Path) -> bytes:
    torch.save([1, 2, 3], tmp / "list.pt")
    return (tmp / "list.pt").read_bytes()


@pytest.mark.parametrize(
    "make", [_truncated, _random_bytes, _other_data, _other_config, _not_a_checkpoint]
)
def test_a_bad_checkpoint_is_reported_and_ignored(tmp_path, caplog, reference, make):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    blob = make(scratch)
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / CHECKPOINT_FILE).write_bytes(blob)
    with caplog.at_level(logging.WARNING, logger="components.core.training.checkpoint"):
        result = _train(_data(), checkpoint_dir=checkpoints)
    assert "training from scratch" in caplog.text
    assert result.resumed_from_epoch == 0
    assert _equal(result.network.state_dict(), reference.network.state_dict())
    # The bad file has been replaced by this run's own checkpoint.
    assert (checkpoints / CHECKPOINT_FILE).read_bytes() != blob


def test_a_torn_temporary_file_from_a_killed_save_is_removed(tmp_path, reference):
    stale = tmp_path / f".{CHECKPOINT_FILE}.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    result = _train(_data(), checkpoint_dir=tmp_path)
    assert not stale.exists()
    assert _equal(result.network.state_dict(), reference.network.state_dict())


def test_loading_keeps_the_optimisers_own_learning_rate_tensor(tmp_path):
    """A CUDA graph reads the rate from the tensor it captured: a resumed optimiser must
    keep that tensor (the checkpoint's copy would sit on the CPU) and get the schedule's
    value written into it."""
    from components.core.training.checkpoint import Checkpointer, TrainState
    from components.core.training.schedule import LRSchedule

    config = TrainConfig(learning_rate=0.1)

    def make():
        torch.manual_seed(0)
        net = torch.nn.Linear(3, 2)
        rate = torch.tensor(config.learning_rate)
        opt = torch.optim.AdamW(net.parameters(), lr=rate, fused=True)
        return (
            net,
            opt,
            LRSchedule(opt, config, total=40),
            torch.amp.GradScaler("cpu", enabled=False),
            rate,
        )

    net, opt, sched, scaler, _ = make()
    net(torch.ones(5, 3)).sum().backward()
    opt.step()
    for _ in range(9):
        sched.step()
    ckpt = Checkpointer(tmp_path, {"k": 1})
    ckpt.save(TrainState([], 1.0, 1, None, 1, 0), net, opt, sched, scaler)
    net2, opt2, sched2, scaler2, rate2 = make()
    assert ckpt.load(net2, opt2, sched2, scaler2) is not None
    assert opt2.param_groups[0]["lr"] is rate2
    assert float(rate2) == pytest.approx(sched.rate(9))
    assert _equal(net2.state_dict(), net.state_dict())
