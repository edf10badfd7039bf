"""Classification metrics, and the baselines a first model is compared with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from components.core.errors import ConfigError

BASELINES = ("majority", "logistic")
EPS = 1e-15


def align_proba(proba: np.ndarray, model_classes: list[Any], classes: list[Any]) -> np.ndarray:
    """Columns of ``proba`` reordered to ``classes``; classes the model never saw get 0."""
    if list(model_classes) == list(classes):
        return proba
    index = {str(c): i for i, c in enumerate(model_classes)}
    out = np.zeros((proba.shape[0], len(classes)), dtype=np.float64)
    for j, c in enumerate(classes):
        i = index.get(str(c))
        if i is not None:
            out[:, j] = proba[:, i]
    return out


def classification_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1, log loss and ROC AUC (one-vs-rest macro for multiclass)."""
    from sklearn.metrics import f1_score, log_loss, roc_auc_score

    k = proba.shape[1]
    pred = proba.argmax(1)
    labels = list(range(k))
    clipped = np.clip(proba, EPS, 1.0)
    clipped = clipped / clipped.sum(1, keepdims=True)
    out = {
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "log_loss": float(log_loss(y, clipped, labels=labels)),
    }
    try:
        if k == 2:
            out["roc_auc"] = float(roc_auc_score(y, proba[:, 1]))
        else:
            out["roc_auc"] = float(
                roc_auc_score(y, clipped, multi_class="ovr", average="macro", labels=labels)
            )
    except ValueError:  # a class absent from the test rows leaves AUC undefined
        out["roc_auc"] = float("nan")
    return out


def confusion_matrix(y: np.ndarray, pred: np.ndarray, k: int) -> list[list[int]]:
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (y, pred), 1)
    return m.tolist()


def roc_points(y: np.ndarray, score: np.ndarray, max_points: int = 200) -> dict[str, list[float]]:
    """A binary ROC curve thinned to at most ``max_points`` (the Vertex console limit-friendly)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, score)
    if len(fpr) > max_points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(int))
        fpr, tpr, thr = fpr[keep], tpr[keep], thr[keep]
    thr = np.where(np.isfinite(thr), thr, 1.0)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thr.tolist()}


@dataclass
class Baseline:
    """Stand-in champion for the first run, fitted on the same train split."""

    kind: str = "majority"
    classes_: list[Any] = field(default_factory=list)
    prior_: np.ndarray | None = None
    model_: Any = None

    def fit(self, x: np.ndarray, y: np.ndarray, classes: list[Any]) -> Baseline:
        if self.kind not in BASELINES:
            raise ConfigError(f"baseline={self.kind!r}: use one of {', '.join(BASELINES)}")
        self.classes_ = list(classes)
        counts = np.bincount(y, minlength=len(classes)).astype(np.float64)
        self.prior_ = counts / counts.sum()
        if self.kind == "logistic":
            from sklearn.linear_model import LogisticRegression

            self.model_ = LogisticRegression(max_iter=2000).fit(x, y)
        return self

    def predict_proba_matrix(self, x: np.ndarray) -> np.ndarray:
        assert self.prior_ is not None, "fit first"
        if self.kind == "majority":
            # Predicts the majority class for every row; probabilities are the train prior.
            return np.tile(self.prior_, (x.shape[0], 1))
        proba = self.model_.predict_proba(x)
        full = np.zeros((x.shape[0], len(self.classes_)))
        full[:, self.model_.classes_] = proba
        return full

    def describe(self) -> str:
        return (
            "majority-class baseline" if self.kind == "majority" else "logistic-regression baseline"
        )


def encode_labels(labels: pd.Series | np.ndarray, classes: list[Any]) -> np.ndarray:
    """Class labels to integer indices; a label outside ``classes`` gets -1."""
    index = {str(c): i for i, c in enumerate(classes)}
    return np.array(
        [index.get(str(v), -1) for v in np.asarray(labels, dtype=object)], dtype=np.int64
    )
