"""Base models: resolving ``--model`` against the task kind, reading a folder's kind and token limit, loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import hora
from hora.experiments import assets
from hora.experiments.errors import AssetMissingError, HoraError, HoraWarning
from hora.experiments.models import catalogue, loaders


def test_model_kind_mismatch_and_unknown_model():
    with pytest.raises(HoraError, match="model 'vit' is for image tasks"):
        catalogue.resolve_model("vit", "text")
    with pytest.raises(HoraError, match="unknown model 'not/a/hub id'"):
        catalogue.resolve_model("not/a/hub id", "text")


def test_missing_vit_names_the_pretrain_command():
    with pytest.raises(HoraError, match="hora pretrain-vit"):
        catalogue.resolve_model("vit", "image")


def test_a_local_folder_is_resolved_by_the_kind_its_config_names(tiny_bert, tmp_path):
    assert catalogue.model_kind(catalogue.read_config(tiny_bert)) == "text"
    assert catalogue.resolve_model(str(tiny_bert), "text") == (str(tiny_bert.resolve()), tiny_bert.resolve())
    vision = tmp_path / "vision"
    vision.mkdir()
    (vision / "config.json").write_text(json.dumps({"model_type": "vit"}))
    assert catalogue.model_kind(catalogue.read_config(vision)) == "image"
    with pytest.raises(HoraError, match="is for image tasks, but this task is text"):
        catalogue.resolve_model(str(vision), "text")
    with pytest.raises(HoraError, match="cannot read"):
        catalogue.read_config(tmp_path)
    with pytest.raises(HoraError, match="has no config.json"):
        catalogue.resolve_model(str(tmp_path), "text")
    timm_config = {"architecture": "vit_base_patch16_224", "num_classes": 1000, "pretrained_cfg": {}}
    assert catalogue.is_timm(timm_config) and catalogue.model_kind(timm_config) == "image"


def test_max_length_is_capped_at_the_models_limit(tiny_bert):
    config = catalogue.read_config(tiny_bert)
    assert catalogue.model_max_tokens(config) == 64  # the tiny BERT's max_position_embeddings
    assert catalogue.cap_max_length(16, config) == 16
    with pytest.warns(HoraWarning, match="above the model's limit of 64 tokens; using 64"):
        assert catalogue.cap_max_length(100, config) == 64


def test_base_model_gets_a_fresh_head_named_by_head_module_names(tiny_bert):
    base = loaders.load_base_model(tiny_bert, "text", ["neg", "pos"])
    assert loaders.head_module_names(base) == ["classifier"]
    assert base.classifier.out_features == 2 and base.config.id2label == {0: "neg", 1: "pos"}
    with pytest.raises(HoraError, match="cannot find the classification head"):
        loaders.head_module_names(base.bert)


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
    assert catalogue.is_causal_lm(catalogue.read_config(tiny_llama))
    assert not catalogue.is_causal_lm(catalogue.read_config(tiny_bert))
    model = loaders.load_causal_lm(tiny_llama)  # its own LM head, the tokenizer's pad id
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.pad_token_id == 0
    assert catalogue.DECODER_MODELS == ("smollm2",)


def test_a_hub_id_resolves_and_loads_from_the_offline_cache(hub_cache, tiny_bert):
    name, ref = catalogue.resolve_model("hora-test/tiny-bert", "text")
    assert name == ref == "hora-test/tiny-bert"
    assert catalogue.read_config(ref) == json.loads((tiny_bert / "config.json").read_text())
    assert catalogue.resolve_model("hora-test/tiny-bert", "text", revision="v1")[1] == "hora-test/tiny-bert"
    base = loaders.load_base_model(ref, "text", ["neg", "pos"])
    assert type(base).__name__ == "BertForSequenceClassification" and base.classifier.out_features == 2
    assert loaders.load_tokenizer(ref).sep_token == "[SEP]"
    with pytest.raises(HoraError, match="model hora-test/tiny-vit is for image tasks, but this task is text"):
        catalogue.resolve_model("hora-test/tiny-vit", "text")


def test_an_uncached_hub_id_offline_is_one_line_that_says_how_to_fetch_it(hub_cache):
    with pytest.raises(HoraError) as error:
        catalogue.resolve_model("hora-test/absent", "text")
    assert str(error.value) == (f"model 'hora-test/absent' is not in the Hugging Face cache ({hub_cache}) and "
                                "HF_HUB_OFFLINE=1 is set: fetch it once with network (hf download hora-test/absent), "
                                "or pass a local folder")
    with pytest.raises(HoraError, match="at revision 'v2' is not in the Hugging Face cache .*--revision v2"):
        catalogue.resolve_model("hora-test/tiny-bert", "text", revision="v2")
    with pytest.raises(HoraError, match="^did you mean 'minilm'\\? model 'minilmm' is not in the Hugging Face"):
        catalogue.resolve_model("minilmm", "text")  # a misspelt built-in name reads as a Hub ID: suggest the name


def test_a_regression_head_has_one_output_and_the_regression_problem_type(tiny_bert):
    base = loaders.load_base_model(tiny_bert, "text", [], regression=True)
    assert base.classifier.out_features == 1 and base.config.problem_type == "regression"


def test_an_image_transform_is_the_models_own_processor(tiny_vit):
    from PIL import Image

    transform = loaders.load_image_transform(tiny_vit)
    pixels = transform(Image.new("L", (30, 20), color=255))  # grayscale in, RGB 8x8 out, normalised
    assert tuple(pixels.shape) == (3, 8, 8) and float(pixels.min()) == 1.0
    with pytest.raises(HoraError, match="has no image processor"):
        loaders.load_image_transform(tiny_vit.parent)


def _save_tiny_timm_vit(timm, folder: Path) -> Path:
    """timm's own VisionTransformer at tests/timm_like's size, saved as timm saves to the Hub: config.json with
    ``architecture``, ``model_args`` and ``pretrained_cfg``, and model.safetensors with timm's state dict."""
    import torch
    from safetensors.torch import save_file

    from timm_like import real_timm_vit  # (tests/, put on the path by the test)

    torch.manual_seed(0)
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in real_timm_vit(timm).state_dict().items()}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({
        "architecture": "vit_tiny_patch16_224", "num_classes": 3, "num_features": 32, "global_pool": "token",
        "model_args": {"img_size": 8, "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 4},
        "pretrained_cfg": {"input_size": [3, 8, 8], "mean": [0.5] * 3, "std": [0.5] * 3, "num_classes": 3,
                           "classifier": "head", "first_conv": "patch_embed.proj"}}))
    return folder


