"""Progress lines: one format that the task logs carry and `sigdeploy run` shows live."""

from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

from components.core import progress


def test_a_reported_line_is_found_again_in_a_log_line():
    record = logging.LogRecord("components.core.progress", logging.INFO, "", 0, "", (), None)
    record.msg, record.args = "%s %s: %s", (progress.MARKER, "train", "epoch 3/60: ...")
    line = logging.Formatter(progress.FORMAT).format(record)
    assert progress.parse(line) == ("train", "epoch 3/60: ...")
    assert progress.parse("INFO something else: epoch 3/60") is None


def test_throttle_lets_the_first_and_forced_calls_through():
    now = [0.0]
    show = progress.Throttle(10.0, clock=lambda: now[0])
    seen = []
    for t in (0.0, 3.0, 9.9, 10.0, 12.0, 25.0):
        now[0] = t
        seen.append(show())
    assert seen == [True, False, False, True, False, True]
    assert show(force=True)


@pytest.mark.parametrize(
    ("seconds", "text"), [(4.4, "4 s"), (65, "1 min 05 s"), (7260, "2 h 01 min")]
)
def test_durations_read_as_people_write_them(seconds, text):
    assert progress.duration(seconds) == text


def test_a_task_process_writes_progress_to_stderr_once():
    code = (
        "from components.core import progress\n"
        "progress.task_logging(); progress.task_logging()\n"
        "progress.report('ingest', 'read 10 rows')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and progress.parse(lines[0]) == ("ingest", "read 10 rows")


def test_training_reports_epochs_with_an_upper_bound_of_the_time_left(caplog):
    from components.core.training.config import TrainConfig
    from components.core.training.train import train_mlp

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    config = TrainConfig(max_epochs=4, patience=10, batch_size=64, cpu_threads=1)
    with caplog.at_level(logging.INFO, logger="components.core.progress"):
        train_mlp(x, y, x[:64], y[:64], 2, config)
    lines = [progress.parse(r.getMessage()) for r in caplog.records]
    assert all(step == "train" for step, _ in lines)
    texts = [text for _, text in lines]
    assert texts[0].startswith("on cpu (fp32, 1 thread), 256 rows x 4 features, batch 64")
    assert texts[1].startswith("epoch 1/4: train loss ") and "at most" in texts[1]
    assert " rows/s, " in texts[1]
    assert texts[-2].startswith("epoch 4/4: ") and texts[-2].endswith("done")  # the last
    assert texts[-1].startswith("stopped after 4 epochs (max epochs) in ")
