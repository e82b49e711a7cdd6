"""The scores a benchmark reports, from a model's predictions and the true labels.

Each metric maps (predictions, labels) -> one float, higher is better:

    accuracy   mean of [prediction == label]
    f1         F1 of class 1 (GLUE's MRPC and QQP report it beside accuracy): 2 TP / (2 TP + FP + FN),
               scikit-learn's f1_score (0 when there is no positive)
    matthews   Matthews correlation coefficient (GLUE's CoLA), multiclass form:
               (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) for two classes, scikit-learn's
               matthews_corrcoef (0 when a factor of the denominator is 0)
    pearson    Pearson correlation of predicted and true scores (GLUE's STS-B), scipy.stats.pearsonr
    spearman   Spearman rank correlation, scipy.stats.spearmanr

Classification metrics take class indices; ``pearson`` and ``spearman`` take real-valued predictions (a
regression head's output). :func:`predictions` turns a head's logits (N x classes, or N x 1 for a regression)
into what the metric takes. A correlation of constant predictions is undefined: it is reported as 0, as
scikit-learn does for the Matthews coefficient.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hora.experiments.errors import HoraError


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.asarray(predictions) == np.asarray(labels)))


def f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(np.asarray(labels), np.asarray(predictions), labels=[1], average="macro", zero_division=0))


def matthews(predictions: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(np.asarray(labels), np.asarray(predictions)))


def _correlation(kind: str) -> Callable[[np.ndarray, np.ndarray], float]:
    def correlate(predictions: np.ndarray, labels: np.ndarray) -> float:
        from scipy import stats

        x, y = np.asarray(predictions, dtype=np.float64), np.asarray(labels, dtype=np.float64)
        if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
            return 0.0
        result = stats.pearsonr(x, y) if kind == "pearson" else stats.spearmanr(x, y)
        return float(result.statistic)

    correlate.__name__ = kind
    return correlate


pearson = _correlation("pearson")
spearman = _correlation("spearman")

METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy, "f1": f1, "matthews": matthews, "pearson": pearson, "spearman": spearman,
}
REGRESSION_METRICS = ("pearson", "spearman")


def check_metric(name: str, regression: bool | None = None) -> str:
    """``name`` if it is a metric (and, when ``regression`` is known, one that fits the task), else a one-line
    error naming the choices."""
    if name not in METRICS:
        raise HoraError(f"unknown metric '{name}': choose one of {', '.join(METRICS)}")
    if regression is not None and regression != (name in REGRESSION_METRICS):
        kind = "a regression" if regression else "a classification"
        fits = REGRESSION_METRICS if regression else tuple(m for m in METRICS if m not in REGRESSION_METRICS)
        raise HoraError(f"metric '{name}' does not fit {kind} task: use {' or '.join(fits)}")
    return name


def predictions(logits: np.ndarray, regression: bool) -> np.ndarray:
    """What a metric takes from a head's output: the argmax class (N x classes logits), or the predicted
    value of a regression head (N x 1 or N)."""
    logits = np.asarray(logits)
    if regression:
        return logits.reshape(len(logits), -1)[:, 0].astype(np.float64)
    return logits.argmax(-1)


def score(name: str, predicted: np.ndarray, labels: np.ndarray) -> float:
    """The metric ``name`` of ``predicted`` against ``labels``; NaN for no examples."""
    if len(np.asarray(labels)) == 0:
        return float("nan")
    return METRICS[check_metric(name)](predicted, labels)