def test_a_timm_model_by_hub_id_loads_through_transformers_and_is_adapted_by_timm_head_discovery(
        hub_cache, tmp_path, monkeypatch):
    """transformers' TimmWrapper (what AutoModelForImageClassification gives for a timm repo) insists on
    torchvision, which has no wheel for the CPU torch pinned here: its backend check is lifted for this test, and
    timm (installed without torchvision into .cache/timm) is imported with tests/timm_like's stand-in."""
    import torch
    from conftest import add_to_hub_cache
    from transformers.models.timm_wrapper import modeling_timm_wrapper

    monkeypatch.syspath_prepend(str(Path(__file__).parents[2]))  # tests/timm_like.py
    from hora.experiments.methods import build
    from timm_like import import_timm

    timm, _ = import_timm()
    if timm is None:
        pytest.skip("timm is not installed (make install puts it in .cache/timm)")
    monkeypatch.setattr(modeling_timm_wrapper, "timm", timm, raising=False)
    monkeypatch.setattr(modeling_timm_wrapper, "requires_backends", lambda *args, **kwargs: None)
    add_to_hub_cache(hub_cache, "timm/tiny-vit-test", _save_tiny_timm_vit(timm, tmp_path / "timm-vit"))

    assert catalogue.timm_hub_id("vit_base_patch16_224.augreg_in21k") == "timm/vit_base_patch16_224.augreg_in21k"
    name, ref = catalogue.resolve_model("timm/tiny-vit-test", "image")
    base = loaders.load_base_model(ref, "image", ["a", "b"])
    heads = loaders.head_module_names(base)
    assert type(base).__name__ == "TimmWrapperForImageClassification" and heads == ["timm_model.head"]
    model, info = build.build_adapted_model("hora", base, kind="image", head_modules=heads)
    assert info["targets"] == ["timm_model.blocks.0.attn.qkv", "timm_model.blocks.1.attn.qkv"]  # fused q|k|v
    out = model(pixel_values=torch.randn(2, 3, 8, 8), labels=torch.tensor([0, 1]))
    assert tuple(out.logits.shape) == (2, 2) and torch.isfinite(out.loss)


def test_a_misspelt_built_in_name_is_refused_before_any_network(monkeypatch):
    import huggingface_hub

    from hora.experiments.training.train_config import TrainConfig

    def no_network(*args, **kwargs):
        raise AssertionError("no request may be made for a misspelt built-in name")

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", no_network)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    with pytest.raises(HoraError, match="^unknown model 'minlm': did you mean 'minilm'\\? --model takes a built-in"):
        TrainConfig(model="minlm")
    catalogue.check_not_misspelt("roberta-base")  # far from every built-in name: a Hub ID, left to the Hub


def test_an_uncached_hub_id_online_is_asked_once_with_a_short_timeout(hub_cache, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    timeouts = []

    def unreachable(url, timeout=None, **kwargs):
        timeouts.append(timeout)
        raise ConnectionError("[Errno -2] Name or service not known")

    def download(*args, **kwargs):
        raise AssertionError("no download (and no retries) after the Hub could not be reached")

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", unreachable)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    with pytest.raises(HoraError) as error:
        catalogue.resolve_model("hora-test/tiny-bertt", "text")
    assert timeouts == [catalogue.HUB_PROBE_SECONDS]
    assert str(error.value) == (f"did you mean 'hora-test/tiny-bert' or 'hora-test/tiny-vit'? model "
                                f"'hora-test/tiny-bertt' is not in the Hugging Face cache ({hub_cache}) and the Hub "
                                "could not be reached: fetch it where there is network (hf download "
                                "hora-test/tiny-bertt) or point --model at a local model folder")


def test_an_uncached_model_without_hf_hub_offline_exits_2_within_15_seconds(tmp_path):
    """Run as a user would, HF_HUB_OFFLINE unset: without internet the Hub cannot be reached, with it the model
    does not exist; either way one line and exit 2, fast."""
    import os
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_HUB_CACHE"] = str(tmp_path / "empty-cache")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "hora", "train", "--model", "hora-test/no-such-model-34",
                             "--steps", "1", "--output", str(tmp_path / "run")],
                            capture_output=True, text=True, env=env, timeout=60)
    assert time.perf_counter() - start < 15
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hora: error: ") and "hora-test/no-such-model-34" in lines[0]
