"""Scoring a trained model: accuracy of a transformers ``Trainer``'s predictions on an encoded data set."""

from __future__ import annotations

import numpy as np


def accuracy(trainer, dataset) -> float:
    """The fraction of ``dataset`` (a :class:`~hora.experiments.tasks.EncodedDataset`) that ``trainer``'s model
    classifies right (argmax of the logits); NaN for an empty data set."""
    if len(dataset) == 0:
        return float("nan")
    out = trainer.predict(dataset)
    logits = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
    return float((np.asarray(logits).argmax(-1) == np.asarray(out.label_ids)).mean())
