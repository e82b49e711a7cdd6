"""Tiny models built on ``torch.nn.MultiheadAttention`` with the exact module structure and names of
torchvision's ``VisionTransformer`` and of OpenCLIP's ``ResidualAttentionBlock`` / ``Transformer``.

The real packages do not install usably here: PyPI's torchvision 0.28.0 (the release for torch 2.13.0) is
built against the CUDA torch, and with the CPU torch its import fails (``RuntimeError: operator
torchvision::nms does not exist``); open_clip_torch 3.3.0 imports torchvision (and ftfy, regex) when its
package is imported. So these copy their structure (torchvision 0.28.0 ``models/vision_transformer.py``,
open_clip 3.3.0 ``transformer.py``), with the same attribute names and forward calls:

* torchvision: ``conv_proj``, ``class_token``, ``encoder.pos_embedding``,
  ``encoder.layers.encoder_layer_N.{ln_1, self_attention, dropout, ln_2, mlp}`` (``self_attention`` is an
  ``nn.MultiheadAttention(batch_first=True)`` called as ``self_attention(x, x, x, need_weights=False)``),
  ``encoder.ln``, ``heads.head``.
* OpenCLIP: ``transformer.resblocks.N.{ln_1, attn, ls_1, ln_2, mlp.{c_fc, gelu, c_proj}, ls_2}`` (``attn`` an
  ``nn.MultiheadAttention(batch_first=True)`` called as ``attn(q_x, k_x, v_x, need_weights=False,
  attn_mask=attn_mask)[0]``), here as a text tower with a causal mask, a token embedding and a pooled head.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

import torch
from torch import nn

IMAGE, PATCH, CHANNELS, DIM, HEADS, CLASSES, VOCAB, LENGTH = 8, 4, 3, 32, 4, 3, 50, 6


class MLPBlock(nn.Sequential):
    """torchvision's ``MLPBlock``: linear_1 (0), GELU (1), dropout (2), linear_2 (3), dropout (4)."""

    def __init__(self, in_dim: int, mlp_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, mlp_dim), nn.GELU(), nn.Dropout(0.0), nn.Linear(mlp_dim, in_dim),
                         nn.Dropout(0.0))


class EncoderBlock(nn.Module):
    """torchvision's ``EncoderBlock``."""

    def __init__(self, num_heads: int, hidden_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.ln_1 = partial(nn.LayerNorm, eps=1e-6)(hidden_dim)
        self.self_attention = nn.MultiheadAttention(hidden_dim, num_heads, dropout=0.0, batch_first=True)
        self.dropout = nn.Dropout(0.0)
        self.ln_2 = partial(nn.LayerNorm, eps=1e-6)(hidden_dim)
        self.mlp = MLPBlock(hidden_dim, mlp_dim)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        x = self.ln_1(input)
        x, _ = self.self_attention(x, x, x, need_weights=False)
        x = self.dropout(x) + input
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    """torchvision's ``Encoder``: pos_embedding, layers.encoder_layer_N, ln."""

    def __init__(self, seq_length: int, num_layers: int, num_heads: int, hidden_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, hidden_dim).normal_(std=0.02))
        self.dropout = nn.Dropout(0.0)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(num_heads, hidden_dim, mlp_dim)) for i in range(num_layers)))
        self.ln = partial(nn.LayerNorm, eps=1e-6)(hidden_dim)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(self.dropout(input + self.pos_embedding)))


class VisionTransformer(nn.Module):
    """torchvision's ``VisionTransformer`` at toy size: (B, 3, 8, 8) images -> (B, 3) logits."""

    def __init__(self, num_layers: int = 2) -> None:
        super().__init__()
        self.conv_proj = nn.Conv2d(CHANNELS, DIM, kernel_size=PATCH, stride=PATCH)
        self.class_token = nn.Parameter(torch.zeros(1, 1, DIM))
        self.encoder = Encoder((IMAGE // PATCH) ** 2 + 1, num_layers, HEADS, DIM, 2 * DIM)
        self.heads = nn.Sequential(OrderedDict([("head", nn.Linear(DIM, CLASSES))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).reshape(x.shape[0], DIM, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.heads(self.encoder(x)[:, 0])


class ResidualAttentionBlock(nn.Module):
    """OpenCLIP's ``ResidualAttentionBlock`` (no layer scale, as its default ``ls_init_value=None``)."""

    def __init__(self, d_model: int, n_head: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_head, batch_first=True)
        self.ls_1 = nn.Identity()
        self.ln_2 = nn.LayerNorm(d_model)
        width = int(d_model * mlp_ratio)
        self.mlp = nn.Sequential(OrderedDict([("c_fc", nn.Linear(d_model, width)), ("gelu", nn.GELU()),
                                              ("c_proj", nn.Linear(width, d_model))]))
        self.ls_2 = nn.Identity()

    def attention(self, q_x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        attn_mask = attn_mask.to(q_x.dtype) if attn_mask is not None else None
        return self.attn(q_x, q_x, q_x, need_weights=False, attn_mask=attn_mask)[0]

    def forward(self, q_x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = q_x + self.ls_1(self.attention(self.ln_1(q_x), attn_mask=attn_mask))
        return x + self.ls_2(self.mlp(self.ln_2(x)))


class Transformer(nn.Module):
    """OpenCLIP's ``Transformer``: ``resblocks`` (a ModuleList), batch-first."""

    def __init__(self, width: int, layers: int, heads: int) -> None:
        super().__init__()
        self.width, self.layers = width, layers
        self.resblocks = nn.ModuleList([ResidualAttentionBlock(width, heads) for _ in range(layers)])

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.resblocks:
            x = block(x, attn_mask=attn_mask)
        return x


class TextTower(nn.Module):
    """An OpenCLIP-style text tower: token_embedding, positional_embedding, causal ``transformer``, ln_final,
    pooled at the last token, then a classifier ``head``: (B, 6) token ids -> (B, 3) logits."""

    def __init__(self, layers: int = 2) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(VOCAB, DIM)
        self.positional_embedding = nn.Parameter(torch.randn(LENGTH, DIM) * 0.01)
        self.transformer = Transformer(DIM, layers, HEADS)
        self.ln_final = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, CLASSES)
        self.register_buffer("attn_mask", torch.full((LENGTH, LENGTH), float("-inf")).triu(1), persistent=False)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        x = self.token_embedding(text) + self.positional_embedding
        x = self.ln_final(self.transformer(x, attn_mask=self.attn_mask))
        return self.head(x[:, -1])


def make(kind: str, seed: int = 0) -> nn.Module:
    """``"torchvision_vit"`` or ``"openclip_text"``, random and identical for one seed, in eval mode."""
    torch.manual_seed(seed)
    return {"torchvision_vit": VisionTransformer, "openclip_text": TextTower}[kind]().eval()


def inputs(kind: str, batch: int = 4, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    if kind == "torchvision_vit":
        return torch.randn(batch, CHANNELS, IMAGE, IMAGE, generator=generator)
    return torch.randint(0, VOCAB, (batch, LENGTH), generator=generator)
