"""TrainConfig: every setting checked where the config is built; roles decide resume, reuse and metrics."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest

from hora.experiments.errors import HoraError
from hora.experiments.training.train_config import EVALUATION, RECORDED, TRAJECTORY, TrainConfig, settings_of


@pytest.mark.parametrize(("options", "message"), [
    ({"method": "prefix"}, "unknown method"),
    ({"fraction": 0}, "fraction must be in"),
    ({"task": "glue"}, "unknown task"),
    ({"model": "not a hub id"}, "unknown model 'not a hub id'"),
    ({"model": "./no/such/folder"}, "model not found"),
    ({"dataset": "./no/such/data"}, "dataset not found"),
    ({"dataset": "x", "data": "y.csv"}, "give one of them"),
    ({"text_columns": "a,b,c"}, "one column or two"),
    ({"gradient_accumulation_steps": 0}, "--gradient-accumulation-steps must be >= 1"),
    ({"batch_size": 30, "gradient_accumulation_steps": 4}, "make it a multiple of 4"),
    ({"bf16": True, "fp16": True}, "choose one"),
    ({"task": "roten_tomatoes"}, "unknown task 'roten_tomatoes'; did you mean 'rotten_tomatoes'\\?"),
    ({"steps": 0}, "--steps must be >= 1"),
    ({"lr": -1.0}, "--lr must be > 0"),
    ({"r": 0}, "--r must be >= 1"),
    ({"targets": "q,z"}, "unknown projection"),
    ({"dropout": 1.0}, "--dropout must be in"),
    ({"warmup_ratio": -0.1}, "--warmup-ratio must be in"),
    ({"weight_decay": -1.0}, "--weight-decay must be >= 0"),
    ({"lr_scheduler": "step"}, "--lr-scheduler must be one of linear, cosine, constant"),
    ({"save_every": 0}, "--save-every must be >= 1"),
    ({"epochs": 0.0}, "--epochs must be > 0"),
    ({"data": "no/such/file.csv"}, "data file"),
])
def test_a_bad_setting_fails_when_the_config_is_built(options, message):
    with pytest.raises(HoraError, match=message):
        TrainConfig(**options)


@pytest.mark.parametrize(("options", "message"), [
    ({"objective": "rl"}, "--objective must be one of classify, sft"),
    ({"objective": "sft"}, "needs a decoder and the default model, minilm, is an encoder: use --model smollm2"),
    ({"objective": "sft", "model": "minilm"}, "needs a decoder, and 'minilm' is not one: use --model smollm2"),
    ({"objective": "sft", "model": "smollm2", "task": "mnist"}, "task 'mnist' is images; use --task rotten_tomatoes"),
])
def test_sft_needs_a_decoder_and_text(options, message):
    with pytest.raises(HoraError, match=message):
        TrainConfig(**options)
    assert TrainConfig(objective="sft", model="smollm2").objective == "sft"


def test_sft_refuses_a_folder_without_a_causal_lm_and_names_the_trl_extra(tiny_bert, tiny_llama, monkeypatch):
    with pytest.raises(HoraError, match=f"{tiny_bert} holds no causal LM"):
        TrainConfig(objective="sft", model=str(tiny_bert))
    assert TrainConfig(objective="sft", model=str(tiny_llama)).model == str(tiny_llama)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(HoraError, match=r"pip install 'hora\[trl\]'"):
        TrainConfig(objective="sft", model="smollm2")


def test_replace_checks_the_new_config_too():
    with pytest.raises(HoraError, match="fraction must be in"):
        dataclasses.replace(TrainConfig(), fraction=1.5)


def test_steps_are_not_checked_when_epochs_set_the_length():
    assert TrainConfig(steps=0, epochs=2.0).epochs == 2.0


def test_global_batch_must_split_evenly_across_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(HoraError, match="--batch-size 3 is the global batch, split across 2 processes"):
        TrainConfig(batch_size=3)
    assert TrainConfig(batch_size=4).batch_size == 4  # 2 examples per process


def test_every_field_declares_help_role_and_commands():
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["help"], f.name
        assert f.metadata["role"] in (TRAJECTORY, EVALUATION, None), f.name
        assert set(f.metadata["commands"]) <= {"train", "compare", "dynamics"}, f.name


def test_settings_by_role_resolve_the_learning_rate():
    cfg = TrainConfig(method="vera")
    trajectory = cfg.settings()
    assert trajectory["lr"] == 1e-2 and "max_eval_samples" not in trajectory and "output" not in trajectory
    assert "max_eval_samples" in cfg.settings(RECORDED) and "lr_scheduler" in trajectory


def test_differences_name_each_changed_setting_and_ignore_the_others():
    cfg = TrainConfig(method="lora", lr=1e-3)
    saved = dataclasses.asdict(TrainConfig(method="lora", output="elsewhere", progress=False))
    assert cfg.differences(saved) == []  # same trajectory (the default lr of lora is 1e-3)
    saved["r"] = 4
    assert cfg.differences(saved) == ["r: 4 -> 8"]
    assert cfg.differences({**saved, "r": 8, "max_eval_samples": 10}, RECORDED) == ["max_eval_samples: 10 -> None"]


def test_a_setting_saved_before_it_existed_takes_its_default():
    saved = dataclasses.asdict(TrainConfig())
    del saved["lr_scheduler"]
    assert settings_of(saved, (TRAJECTORY,))["lr_scheduler"] == "linear"
    assert TrainConfig().differences(saved) == []
    assert TrainConfig(lr_scheduler="cosine").differences(saved) == ["lr_scheduler: 'linear' -> 'cosine'"]


def test_fp16_needs_cuda_and_bf16_is_allowed_on_cpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: --fp16 is allowed")
    with pytest.raises(HoraError, match="--fp16 needs a CUDA GPU"):
        TrainConfig(fp16=True)
    assert TrainConfig(bf16=True).bf16


def test_metric_template_and_test_sets_are_checked_against_the_objective():
    with pytest.raises(HoraError, match="--metric exact does not score --objective classify"):
        TrainConfig(metric="exact")
    with pytest.raises(HoraError, match="--prompt-template makes prompts for --objective sft"):
        TrainConfig(prompt_template="llm-adapters")
    with pytest.raises(HoraError, match="--test-sets takes a comma list of NAME=SOURCE, got 'boolq'"):
        TrainConfig(test_sets="boolq")
    with pytest.raises(HoraError, match="names a test set twice"):
        TrainConfig(test_sets="a=x.json,a=y.json")
    assert TrainConfig().resolved_metric(regression=False) == "accuracy"
    assert TrainConfig().resolved_metric(regression=True) == "pearson"
    with pytest.raises(HoraError, match="metric 'matthews' does not fit a regression task"):
        TrainConfig(metric="matthews").resolved_metric(regression=True)
    assert EVALUATION == TrainConfig.__dataclass_fields__["test_sets"].metadata["role"]
    assert EVALUATION == TrainConfig.__dataclass_fields__["metric"].metadata["role"]


def test_a_setting_saved_under_its_older_name_is_read_back():
    """Runs saved with --text-column (field text_column) are resumed and reused as --text-columns."""
    assert settings_of({"text_column": "review"}, (TRAJECTORY,))["text_columns"] == "review"
    assert settings_of({}, (TRAJECTORY,))["text_columns"] == "text"
    assert not TrainConfig(text_columns="review").differences({"text_column": "review"})
