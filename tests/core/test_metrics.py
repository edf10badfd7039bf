"""Metrics agree with scikit-learn; baselines behave as documented."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, log_loss, roc_auc_score

from components.core.evaluation.metrics import (
    Baseline,
    align_proba,
    classification_metrics,
    confusion_matrix,
    encode_labels,
)


def _proba(n, k, seed):
    rng = np.random.default_rng(seed)
    p = rng.random((n, k))
    return p / p.sum(1, keepdims=True)


def test_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    p = _proba(200, 4, 1)
    m = classification_metrics(y, p)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p.argmax(1)))
    assert m["macro_f1"] == pytest.approx(f1_score(y, p.argmax(1), average="macro"))
    assert m["log_loss"] == pytest.approx(log_loss(y, p))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"))


def test_binary_auc_uses_positive_column():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 100)
    p = _proba(100, 2, 3)
    assert classification_metrics(y, p)["roc_auc"] == pytest.approx(roc_auc_score(y, p[:, 1]))


def test_confusion_matrix_counts():
    m = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 3)
    assert m == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]


def test_align_proba_reorders_and_fills_unknown_classes():
    p = np.array([[0.2, 0.8]])
    out = align_proba(p, ["b", "a"], ["a", "b", "c"])
    np.testing.assert_allclose(out, [[0.8, 0.2, 0.0]])


def test_majority_baseline_predicts_majority_class():
    y = np.array([0, 1, 1, 1, 2])
    base = Baseline("majority").fit(np.zeros((5, 2)), y, [0, 1, 2])
    proba = base.predict_proba_matrix(np.zeros((3, 2)))
    assert (proba.argmax(1) == 1).all()
    np.testing.assert_allclose(proba[0], [0.2, 0.6, 0.2])


def test_logistic_baseline_learns(digits_parts):
    from components.core.data.features import fit_preprocessor

    train, test = digits_parts["train"], digits_parts["test"]
    pre = fit_preprocessor(train, "label")
    classes = list(range(10))
    base = Baseline("logistic").fit(
        pre.transform(train), encode_labels(train["label"], classes), classes
    )
    pred = base.predict_proba_matrix(pre.transform(test)).argmax(1)
    assert (pred == test["label"].to_numpy()).mean() > 0.9
