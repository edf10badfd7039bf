"""Model quality against what a practitioner would fit instead: the default MLP (trained
exactly as the train step trains it, temperature scaling included) beside a standardised
logistic regression and scikit-learn's HistGradientBoosting, on the same stored splits.

    .venv/bin/python benchmarks/model_quality.py            # every data set (a few minutes)
    .venv/bin/python benchmarks/model_quality.py --quick    # small generated tables only

Data: the bundled digits, breast_cancer and wine, scikit-learn's diabetes (regression),
and generated tables with categorical columns and missing values (classification and
regression). Regression: the MLP regressor (``training.train_regressor``, default settings,
MSE) against least squares and HistGradientBoostingRegressor, RMSE on the test split (the
pipeline does not train regressors yet: this measures the trainer alone).

Each model is scored on the test split that ``sigdeploy run`` would use (the default
SplitConfig). The MLP trains on the train split and uses the validation split for early
stopping and its temperature, as the pipeline does; the two peers, which need no validation
rows, fit on train + validation (what a practitioner would do). All three see the
preprocessor's output (median-imputed, standardised numbers and one-hot categories, fitted
on the train split).

One line per comparison, ``NAME: ours=VALUE UNIT PEER=VALUE UNIT ratio=R`` (R = ours /
peer): log loss (RMSE) against each peer (lower is better), accuracy against each peer
(higher is better), and ``DATA_log_loss_vs_best`` (``DATA_rmse_vs_best``) against the
better peer: the target is R <= 1.10.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from components.core.data.features import fit_preprocessor
from components.core.data.sources import load_source
from components.core.data.split import SPLITS, SplitConfig, split_frame
from components.core.evaluation.metrics import classification_metrics, encode_labels
from components.core.model.bundle import load_bundle
from components.core.steps import train_frames
from components.core.training.config import TrainConfig

LABEL = "label"
TARGET = 1.10  # MLP log loss at most 10% above the better peer's
THREADS = 0  # CPU threads for every model (--threads); 0 = each library's default


def generated_table(n: int, seed: int = 0, regression: bool = False) -> pd.DataFrame:
    """Numbers and categories with missing values; the label depends on both, with noise
    and an interaction: three classes, or (``regression``) the underlying score itself."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(45, 12, n).round(),
            "income": rng.lognormal(10, 0.6, n),
            "tenure": rng.exponential(4, n),
            "visits": rng.poisson(3, n).astype(float),
            "plan": rng.choice(["basic", "plus", "pro", "team"], n, p=[0.4, 0.3, 0.2, 0.1]),
            "region": rng.choice([f"r{i}" for i in range(12)], n),
            "channel": rng.choice(["web", "store", "phone"], n),
        }
    )
    region_effect = dict(zip([f"r{i}" for i in range(12)], rng.normal(0, 0.8, 12), strict=True))
    plan_effect = {"basic": -0.8, "plus": 0.0, "pro": 0.6, "team": 1.2}
    score = (
        0.04 * (frame["age"] - 45)
        + 0.8 * np.log(frame["income"] / 22000)
        + frame["plan"].map(plan_effect)
        + frame["region"].map(region_effect)
        + 0.3 * np.sqrt(frame["tenure"]) * (frame["channel"] == "web")
        + rng.logistic(0, 0.6, n)
    )
    if regression:
        frame[LABEL] = 100 * score
    else:
        frame[LABEL] = np.where(score > 0.9, "high", np.where(score > -0.3, "mid", "low"))
    for column, share in (("age", 0.05), ("income", 0.1), ("plan", 0.05), ("region", 0.08)):
        frame.loc[rng.random(n) < share, column] = np.nan if frame[column].dtype != object else None
    return frame


def _mlp(train, val, test, pre, classes, workdir):
    config = TrainConfig(device="cpu", cpu_threads=THREADS)  # the defaults a user gets
    started = time.perf_counter()
    train_frames(train, val, pre, LABEL, config, workdir / "model", "quality")
    seconds = time.perf_counter() - started
    bundle = load_bundle(workdir / "model")
    assert list(bundle.classes) == list(classes)
    return bundle.predict_proba(test), seconds, bundle.meta


def _peers(x_fit, y_fit, x_test):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, model in (
            ("logistic", LogisticRegression(max_iter=5000, C=1.0)),
            ("hgb", HistGradientBoostingClassifier(random_state=0)),
        ):
            started = time.perf_counter()
            model.fit(x_fit, y_fit)
            out[name] = (model.predict_proba(x_test), time.perf_counter() - started)
    return out


