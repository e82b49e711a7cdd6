"""``--load-in-4bit`` / ``--load-in-8bit``: refused where they cannot work, QLoRA's bitsandbytes config, and a tiny
decoder (hidden 64: bitsandbytes' CPU 4-bit kernel needs in_features >= 64) trained through the harness on a
4-bit and an 8-bit base, its adapter reloaded onto the same quantized base and exported exactly."""

from __future__ import annotations

import warnings

import pytest
import torch

from hora.experiments.errors import HoraError
from hora.experiments.methods import build
from hora.experiments.methods.run_export import export_run
from hora.experiments.models import loaders, qlora
from hora.experiments.training import train as train_mod
from hora.experiments.training.train_config import TrainConfig

bnb = pytest.importorskip("bitsandbytes")


@pytest.mark.parametrize(("settings", "message"), [
    (dict(load_in_4bit=True), "offered for decoders, and the default model is not one"),
    (dict(load_in_8bit=True, model="minilm"), "'minilm' is not one"),
    (dict(load_in_4bit=True, model="vit", task="mnist"), "'vit' is not one"),
    (dict(load_in_4bit=True, load_in_8bit=True, model="smollm2"), "exclude each other"),
    (dict(load_in_4bit=True, model="smollm2", method="full"), "full fine-tuning cannot train quantized weights"),
])
def test_quantization_is_refused_where_it_cannot_work(settings, message):
    with pytest.raises(HoraError, match=message):
        TrainConfig(**settings)


def test_a_folder_without_a_causal_lm_is_refused(tiny_bert):
    with pytest.raises(HoraError, match="holds no causal LM"):
        TrainConfig(load_in_8bit=True, model=str(tiny_bert))


def test_the_4bit_config_is_qloras_and_keeps_the_new_head_unquantized():
    config = qlora.bnb_config("4bit", keep=("score",))
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == (torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    assert config.llm_int8_skip_modules == ["score"]
    assert qlora.bnb_config("8bit").load_in_8bit
    assert qlora.quantization_of({"load_in_8bit": True}) == "8bit"
    assert qlora.quantization_of({}) is None  # a run recorded before the options existed


def test_under_a_launcher_with_cuda_each_rank_loads_the_quantized_model_onto_its_own_gpu(monkeypatch):

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert qlora.device_map() is None  # no launcher: transformers' choice
    monkeypatch.setenv("LOCAL_RANK", "1")  # rank 1 of torchrun / accelerate launch on this node
    if not torch.cuda.is_available():
        assert qlora.device_map() is None  # no CUDA: the CPU, transformers' choice
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert qlora.device_map() == {"": 1}
    assert loaders._quantized("4bit")["device_map"] == {"": 1}
    assert "device_map" not in loaders._quantized(None)


@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_a_decoder_trains_on_a_quantized_base_and_its_adapter_reloads_and_exports(tiny_llama64, tiny_csv, tmp_path,
                                                                                   bits):
    cfg = TrainConfig(model=str(tiny_llama64), data=str(tiny_csv), text_columns="review", label_column="sentiment",
                      **{f"load_in_{bits}": True}, steps=8, batch_size=8, lr=1e-2, output=str(tmp_path / "run"),
                      progress=False, targets="q,k,v,o")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metrics = train_mod.train(cfg)
        assert metrics[f"load_in_{bits}"] is True and metrics["steps"] == 8
        model, _ = build.load_trained(tmp_path / "run")
        layers = [m for m in model.modules() if hasattr(m, "hora_plans")]
        quantized = bnb.nn.Linear4bit if bits == "4bit" else bnb.nn.Linear8bitLt
        assert len(layers) == 8 and all(isinstance(m.get_base_layer(), quantized) for m in layers)
        head = model.base_model.model.score
        assert not isinstance(getattr(head, "original_module", head), quantized)  # trained, so unquantized
        assert export_run(tmp_path / "run", tmp_path / "lora") < 1e-4
