"""The benchmark metrics agree with scikit-learn (accuracy, F1, Matthews) and with numpy's correlation
(Pearson, and Spearman as Pearson of ranks) on random and edge-case inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from hora.experiments.errors import HoraError
from hora.experiments.scoring import metrics


@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("seed", range(4))
def test_classification_metrics_match_scikit_learn(n_classes, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, 200)
    noisy = np.where(rng.random(200) < 0.6, labels, rng.integers(0, n_classes, 200))
    assert metrics.accuracy(noisy, labels) == pytest.approx(skm.accuracy_score(labels, noisy))
    assert metrics.matthews(noisy, labels) == pytest.approx(skm.matthews_corrcoef(labels, noisy), abs=1e-12)
    if n_classes == 2:
        assert metrics.f1(noisy, labels) == pytest.approx(skm.f1_score(labels, noisy), abs=1e-12)


def test_matthews_edge_cases_match_scikit_learn():
    cases = [([1, 1, 1, 1], [1, 0, 1, 0]),  # constant predictions: 0
             ([0, 1, 0, 1], [0, 1, 0, 1]),  # perfect: 1
             ([1, 0, 1, 0], [0, 1, 0, 1]),  # inverted: -1
             ([0, 0, 0], [0, 0, 0])]        # one class only: 0
    for pred, true in cases:
        assert metrics.matthews(np.array(pred), np.array(true)) == pytest.approx(
            skm.matthews_corrcoef(true, pred), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_correlations_match_numpy(seed):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0, 5, 300)  # STS-B scores lie in [0, 5]
    predicted = truth + rng.normal(0, 1.5, 300)
    assert metrics.pearson(predicted, truth) == pytest.approx(np.corrcoef(predicted, truth)[0, 1], abs=1e-12)
    ranks = np.corrcoef(stats.rankdata(predicted), stats.rankdata(truth))[0, 1]
    assert metrics.spearman(predicted, truth) == pytest.approx(ranks, abs=1e-12)
    assert metrics.spearman(np.exp(truth), truth) == pytest.approx(1.0)  # monotone: rank correlation 1


def test_constant_predictions_correlate_zero():
    assert metrics.pearson(np.ones(5), np.arange(5.0)) == 0.0
    assert metrics.spearman(np.arange(5.0), np.full(5, 2.0)) == 0.0


def test_predictions_from_logits():
    logits = np.array([[0.1, 2.0, -1.0], [3.0, 0.0, 0.5]])
    assert metrics.predictions(logits, regression=False).tolist() == [1, 0]
    assert metrics.predictions(np.array([[0.5], [4.25]]), regression=True).tolist() == [0.5, 4.25]


def test_score_and_checks():
    assert metrics.score("matthews", np.array([0, 1]), np.array([0, 1])) == pytest.approx(1.0)
    assert np.isnan(metrics.score("accuracy", np.array([]), np.array([])))
    with pytest.raises(HoraError, match="unknown metric 'mcc'"):
        metrics.score("mcc", np.array([0]), np.array([0]))
    with pytest.raises(HoraError, match="does not fit a regression task: use pearson or spearman"):
        metrics.check_metric("accuracy", regression=True)
    with pytest.raises(HoraError, match="does not fit a classification task"):
        metrics.check_metric("pearson", regression=False)
    assert metrics.check_metric("pearson", regression=True) == "pearson"
