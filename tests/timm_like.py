"""Tiny vision transformers with timm's module structure and attribute names, and real timm when importable.

``Attention`` copies timm 1.0's ``timm.layers.attention.Attention`` (the ViT family's attention): one fused
``qkv`` nn.Linear of 3 x num_heads x head_dim outputs (sections q | k | v), ``proj`` as the output
projection, and ``num_heads``, ``head_dim``, ``attn_dim``, ``scale`` on the module; no Hugging Face config.
``GroupedAttention`` copies the grouped-query form of timm's ``AttentionRope`` (separate ``q_proj``,
``k_proj``, ``v_proj`` and ``num_kv_heads``; rotary embedding left out). ``TinyViT`` has timm's names
``patch_embed.proj``, ``blocks.N.{norm1,attn,norm2,mlp.fc1,mlp.fc2}``, ``norm``, ``head``.

:func:`real_timm_vit` builds timm's own ``VisionTransformer`` when timm is installed. timm imports
torchvision at import time only for data transforms and a frozen batch norm that a ViT never uses; where
torchvision is not installed (PyPI's torchvision wheels need the CUDA torch, not the CPU build pinned here,
so the test install takes timm with --no-deps), a stand-in module is put in its place for timm's import
alone and removed afterwards.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

IMAGE = 8  # pixels per side
PATCH = 4
CHANNELS = 3
DIM = 32
HEADS = 4
CLASSES = 3


class Attention(nn.Module):
    """timm's ``Attention``: x (B, N, C) -> qkv (B, N, 3 H d_h) -> heads -> SDPA -> proj (B, N, C)."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = False) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_dim = num_heads * self.head_dim
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, self.attn_dim * 3, bias=qkv_bias)
        self.q_norm = nn.Identity()
        self.k_norm = nn.Identity()
        self.attn_drop = nn.Dropout(0.0)
        self.norm = nn.Identity()
        self.proj = nn.Linear(self.attn_dim, dim)
        self.proj_drop = nn.Dropout(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(self.q_norm(q), self.k_norm(k), v)
        x = x.transpose(1, 2).reshape(B, N, self.attn_dim)
        return self.proj_drop(self.proj(self.norm(x)))


class GroupedAttention(nn.Module):
    """timm's ``AttentionRope`` with num_kv_heads < num_heads (no rotary embedding): q (H heads), k and v
    (H_kv heads each) from separate Linears; every k/v head serves H / H_kv query heads."""

    def __init__(self, dim: int, num_heads: int, num_kv_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.num_kv_groups = num_heads // num_kv_heads
        self.head_dim = dim // num_heads
        self.attn_dim = num_heads * self.head_dim
        self.q_proj = nn.Linear(dim, self.attn_dim)
        self.k_proj = nn.Linear(dim, num_kv_heads * self.head_dim)
        self.v_proj = nn.Linear(dim, num_kv_heads * self.head_dim)
        self.proj = nn.Linear(self.attn_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        q = self.q_proj(x).reshape(B, N, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).reshape(B, N, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).reshape(B, N, self.num_kv_heads, self.head_dim).transpose(1, 2)
        k = k.repeat_interleave(self.num_kv_groups, dim=1)
        v = v.repeat_interleave(self.num_kv_groups, dim=1)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, self.attn_dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, num_kv_heads: int | None = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = (Attention(dim, num_heads, qkv_bias=True) if num_kv_heads is None
                     else GroupedAttention(dim, num_heads, num_kv_heads))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 2 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(CHANNELS, DIM, kernel_size=PATCH, stride=PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class TinyViT(nn.Module):
    """images (B, 3, 8, 8) -> 4 patch tokens + a class token -> 2 blocks -> class-token logits (B, 3)."""

    def __init__(self, depth: int = 2, num_kv_heads: int | None = None) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed()
        self.cls_token = nn.Parameter(torch.randn(1, 1, DIM) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, (IMAGE // PATCH) ** 2 + 1, DIM) * 0.02)
        self.blocks = nn.Sequential(*(Block(DIM, HEADS, num_kv_heads) for _ in range(depth)))
        self.norm = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


class _StandIn(types.ModuleType):
    """A module whose every attribute exists: a class for a capitalised name, else a sub-module."""

    def __getattr__(self, name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        if name[:1].isupper():
            value: object = _StandInType(name, (), {"__module__": self.__name__})
        else:
            value = _StandIn(f"{self.__name__}.{name}")
            value.__path__ = []
            sys.modules[value.__name__] = value
        setattr(self, name, value)
        return value


class _StandInType(type):
    def __getattr__(cls, name: str) -> str:
        if name.startswith("__"):
            raise AttributeError(name)
        return f"{cls.__name__}.{name}"


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname == "torchvision" or fullname.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StandIn(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


# `make install` puts timm here, outside the environment: a timm without torchvision in site-packages breaks
# `accelerate launch`, which imports timm whenever it is importable
TIMM_DIR = Path(__file__).resolve().parents[1] / ".cache" / "timm"


def import_timm() -> tuple[types.ModuleType | None, str]:
    """(timm, how it was imported) or (None, why not), from the environment or from :data:`TIMM_DIR`. Where
    torchvision is not installed, timm is imported with a stand-in torchvision that is removed from
    sys.modules afterwards. (A torchvision built for another torch, as PyPI's CUDA wheels are for the CPU
    torch, breaks transformers' own imports too, so install timm without it: ``pip install --no-deps timm``.)"""
    if importlib.util.find_spec("timm") is None and TIMM_DIR.is_dir():
        sys.path.append(str(TIMM_DIR))
    try:
        return importlib.import_module("timm"), "with torchvision"
    except ModuleNotFoundError as error:
        if error.name != "torchvision" and not (error.name or "").startswith("torchvision."):
            return None, f"timm is not installed ({error})"
    for name in [n for n in sys.modules if n in ("torchvision", "timm") or n.startswith(("torchvision.", "timm."))]:
        del sys.modules[name]
    finder = _StandInFinder()
    sys.meta_path.insert(0, finder)
    try:
        timm = importlib.import_module("timm")
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
    return timm, "with a stand-in torchvision (no usable torchvision for this torch)"


def real_timm_vit(timm: types.ModuleType) -> nn.Module:
    """timm's ``VisionTransformer`` at the replica's size: 8x8 RGB images, patch 4, width 32, 4 heads."""
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=IMAGE, patch_size=PATCH,
                             embed_dim=DIM, depth=2, num_heads=HEADS, num_classes=CLASSES)
