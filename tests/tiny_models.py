"""Tiny random transformers models of every head layout HoRA supports, built from configs (offline)."""

from __future__ import annotations

import os

import peft
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    GPT2Config,
    GPT2LMHeadModel,
    GPTBigCodeConfig,
    GPTBigCodeForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MPNetConfig,
    MPNetForSequenceClassification,
    Phi3Config,
    Phi3ForCausalLM,
    RobertaConfig,
    RobertaForSequenceClassification,
    ViTConfig,
    ViTForImageClassification,
)

from hora import HoraConfig
from hora.tuner.config import PROJECTIONS

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

VOCAB = 64
ENCODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40, vocab_size=VOCAB)
DECODER = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40, vocab_size=VOCAB,
               pad_token_id=0, bos_token_id=1, eos_token_id=2)


def _build(kind: str) -> torch.nn.Module:
    if kind == "bert":
        return BertForSequenceClassification(BertConfig(**ENCODER))
    if kind == "roberta":
        return RobertaForSequenceClassification(RobertaConfig(**ENCODER, pad_token_id=1))
    if kind == "mpnet":
        return MPNetForSequenceClassification(MPNetConfig(**ENCODER))
    if kind == "vit":
        return ViTForImageClassification(ViTConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40,
            image_size=8, patch_size=4, num_channels=1, num_labels=3))
    if kind == "llama_gqa":
        return LlamaForCausalLM(LlamaConfig(**DECODER, num_key_value_heads=2))
    if kind == "llama_mqa_headdim":  # multi-query and head_dim != hidden / heads
        return LlamaForCausalLM(LlamaConfig(**DECODER, num_key_value_heads=1, head_dim=16))
    if kind == "phi3_fused":
        return Phi3ForCausalLM(Phi3Config(**DECODER, num_key_value_heads=2))
    if kind == "gpt2_conv1d":
        return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB))
    if kind == "bigcode_mqa_fused":
        return GPTBigCodeForCausalLM(GPTBigCodeConfig(n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB,
                                                      multi_query=True))
    raise KeyError(kind)


ARCHITECTURES = ["bert", "roberta", "mpnet", "vit", "llama_gqa", "llama_mqa_headdim", "phi3_fused",
                 "gpt2_conv1d", "bigcode_mqa_fused"]
SEQ_CLS = {"bert", "roberta", "mpnet"}
GENERATOR_FORMS = ["mlp", "joint"]  # the residual default and the joint form (both factors generated)


def make_model(kind: str, seed: int = 0) -> torch.nn.Module:
    """A tiny random model of the given kind, identical for the same seed, in eval mode."""
    torch.manual_seed(seed)
    return _build(kind).eval()


def make_inputs(kind: str, batch: int = 2, length: int = 6, seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    if kind == "vit":
        return {"pixel_values": torch.randn(batch, 1, 8, 8, generator=generator)}
    return {"input_ids": torch.randint(3, VOCAB, (batch, length), generator=generator)}


def task_type(kind: str) -> str | None:
    return "SEQ_CLS" if kind in SEQ_CLS else None


def logits(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def train_steps(model: torch.nn.Module, inputs: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                steps: int) -> None:
    """``steps`` optimiser steps on the mean squared logits (a loss any head has), then eval mode."""
    model.train()
    for _ in range(steps):
        model(**inputs).logits.pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def hora_model(kind: str, adapter_seed: int = 0, **overrides) -> peft.PeftModel:
    """The tiny model of ``kind`` with a random-initialised HoRA adapter (r=2) on all of q, k, v, o."""
    settings = dict(r=2, alpha=4, projections=list(PROJECTIONS), init_weights=False, task_type=task_type(kind))
    settings.update(overrides)
    torch.manual_seed(adapter_seed)
    return peft.get_peft_model(make_model(kind), HoraConfig(**settings))


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-5) -> bool:
    return torch.allclose(a, b, atol=tol, rtol=tol)