def compare(name: str, frame: pd.DataFrame) -> list[str]:
    parts = split_frame(frame, LABEL, SplitConfig())
    train, val, test = parts["train"], parts["val"], parts["test"]
    pre = fit_preprocessor(train, LABEL)
    classes = sorted(train[LABEL].unique().tolist())
    y_test = encode_labels(test[LABEL], classes)
    x_fit = np.concatenate([pre.transform(train), pre.transform(val)])
    y_fit = np.concatenate(
        [encode_labels(train[LABEL], classes), encode_labels(val[LABEL], classes)]
    )
    with tempfile.TemporaryDirectory() as tmp:
        proba, seconds, meta = _mlp(train, val, test, pre, classes, Path(tmp))
    ours = classification_metrics(y_test, proba)
    peers = {
        k: (classification_metrics(y_test, p), s)
        for k, (p, s) in _peers(x_fit, y_fit, pre.transform(test)).items()
    }
    cal = meta.get("calibration") or {}
    used = meta.get("train_config") or {}
    lines = [
        f"# {name}: {len(train):,} train / {len(val):,} val / {len(test):,} test rows, "
        f"{x_fit.shape[1]} features, {len(classes)} classes; MLP {meta['training']['epochs_run']} "
        f"epochs (batch {used.get('batch_size')}), temperature {cal.get('temperature')}, "
        f"{seconds:.1f} s; peers " + ", ".join(f"{k} {s:.1f} s" for k, (_, s) in peers.items())
    ]
    for peer, (m, _) in peers.items():
        lines.append(
            f"{name}_log_loss_vs_{peer}: ours={ours['log_loss']:.4f} nats "
            f"{peer}={m['log_loss']:.4f} nats ratio={ours['log_loss'] / m['log_loss']:.4g}"
        )
        lines.append(
            f"{name}_accuracy_vs_{peer}: ours={ours['accuracy']:.4f} accuracy "
            f"{peer}={m['accuracy']:.4f} accuracy ratio={ours['accuracy'] / m['accuracy']:.4g}"
        )
    best = min(peers, key=lambda k: peers[k][0]["log_loss"])
    best_loss = peers[best][0]["log_loss"]
    ratio = ours["log_loss"] / best_loss
    lines.append(
        f"{name}_log_loss_vs_best: ours={ours['log_loss']:.4f} nats {best}={best_loss:.4f} "
        f"nats ratio={ratio:.4g}"
    )
    lines.append(f"# {name}: target ratio <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'}")
    return lines


def compare_regression(name: str, frame: pd.DataFrame) -> list[str]:
    """The MLP regressor (``train_regressor``, default settings, MSE) against least squares
    and HistGradientBoostingRegressor, RMSE on the test split."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    from components.core.data.split import assign_splits, default_key
    from components.core.evaluation.regression import regression_metrics
    from components.core.training.train import train_regressor

    config = SplitConfig()
    assignment = assign_splits(frame, config, default_key(frame, config))
    train, val, test = (frame.loc[assignment == s].reset_index(drop=True) for s in SPLITS)
    pre = fit_preprocessor(train, LABEL)
    xs = [pre.transform(part) for part in (train, val, test)]
    ys = [part[LABEL].to_numpy(np.float64) for part in (train, val, test)]
    started = time.perf_counter()
    config = TrainConfig(device="cpu", cpu_threads=THREADS)
    result = train_regressor(xs[0], ys[0], xs[1], ys[1], config)
    seconds = time.perf_counter() - started
    import torch

    with torch.no_grad():
        ours = regression_metrics(ys[2], result.network(torch.as_tensor(xs[2]))[:, 0].numpy())
    x_fit, y_fit = np.concatenate(xs[:2]), np.concatenate(ys[:2])
    peers = {}
    for peer, model in (
        ("linear", LinearRegression()),
        ("hgb", HistGradientBoostingRegressor(random_state=0)),
    ):
        peers[peer] = regression_metrics(ys[2], model.fit(x_fit, y_fit).predict(xs[2]))
    lines = [
        f"# {name}: {len(train):,} train / {len(val):,} val / {len(test):,} test rows, "
        f"{xs[0].shape[1]} features, regression; MLP {len(result.history)} epochs, "
        f"{seconds:.1f} s; test R^2 ours {ours['r2']:.3f}, "
        + ", ".join(f"{k} {m['r2']:.3f}" for k, m in peers.items())
    ]
    for peer, m in peers.items():
        lines.append(
            f"{name}_rmse_vs_{peer}: ours={ours['rmse']:.4g} rmse {peer}={m['rmse']:.4g} rmse "
            f"ratio={ours['rmse'] / m['rmse']:.4g}"
        )
    best = min(peers, key=lambda k: peers[k]["rmse"])
    ratio = ours["rmse"] / peers[best]["rmse"]
    lines.append(
        f"{name}_rmse_vs_best: ours={ours['rmse']:.4g} rmse {best}={peers[best]['rmse']:.4g} "
        f"rmse ratio={ratio:.4g}"
    )
    lines.append(f"# {name}: target ratio <= {TARGET}: {'met' if ratio <= TARGET else 'NOT met'}")
    return lines


def diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame.rename(columns={"target": LABEL})
    frame.columns = [str(c) for c in frame.columns]
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small generated tables only")
    parser.add_argument("--rows", type=int, default=5000, help="rows of the generated table")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = default)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    global THREADS
    THREADS = args.threads
    if args.threads:  # the peers' OpenMP / BLAS threads too
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    data: list[tuple[str, pd.DataFrame]] = []
    if not args.quick:
        data += [
            (n, load_source(f"sklearn:{n}", LABEL)) for n in ("digits", "breast_cancer", "wine")
        ]
    rows = 600 if args.quick else args.rows
    data.append((f"generated_{rows}", generated_table(rows)))
    if not args.quick:
        data.append(("generated_50000", generated_table(50_000, seed=1)))
    for name, frame in data:
        for line in compare(name, frame):
            print(line, flush=True)
    regression: list[tuple[str, pd.DataFrame]] = []
    if not args.quick:
        regression.append(("diabetes", diabetes()))
    regression.append((f"generated_regression_{rows}", generated_table(rows, 2, True)))
    for name, frame in regression:
        for line in compare_regression(name, frame):
            print(line, flush=True)


if __name__ == "__main__":
    main()
