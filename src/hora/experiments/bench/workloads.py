"""The benchmark workloads: a model shape (random init, fixed seed), its inputs and its loss.

Nothing is measured here; :mod:`~hora.experiments.bench.suite` measures what these build. The shapes are
real models' (MiniLM-L6, Llama-3.2-1B, ViT-B/16), each with a tiny version for smoke tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class Workload:
    """A model shape, its inputs and its loss. ``build`` returns a fresh base model (same seed each call)."""

    name: str
    build: Callable[[], nn.Module]
    inputs: Callable[[torch.device], dict[str, torch.Tensor]]
    loss: Callable[[Any], torch.Tensor]
    description: str
    dtype: torch.dtype = torch.float32


def _mean_square(output: Any) -> torch.Tensor:
    return output[0].float().pow(2).mean()


def _output_loss(output: Any) -> torch.Tensor:
    return output.loss


def bert_workload(tiny: bool = False, layers: int | None = None) -> Workload:
    """MiniLM-L6 shape (BertModel: 6 layers, hidden 384, 12 heads, intermediate 1536), batch 32 x 64."""
    from transformers import BertConfig, BertModel

    if tiny:
        shape = dict(hidden_size=64, num_hidden_layers=layers or 2, num_attention_heads=4, intermediate_size=128,
                     vocab_size=128)
        batch, length = 4, 16
    else:
        shape = dict(hidden_size=384, num_hidden_layers=layers or 6, num_attention_heads=12, intermediate_size=1536,
                     vocab_size=30522)
        batch, length = 32, 64
    config = BertConfig(**shape)

    def build() -> nn.Module:
        torch.manual_seed(0)
        return BertModel(config)

    def inputs(device: torch.device) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(1)
        ids = torch.randint(0, config.vocab_size, (batch, length), generator=generator)
        return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids, device=device)}

    name = "tiny_bert" if tiny else "minilm_l6"
    return Workload(name, build, inputs, _mean_square,
                    f"BertModel {shape['num_hidden_layers']}x{shape['hidden_size']}, "
                    f"{shape['num_attention_heads']} heads, batch {batch}x{length}")


def llama_workload(tiny: bool = False, dtype: torch.dtype = torch.bfloat16) -> Workload:
    """Llama-3.2-1B shape (random init): hidden 2048, 16 layers, 32 heads, 8 kv heads, batch 8 x 1024."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if tiny:
        shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=128, vocab_size=256)
        batch, length = 2, 32
    else:
        shape = dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                     intermediate_size=8192, vocab_size=128256, head_dim=64, tie_word_embeddings=True,
                     rope_theta=500000.0, max_position_embeddings=131072)
        batch, length = 8, 1024
    config = LlamaConfig(**shape)

    def build() -> nn.Module:
        torch.manual_seed(0)
        return LlamaForCausalLM(config).to(dtype)

    def inputs(device: torch.device) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(1)
        ids = torch.randint(0, config.vocab_size, (batch, length), generator=generator).to(device)
        return {"input_ids": ids, "labels": ids}

    return Workload("tiny_llama" if tiny else "llama_3.2_1b", build, inputs, _output_loss,
                    f"LlamaForCausalLM {shape['num_hidden_layers']}x{shape['hidden_size']}, "
                    f"{shape['num_attention_heads']}/{shape['num_key_value_heads']} heads, batch {batch}x{length}",
                    dtype)


def vit_workload(tiny: bool = False, dtype: torch.dtype = torch.bfloat16) -> Workload:
    """ViT-B/16 shape (random init): hidden 768, 12 layers, 12 heads, 224x224, batch 128."""
    from transformers import ViTConfig, ViTForImageClassification

    if tiny:
        shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                     image_size=32, patch_size=16, num_labels=10)
        batch = 4
    else:
        shape = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                     image_size=224, patch_size=16, num_labels=1000)
        batch = 128
    config = ViTConfig(**shape)

    def build() -> nn.Module:
        torch.manual_seed(0)
        return ViTForImageClassification(config).to(dtype)

    def inputs(device: torch.device) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(1)
        pixels = torch.randn(batch, 3, config.image_size, config.image_size, generator=generator)
        labels = torch.randint(0, config.num_labels, (batch,), generator=generator)
        return {"pixel_values": pixels.to(device, dtype), "labels": labels.to(device)}

    return Workload("tiny_vit" if tiny else "vit_b16", build, inputs, _output_loss,
                    f"ViTForImageClassification {shape['num_hidden_layers']}x{shape['hidden_size']}, "
                    f"{shape['num_attention_heads']} heads, {shape['image_size']}px, batch {batch}", dtype)


GPU_WORKLOADS: dict[str, Callable[..., Workload]] = {"llama": llama_workload, "vit": vit_workload}


def deeper_workload(workload: Workload) -> Workload | None:
    """The same workload with twice the layers (for the generation count), where we know how to build it."""
    if workload.name in ("tiny_bert", "minilm_l6"):
        depth = 2 if workload.name == "tiny_bert" else 6
        return bert_workload(tiny=True, layers=2 * depth)  # generation count does not depend on width
    return None
