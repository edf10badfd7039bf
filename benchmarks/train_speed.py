"""Training speed on this CPU: the wall time our trainer needs to reach the test accuracy
that scikit-learn's MLPClassifier ends with, against scikit-learn itself and against a
textbook PyTorch loop (TensorDataset + DataLoader, batch 64, Adam 1e-3).

    .venv/bin/python benchmarks/train_speed.py            # everything (several minutes)
    .venv/bin/python benchmarks/train_speed.py --quick    # digits only (seconds)

Each comparison prints exactly one line, ``NAME: ours=VALUE UNIT PEER=VALUE UNIT ratio=R``
with R = ours / peer; lines starting with '#' describe the run. A run that never reaches
the target prints ``inf``.

How "time to reach" is measured: the validation rows handed to ``train_mlp`` ARE the test
split, so the evaluation the trainer runs after every epoch is the measurement itself; an
``on_epoch_end`` hook stops training as soon as that accuracy reaches scikit-learn's. The
timer covers the whole ``train_mlp`` call: tensor set-up, training and every evaluation.
The textbook loop is timed the same way (its evaluation after every epoch included).
Both torch runs share one process; the modules torch imports lazily on first use of an
optimiser (its compiler stack, seconds) are imported before any timer starts, like torch
itself. All three use the same number of CPU threads.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from components.core.training.config import TrainConfig
from components.core.training.runtime import cpu_thread_count
from components.core.training.train import train_mlp

HIDDEN = (256, 128)
SKLEARN_EPOCHS = 30

# Ours on the 200k set: reach the accuracy in few epochs with a short one-cycle schedule, a
# high peak rate and mid-size batches (a plain loop at batch 512 needs many more epochs).
OURS_200K = TrainConfig(
    hidden_sizes=HIDDEN,
    dropout=0.0,  # as scikit-learn's MLP
    learning_rate=1e-2,
    batch_size=512,
    max_epochs=2,  # the one-cycle schedule anneals over these two epochs
    patience=2,
    device="cpu",
)
# Ours on digits (1,078 training rows): small batches, some dropout against overfitting.
OURS_DIGITS = TrainConfig(
    hidden_sizes=HIDDEN,
    dropout=0.2,
    learning_rate=3e-3,
    batch_size=64,
    max_epochs=30,
    patience=30,
    device="cpu",
)


@dataclass
class Run:
    seconds: float  # wall time until the target was reached (or the whole run)
    epochs: int  # epochs run
    accuracy: float  # test accuracy at the end
    reached: bool  # whether the target accuracy was reached

    @property
    def time_to_target(self) -> float:
        return self.seconds if self.reached else math.inf


def line(name: str, ours: float, peer_name: str, peer: float, unit: str) -> str:
    ratio = ours / peer if peer > 0 else math.inf
    return f"{name}: ours={ours:.3f} {unit} {peer_name}={peer:.3f} {unit} ratio={ratio:.4f}"


def data_200k() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(
        n_samples=200_000, n_features=64, n_informative=32, n_classes=4, random_state=0
    )
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_tr)
    return (
        scaler.transform(x_tr).astype(np.float32),
        y_tr.astype(np.int64),
        scaler.transform(x_te).astype(np.float32),
        y_te.astype(np.int64),
    )


def data_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from components.core.data.features import fit_preprocessor
    from components.core.data.sources import load_source
    from components.core.data.split import SplitConfig, split_frame
    from components.core.evaluation.metrics import encode_labels

    parts = split_frame(load_source("sklearn:digits", "label"), "label", SplitConfig())
    pre = fit_preprocessor(parts["train"], "label")
    classes = sorted(parts["train"]["label"].unique().tolist())
    train, test = parts["train"], parts["test"]
    return (
        pre.transform(train).astype(np.float32),
        encode_labels(train["label"], classes),
        pre.transform(test).astype(np.float32),
        encode_labels(test["label"], classes),
    )


def run_sklearn(x_tr, y_tr, x_te, y_te, threads: int) -> Run:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    model = MLPClassifier(
        hidden_layer_sizes=HIDDEN, solver="adam", max_iter=SKLEARN_EPOCHS, random_state=0
    )
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(x_tr, y_tr)
        seconds = time.perf_counter() - start
    return Run(seconds, model.n_iter_, float(model.score(x_te, y_te)), True)


def run_ours(x_tr, y_tr, x_te, y_te, config: TrainConfig, target: float) -> Run:
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    start = time.perf_counter()
    result = train_mlp(
        x_tr,
        y_tr,
        x_te,  # the test split as validation: the per-epoch evaluation is the measurement
        y_te,
        n_classes,
        config,
        on_epoch_end=lambda event: event.record["val_accuracy"] >= target,
    )
    seconds = time.perf_counter() - start
    accuracy = result.history[-1]["val_accuracy"]
    return Run(seconds, len(result.history), accuracy, accuracy >= target)


def run_textbook(
    x_tr, y_tr, x_te, y_te, target: float, max_epochs: int = SKLEARN_EPOCHS, seed: int = 0
) -> Run:
    """The loop of a PyTorch tutorial: DataLoader batches of 64, Adam at 1e-3, fp32."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x_tr), torch.from_numpy(y_tr)), batch_size=64, shuffle=True
    )
    n_classes = int(max(y_tr.max(), y_te.max())) + 1
    layers: list[nn.Module] = []
    width = x_tr.shape[1]
    for hidden in HIDDEN:
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    model = nn.Sequential(*layers, nn.Linear(width, n_classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_test, y_test = torch.from_numpy(x_te), torch.from_numpy(y_te)
    accuracy = 0.0
    for epoch in range(1, max_epochs + 1):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = float((model(x_test).argmax(1) == y_test).float().mean())
        if accuracy >= target:
            return Run(time.perf_counter() - start, epoch, accuracy, True)
    return Run(time.perf_counter() - start, max_epochs, accuracy, False)


def describe(name: str, run: Run, target: float) -> str:
    state = "reached" if run.reached else "did NOT reach"
    return (
        f"# {name}: {state} {target:.4f} after {run.epochs} epoch(s), "
        f"test accuracy {run.accuracy:.4f}, {run.seconds:.2f} s"
    )


def warm_up_imports() -> float:
    """Import what torch loads lazily on the first optimiser (its compiler stack)."""
    start = time.perf_counter()
    import torch._dynamo  # noqa: F401
    import torch._inductor.config  # noqa: F401

    torch.optim.AdamW([nn.Parameter(torch.zeros(1))])
    return time.perf_counter() - start


def compare(name: str, data, ours_config: TrainConfig, threads: int, textbook: bool) -> None:
    x_tr, y_tr, x_te, y_te = data
    print(f"# {name}: {len(x_tr)} train x {x_tr.shape[1]} features, {len(x_te)} test rows")
    sk = run_sklearn(x_tr, y_tr, x_te, y_te, threads)
    target = sk.accuracy
    print(
        f"# {name}: scikit-learn MLPClassifier{HIDDEN}, adam, max_iter={SKLEARN_EPOCHS}: "
        f"{sk.epochs} epochs, {sk.seconds:.2f} s, test accuracy {target:.4f} (the target)"
    )
    ours = run_ours(x_tr, y_tr, x_te, y_te, ours_config, target)
    print(describe(f"{name} ours", ours, target))
    print(
        line(f"train_to_sklearn_accuracy_{name}", ours.time_to_target, "sklearn", sk.seconds, "s")
    )
    if textbook:
        book = run_textbook(x_tr, y_tr, x_te, y_te, target)
        print(describe(f"{name} textbook loop", book, target))
        print(
            line(
                f"train_to_sklearn_accuracy_{name}_vs_textbook",
                ours.time_to_target,
                "textbook",
                book.time_to_target,
                "s",
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="digits only")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = trainer's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    threads = cpu_thread_count(args.threads)
    torch.set_num_threads(threads)
    imported = warm_up_imports()
    cores = len(os.sched_getaffinity(0))
    print(
        f"# host: {platform.processor() or platform.machine()}, {cores} cores, "
        f"{threads} thread(s) for every contestant; torch {torch.__version__}; "
        f"lazy torch imports before timing: {imported:.1f} s"
    )
    if not args.quick:
        config = replace(OURS_200K, cpu_threads=threads)
        compare("200k", data_200k(), config, threads, textbook=True)
    compare("digits", data_digits(), replace(OURS_DIGITS, cpu_threads=threads), threads, False)


if __name__ == "__main__":
    main()
