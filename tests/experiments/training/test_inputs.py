"""A run's inputs (hora.experiments.training.inputs): the many-epochs warning for a small data file."""

from __future__ import annotations

import warnings

import pytest

from hora.experiments.errors import HoraWarning
from hora.experiments.training import inputs
from hora.experiments.training.train_config import TrainConfig


def test_many_epochs_warning_only_for_data_files_with_a_step_budget(tiny_csv):
    with pytest.warns(HoraWarning, match="28 training examples: 300 steps of batch 32 are about 343 epochs"):
        inputs.warn_if_many_epochs(TrainConfig(data=str(tiny_csv)), 28)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inputs.warn_if_many_epochs(TrainConfig(data=str(tiny_csv)), 480)  # exactly 20 epochs
        inputs.warn_if_many_epochs(TrainConfig(data=str(tiny_csv), epochs=300), 28)  # the user chose epochs
        inputs.warn_if_many_epochs(TrainConfig(), 28)  # a built-in task's subsample
