"""One data path: every source (built-in task, CSV/JSONL file, parquet folder, save_to_disk folder) becomes the same
Splits; the fixed split rule fills in missing splits; pairs, regression targets, images and prompts are columns."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_images, write_pairs

from hora.experiments.data import datasource, tasks
from hora.experiments.data.datasource import DataSource
from hora.experiments.errors import HoraError
from hora.experiments.models import loaders


def _disjoint(splits) -> None:
    sets = [set(splits.train.tolist()), set(splits.val.tolist()), set(splits.test.tolist())]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])


def test_a_csv_file_is_split_by_the_rule_exactly_as_the_labels_alone_split_it(tiny_csv):
    splits = datasource.load_splits(DataSource(dataset=str(tiny_csv), text_columns=("review",),
                                               label_column="sentiment"))
    data = splits.data
    assert data.kind == "text" and len(data) == 120 and data.label_names == ["neg", "pos"]
    assert data.label_names[data.labels[0]] == "pos" and data.pairs is None and not data.regression
    rule = tasks.split_indices(data.labels, 0)  # a one-table source: 72 / 8 / 20 as before this module existed
    for got, expected in zip((splits.train, splits.val, splits.test), (rule.train, rule.val, rule.test),
                             strict=True):
        assert np.array_equal(got, expected)
    assert splits.meta["given"] == ["train"]


def test_a_jsonl_file_and_its_errors(tiny_jsonl, tiny_csv, tmp_path):
    splits = datasource.load_splits(DataSource(dataset=str(tiny_jsonl), text_columns=("review",),
                                               label_column="sentiment"))
    assert len(splits.data) == 120 and splits.data.num_labels == 2
    with pytest.raises(HoraError, match="label column 'nope' not in reviews.csv; columns are: review, sentiment"):
        datasource.load_splits(DataSource(dataset=str(tiny_csv), text_columns=("review",), label_column="nope"))
    other = tmp_path / "data.xyz"
    other.write_text("x")
    with pytest.raises(HoraError, match="unsupported data file type '.xyz'"):
        datasource.load_splits(DataSource(dataset=str(other)))
    single = tmp_path / "one.csv"
    single.write_text("text,label\na,x\nb,x\n")
    with pytest.raises(HoraError, match="single class"):
        datasource.load_splits(DataSource(dataset=str(single)))


def test_a_parquet_folder_keeps_its_test_split_and_takes_validation_from_train(tmp_path):
    folder = write_pairs(tmp_path / "pairs")
    splits = datasource.load_splits(DataSource(dataset=str(folder), text_columns=("sentence1", "sentence2")))
    data = splits.data
    assert data.label_names == ["entailment", "not_entailment"]  # from the ClassLabel feature, in its order
    assert splits.meta["given"] == ["test", "train"]
    assert np.array_equal(splits.test, np.arange(72, 90))  # the published test split, untouched
    assert len(splits.val) == 5 + 2  # 10 % of train's 48 entailment and 24 not_entailment examples
    assert set(splits.train) | set(splits.val) == set(range(72)) and len(splits.train) + len(splits.val) == 72
    _disjoint(splits)
    assert data.inputs[0] and data.pairs[0] and data.inputs[0] != data.pairs[0]


def test_pairs_are_tokenised_as_pairs(tmp_path, tiny_bert):
    splits = datasource.load_splits(DataSource(dataset=str(write_pairs(tmp_path / "pairs")),
                                               text_columns=("sentence1", "sentence2")))
    tok = loaders.load_tokenizer(tiny_bert)
    item = tasks.encode(splits.data, np.array([0]), tok, max_length=64).items[0]
    ids, types = item["input_ids"], item["token_type_ids"]
    first, second = splits.data.inputs[0].split(), splits.data.pairs[0].split()
    sep = tok.sep_token_id
    # [CLS] first [SEP] second [SEP], the second segment marked by token type 1
    assert ids[0] == tok.cls_token_id and ids.count(sep) == 2 and ids.index(sep) == len(first) + 1
    assert types == [0] * (len(first) + 2) + [1] * (len(second) + 1)
    assert tok.decode(ids[len(first) + 2:-1]) == splits.data.pairs[0]


def test_a_float_label_is_a_regression_split_without_strata(tmp_path):
    splits = datasource.load_splits(DataSource(dataset=str(write_pairs(tmp_path / "sts", regression=True)),
                                               text_columns=("sentence1", "sentence2")))
    data = splits.data
    assert data.regression and data.num_labels == 1 and data.label_names == []
    assert data.labels.dtype == np.float32 and 0 <= data.labels.min() and data.labels.max() <= 5
    assert set(data.strata.tolist()) == {0}
    train, val, test = datasource.run_indices(splits, 0.5, seed=0)
    assert len(train) == 33 and len(test) == 18  # half of the 65 train examples left after validation (7)


def test_a_save_to_disk_image_dataset_keeps_all_three_splits_and_reads_images_lazily(tmp_path, tiny_vit):
    source = DataSource(dataset=str(write_images(tmp_path / "colours")), image_column="img", label_column="colour")
    assert source.kind == "image"
    splits = datasource.load_splits(source)
    data = splits.data
    assert data.kind == "image" and data.label_names == ["red", "green", "blue"]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (36, 12, 12)
    ds = tasks.encode(data, splits.test, image_transform=loaders.load_image_transform(tiny_vit))
    item = ds[4]  # the model's processor: resized to 8x8, 3 channels, normalised to [-1, 1]
    assert tuple(item["pixel_values"].shape) == (3, 8, 8) and item["labels"].item() == data.labels[splits.test[4]]
    channel = int(data.labels[splits.test[4]])
    assert float(item["pixel_values"][channel].mean()) > 0.5 and float(item["pixel_values"][channel - 1].max()) == -1


def test_an_unlabelled_split_is_refused_with_the_option_that_chooses_another(tmp_path):
    import datasets

    names = datasets.ClassLabel(names=["a", "b"])
    features = datasets.Features({"text": datasets.Value("string"), "label": names})
    table = datasets.Dataset.from_dict({"text": [f"t{i}" for i in range(20)], "label": [i % 2 for i in range(20)]},
                                       features=features)
    unlabelled = datasets.Dataset.from_dict({"text": ["x", "y"], "label": [-1, -1]}, features=features)
    folder = tmp_path / "glue-like"
    datasets.DatasetDict({"train": table, "validation": table.select(range(6)), "test": unlabelled}).save_to_disk(
        str(folder))
    with pytest.raises(HoraError, match="split 'test' of glue-like has no labels .* --test-split"):
        datasource.load_splits(DataSource(dataset=str(folder)))
    splits = datasource.load_splits(DataSource(dataset=str(folder), test_split="validation", validation_split="none"))
    assert len(splits.test) == 6 and len(splits.train) + len(splits.val) == 20 and len(splits.val) == 2
    with pytest.raises(HoraError, match="has no split 'training'; its splits are: train, validation, test"):
        datasource.load_splits(DataSource(dataset=str(folder), train_split="training"))


def test_prompts_and_answers_from_a_parquet_file(tmp_path):
    import datasets

    answers = [" yes", " no", " maybe"] * 10
    path = tmp_path / "qa.parquet"
    datasets.Dataset.from_dict({"question": [f"Q{i}?" for i in range(30)], "response": answers}).to_parquet(path)
    splits = datasource.load_splits(DataSource(dataset=str(path), objective="sft", prompt_column="question",
                                               answer_column="response"))
    assert isinstance(splits.data, tasks.PromptData) and splits.data.answers[:3] == [" yes", " no", " maybe"]
    assert splits.data.label_names == ["maybe", "no", "yes"]  # repeated answers stratify the split
    _disjoint(splits)


def test_the_source_of_a_config_and_its_name(tiny_csv):
    from hora.experiments.training.train_config import TrainConfig

    source = TrainConfig(data=str(tiny_csv), text_columns="review, other", label_column="sentiment").data_source()
    assert source.dataset == str(tiny_csv) and source.text_columns == ("review", "other")
    assert source.name == "reviews" and source.kind == "text"
    assert TrainConfig(task="mnist").data_source().kind == "image"
    assert DataSource(dataset="nyu-mll/glue", config="sst2").name == "nyu-mll/glue:sst2"


def test_an_uncached_hub_dataset_offline_is_one_line(monkeypatch, tmp_path):
    import datasets
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    message = "could not load dataset 'hora-test/never-seen'.*not in the datasets cache"
    with pytest.raises(HoraError, match=message) as e:
        datasource.load_splits(DataSource(dataset="hora-test/never-seen"))
    assert "\n" not in str(e.value)


def test_a_template_makes_the_prompts_and_test_sets_leave_train_unsplit_for_test(tmp_path):
    import json

    from benchmark_fixtures import write_commonsense

    from hora.experiments.data import commonsense

    root = write_commonsense(tmp_path)
    source = DataSource(dataset=str(root / "ft-training_set" / "commonsense_170k.json"), objective="sft",
                        prompt_column="instruction", answer_column="output", prompt_template="llm-adapters",
                        validation_split="none", test_split="none", test_from_train=False)
    splits = datasource.load_splits(source)
    records = json.loads((root / "ft-training_set" / "commonsense_170k.json").read_text())
    assert splits.data.inputs[0] == commonsense.prompt(records[0]["instruction"])
    assert splits.data.answers[0] == records[0]["output"]
    assert len(splits.test) == 0 and len(splits.train) + len(splits.val) == len(records)
    boolq = datasource.load_test_set(source, str(root / "dataset" / "boolq" / "test.json"))
    tests = json.loads((root / "dataset" / "boolq" / "test.json").read_text())
    assert boolq.answers == [r["output"] for r in tests]
    assert [commonsense.gold_answer(a) for a in boolq.answers] == [r["answer"] for r in tests]  # as LLM-Adapters'


def test_a_folder_of_split_lists_is_read_by_its_split_names(tmp_path):
    from benchmark_fixtures import VTAB_SPLITS, write_vtab

    folder = write_vtab(tmp_path, tasks=("eurosat",)) / "eurosat"
    splits = datasource.load_splits(DataSource(dataset=str(folder), image_column="image", train_split="train800",
                                               validation_split="val200", test_split="test"))
    assert (len(splits.train), len(splits.val), len(splits.test)) == tuple(VTAB_SPLITS.values())
    assert splits.data.kind == "image" and splits.data.label_names == ["0", "1", "2"]


def test_rows_with_an_empty_text_or_label_are_dropped_counted_and_said(tiny_csv, tmp_path):
    import pandas as pd

    from hora.experiments.errors import HoraWarning

    rows = pd.read_csv(tiny_csv)
    holes = pd.DataFrame({"review": ["", "   ", "a fine film", None], "sentiment": ["pos", "neg", None, None]})
    path = tmp_path / "holes.csv"
    pd.concat([rows, holes]).to_csv(path, index=False)
    with pytest.warns(HoraWarning, match=r"^3 rows with an empty text and 1 row with an empty label were dropped "
                                         r"from holes \(of 124 rows\)$"):
        data = datasource.load_splits(DataSource(dataset=str(path), text_columns=("review",),
                                                 label_column="sentiment")).data
    assert len(data) == 120 and data.dropped == {"empty text": 3, "empty label": 1}
    assert all(text.strip() and text not in ("nan", "None") for text in data.inputs)
    assert data.label_names == ["neg", "pos"]
    path.write_text("review,sentiment\n,pos\n ,neg\n")
    with pytest.raises(HoraError, match="^every row of holes was dropped: 2 rows with an empty text; check"):
        datasource.load_splits(DataSource(dataset=str(path), text_columns=("review",), label_column="sentiment"))


def test_a_regression_file_with_missing_texts_and_targets_keeps_its_float_targets(tmp_path):
    import pandas as pd

    from hora.experiments.errors import HoraWarning

    scores = [round(0.37 * i % 5, 2) + 0.01 for i in range(40)]
    table = pd.DataFrame({"term": [f"word {i}" for i in range(40)] + [None, "x"], "score": scores + [1.5, None]})
    path = tmp_path / "scores.parquet"
    table.to_parquet(path)
    with pytest.warns(HoraWarning, match=r"^1 row with an empty text and 1 row with an empty label were dropped "
                                         r"from scores \(of 42 rows\)$"):
        data = datasource.load_splits(DataSource(dataset=str(path), text_columns=("term",),
                                                 label_column="score")).data
    assert data.regression and len(data) == 40 and np.isfinite(data.labels).all()
