"""Base models: resolving ``--model`` against the task kind, reading a folder's kind and token limit, loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hora
from hora.experiments import assets, models
from hora.experiments.errors import AssetMissingError, HoraError, HoraWarning


def test_model_kind_mismatch_and_unknown_model():
    with pytest.raises(HoraError, match="model 'vit' is for image tasks"):
        models.resolve_model("vit", "text")
    with pytest.raises(HoraError, match="unknown model 'not/a/hub id'"):
        models.resolve_model("not/a/hub id", "text")


def test_missing_vit_names_the_pretrain_command():
    with pytest.raises(HoraError, match="hora pretrain-vit"):
        models.resolve_model("vit", "image")


def test_a_local_folder_is_resolved_by_the_kind_its_config_names(tiny_bert, tmp_path):
    assert models.model_kind(models.read_config(tiny_bert)) == "text"
    assert models.resolve_model(str(tiny_bert), "text") == (str(tiny_bert.resolve()), tiny_bert.resolve())
    vision = tmp_path / "vision"
    vision.mkdir()
    (vision / "config.json").write_text(json.dumps({"model_type": "vit"}))
    assert models.model_kind(models.read_config(vision)) == "image"
    with pytest.raises(HoraError, match="is for image tasks, but this task is text"):
        models.resolve_model(str(vision), "text")
    with pytest.raises(HoraError, match="cannot read"):
        models.read_config(tmp_path)
    with pytest.raises(HoraError, match="has no config.json"):
        models.resolve_model(str(tmp_path), "text")
    timm_config = {"architecture": "vit_base_patch16_224", "num_classes": 1000, "pretrained_cfg": {}}
    assert models.is_timm(timm_config) and models.model_kind(timm_config) == "image"


def test_max_length_is_capped_at_the_models_limit(tiny_bert):
    config = models.read_config(tiny_bert)
    assert models.model_max_tokens(config) == 64  # the tiny BERT's max_position_embeddings
    assert models.cap_max_length(16, config) == 16
    with pytest.warns(HoraWarning, match="above the model's limit of 64 tokens; using 64"):
        assert models.cap_max_length(100, config) == 64


def test_base_model_gets_a_fresh_head_named_by_head_module_names(tiny_bert):
    base = models.load_base_model(tiny_bert, "text", ["neg", "pos"])
    assert models.head_module_names(base) == ["classifier"]
    assert base.classifier.out_features == 2 and base.config.id2label == {0: "neg", 1: "pos"}
    with pytest.raises(HoraError, match="cannot find the classification head"):
        models.head_module_names(base.bert)


def test_offline_model_is_the_minilm_folder():
    try:
        minilm = assets.minilm_dir()
    except AssetMissingError:
        pytest.skip("MiniLM not installed (make assets)")
    folder = Path(hora.offline_model("minilm"))
    assert folder == minilm and (folder / "config.json").is_file()
    assert hora.offline_model() == str(folder)


def test_offline_model_names_the_choices_and_the_install_command(monkeypatch, tmp_path):
    with pytest.raises(HoraError, match="unknown offline model 'bert'; choose one of: minilm, smollm2, vit"):
        hora.offline_model("bert")
    monkeypatch.setenv("HORA_CACHE", str(tmp_path))
    with pytest.raises(HoraError, match="hora pretrain-vit"):
        hora.offline_model("vit")


def test_a_causal_lm_folder_is_told_from_an_encoder(tiny_llama, tiny_bert, tmp_path):
    assert models.is_causal_lm(models.read_config(tiny_llama))
    assert not models.is_causal_lm(models.read_config(tiny_bert))
    model = models.load_causal_lm(tiny_llama)  # its own LM head, the tokenizer's pad id
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.pad_token_id == 0
    assert models.DECODER_MODELS == ("smollm2",)
