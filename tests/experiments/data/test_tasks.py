"""Built-in tasks, splits, data fractions and encoding for the Trainer."""

from __future__ import annotations

import numpy as np
import pytest

from hora.experiments.data import datasource, tasks
from hora.experiments.errors import HoraError
from hora.experiments.models import loaders


def _labels(n0: int = 300, n1: int = 200, n2: int = 50) -> np.ndarray:
    rng = np.random.default_rng(123)
    return rng.permutation(np.array([0] * n0 + [1] * n1 + [2] * n2))


def test_split_is_deterministic_disjoint_and_complete():
    y = _labels()
    a, b = tasks.split_indices(y, split_seed=0), tasks.split_indices(y, split_seed=0)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(a, part), getattr(b, part))
    sets = [set(a.train), set(a.val), set(a.test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert sets[0] | sets[1] | sets[2] == set(range(len(y)))
    other = tasks.split_indices(y, split_seed=1)
    assert set(other.test) != sets[2]


def test_split_is_stratified_with_the_documented_sizes():
    y = _labels()
    s = tasks.split_indices(y)
    for c, n in ((0, 300), (1, 200), (2, 50)):
        n_test = round(n * 0.2)
        n_val = round((n - n_test) * 0.1)
        assert (y[s.test] == c).sum() == n_test
        assert (y[s.val] == c).sum() == n_val
        assert (y[s.train] == c).sum() == n - n_test - n_val


def test_test_split_does_not_depend_on_fraction_or_seed():
    y = _labels()
    reference = tasks.split_indices(y).test
    for seed in (0, 1, 2):
        for fraction in (0.05, 0.5, 1.0):
            s = tasks.split_indices(y)
            sub = tasks.subsample(s.train, y, fraction, seed)
            np.testing.assert_array_equal(s.test, reference)
            assert not set(sub) & set(s.test) and not set(sub) & set(s.val)


def test_subsample_is_stratified_seeded_and_nested():
    y = _labels()
    train = tasks.split_indices(y).train
    small = tasks.subsample(train, y, 0.1, seed=3)
    large = tasks.subsample(train, y, 0.5, seed=3)
    np.testing.assert_array_equal(small, tasks.subsample(train, y, 0.1, seed=3))
    assert not np.array_equal(small, tasks.subsample(train, y, 0.1, seed=4))
    assert set(small) <= set(large) <= set(train)
    for c in (0, 1, 2):
        n_c = (y[train] == c).sum()
        assert (y[small] == c).sum() == int(np.floor(0.1 * n_c + 0.5))
    np.testing.assert_array_equal(tasks.subsample(train, y, 1.0, seed=0), np.sort(train))


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan")])
def test_fraction_outside_unit_interval_is_rejected(bad):
    with pytest.raises(HoraError, match="fraction must be in"):
        tasks.check_fraction(bad)


def test_fraction_that_empties_a_class_is_rejected():
    y = _labels(n2=5)
    train = tasks.split_indices(y).train
    with pytest.raises(HoraError, match="leaves class 'rare' with no training examples"):
        tasks.subsample(train, y, 0.01, seed=0, label_names=["a", "b", "rare"])


def test_unknown_task():
    with pytest.raises(HoraError, match="unknown task 'imagenet'"):
        tasks.load_task("imagenet")


def test_real_rotten_tomatoes_and_its_split():
    data = tasks.load_task("rotten_tomatoes")
    assert len(data) == 12808 and data.label_names == ["fresh", "rotten"]
    assert int((data.labels == 0).sum()) == 7403
    s = tasks.split_indices(data.labels)
    assert len(s.test) == 2562 and len(s.val) + len(s.train) == 12808 - 2562


def test_rotten_tomatoes_as_prompts_keeps_the_examples_and_so_the_split():
    data, prompts = tasks.load_task("rotten_tomatoes"), tasks.load_prompt_task("rotten_tomatoes")
    assert np.array_equal(prompts.labels, data.labels) and prompts.label_names == data.label_names
    assert prompts.inputs[0] == f"Review: {data.inputs[0]}\nSentiment:"
    assert {prompts.answers[i] for i in np.flatnonzero(data.labels == 0)} == {" positive"}  # fresh
    assert {prompts.answers[i] for i in np.flatnonzero(data.labels == 1)} == {" negative"}  # rotten
    with pytest.raises(HoraError, match="--objective sft generates text"):
        tasks.load_prompt_task("mnist")


def test_real_mnist5k():
    data = tasks.load_task("mnist")
    assert data.inputs.shape == (5000, 28, 28) and data.inputs.dtype == np.uint8
    assert np.bincount(data.labels).tolist() == [500] * 10
    x = tasks.image_tensor(data.inputs[:4])
    assert tuple(x.shape) == (4, 1, 28, 28) and float(x.min()) >= -1 and float(x.max()) <= 1


def test_encode_text_keeps_labels_and_truncates(tiny_csv, tiny_bert):
    data = datasource.load_splits(datasource.DataSource(dataset=str(tiny_csv), text_columns=("review",),
                                                        label_column="sentiment")).data
    tok = loaders.load_tokenizer(tiny_bert)
    ds = tasks.encode(data, np.arange(10), tok, max_length=4)
    assert len(ds) == 10
    assert all(len(item["input_ids"]) <= 4 for item in ds.items)
    assert [item["labels"] for item in ds.items] == data.labels[:10].tolist()


def test_eval_subset_is_random_fixed_and_covers_classes():
    labels = np.repeat([0, 1, 2, 3], 50)  # a dataset ordered by label
    idx = np.arange(200)
    sub = tasks.eval_subset(idx, 40, split_seed=0)
    assert len(sub) == 40 and (np.diff(sub) > 0).all() and set(sub) <= set(idx)
    assert set(labels[sub]) == {0, 1, 2, 3}  # a prefix would be class 0 only
    assert (tasks.eval_subset(idx, 40, split_seed=0) == sub).all()
    assert (tasks.eval_subset(idx, None) == idx).all() and (tasks.eval_subset(idx, 500) == idx).all()
