"""Accuracy of a Trainer's predictions: argmax of the logits against the labels."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from hora.experiments.evaluation import accuracy


class _Predicting:
    """A stand-in for ``transformers.Trainer``: ``predict`` returns fixed logits and labels."""

    def __init__(self, predictions, label_ids):
        self.output = SimpleNamespace(predictions=predictions, label_ids=label_ids)

    def predict(self, dataset):
        return self.output


def test_accuracy_is_the_share_of_argmax_hits():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.1, 0.2]])
    labels = np.array([0, 1, 1, 1])
    assert accuracy(_Predicting(logits, labels), [0] * 4) == 0.75
    # models that also return hidden states give a tuple; the logits come first
    assert accuracy(_Predicting((logits, np.zeros((4, 8))), labels), [0] * 4) == 0.75


def test_accuracy_of_an_empty_set_is_nan_without_predicting():
    assert math.isnan(accuracy(_Predicting(None, None), []))
