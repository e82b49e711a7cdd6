"""Merge error on a quantized base: HoRA vs PEFT's LoRA merging the same update, on SmolLM2-135M (real weights).

For each bitsandbytes quantisation, a HoRA adapter (q,k,v,o, r=8) is trained 3 AdamW steps (lr 1e-3) on 4 Rotten
Tomatoes snippets of at most 24 tokens (causal-LM loss) over the quantized base, exported to LoRA (hora.export_lora,
exact) and loaded onto a fresh copy of the same quantized base. Reported: max |logit| change from merging
(merge_adapter) and from unmerging again, for HoRA and for LoRA, beside the adapter's own effect (adapted vs base
logits). Both requantise the same W + dW, so HoRA's errors should equal LoRA's.
Run: python benchmarks/quant_merge.py (minutes on a free CPU core).
"""

from __future__ import annotations

import tempfile
import warnings

import peft
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

import hora
from hora.experiments import assets
from hora.experiments.data import tasks
from hora.experiments.models import loaders
from hora.tuner.quantized import _restore_standard_4bit_layout

QUANTIZATIONS = {
    "nf4 + double quant, fp32 compute": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                             bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.float32),
    "int8 (LLM.int8)": dict(load_in_8bit=True),
}
STEPS, LR, TEXTS, MAX_TOKENS = 3, 1e-3, 4, 24


def quantized(folder, settings: dict):
    config = BitsAndBytesConfig(**settings)
    return AutoModelForCausalLM.from_pretrained(folder, quantization_config=config, dtype=torch.float32,
                                                local_files_only=True).eval()


def logits(model, batch) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch).logits.float()


def restore_standard_layout(model) -> None:
    """Undo bitsandbytes' CPU repacking of every 4-bit layer, which an inference forward does and PEFT's LoRA merge
    and unmerge would misread (HoRA's undo it themselves); a no-op on CUDA."""
    for module in model.modules():
        if type(module).__name__ == "Linear4bit":
            _restore_standard_4bit_layout(module)


def merge_errors(model, batch) -> tuple[torch.Tensor, float, float]:
    """(unmerged logits, max |merged - unmerged|, max |unmerged again - unmerged|)."""
    before = logits(model, batch)
    restore_standard_layout(model)
    model.merge_adapter()
    merged = logits(model, batch)
    restore_standard_layout(model)
    model.unmerge_adapter()
    return before, float((merged - before).abs().max()), float((logits(model, batch) - before).abs().max())


def main() -> None:
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    folder = assets.smollm2_dir()
    tokenizer = loaders.load_tokenizer(folder)
    texts = list(tasks.load_task("rotten_tomatoes").inputs[:TEXTS])
    batch = dict(tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"))
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    print("| quantisation | generator | adapter effect | HoRA merge | LoRA merge (same dW) | HoRA unmerge | "
          "LoRA unmerge |")
    print("|---|---|---|---|---|---|---|")
    for name, settings in QUANTIZATIONS.items():
        base_logits = logits(quantized(folder, settings), batch)
        for generator in ("mlp", "joint"):
            torch.manual_seed(0)
            base = peft.prepare_model_for_kbit_training(quantized(folder, settings))
            model = peft.get_peft_model(base, hora.HoraConfig(r=8, projections=["q", "k", "v", "o"],
                                                              generator=generator))
            optimizer = torch.optim.AdamW(hora.param_groups(model, LR))
            model.train()
            for _ in range(STEPS):
                model(**batch, labels=labels).loss.backward()
                optimizer.step()
                optimizer.zero_grad()
            model.eval()
            with tempfile.TemporaryDirectory() as lora_dir:
                hora.export_lora(model, lora_dir)
                lora = peft.PeftModel.from_pretrained(quantized(folder, settings), lora_dir).eval()
                before, merge, unmerge = merge_errors(model, batch)
                _, lora_merge, lora_unmerge = merge_errors(lora, batch)
            effect = float((before - base_logits).abs().max())
            print(f"| {name} | {generator} | {effect:.4f} | {merge:.4f} | {lora_merge:.4f} | {unmerge:.4f} | "
                  f"{lora_unmerge:.4f} |", flush=True)


if __name__ == "__main__":
    main()
