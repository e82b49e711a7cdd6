"""HoRA on ``torch.nn.MultiheadAttention`` (torchvision's ViT, OpenCLIP): its projections as HoRA layers.

An ``nn.MultiheadAttention`` (embed_dim E, H heads of d_h = E / H) holds its projections as parameters, not
modules, and its forward reads them directly (``F.multi_head_attention_forward``):

* q|k|v: one packed ``in_proj_weight`` (3E x E) when q, k and v have E input features; otherwise separate
  ``q_proj_weight`` (E x E), ``k_proj_weight`` (E x kdim), ``v_proj_weight`` (E x vdim);
* o: ``out_proj.weight`` (E x E), an ``nn.Linear`` whose forward is never called.

Each adapted projection becomes an ordinary :class:`~hora.tuner.layer.HoraLayer`, so the factors, the bank, merge,
several adapters, saving and export are the layers' own: the packed ``in_proj`` is a fused q|k|v weight
(sections of H heads each, adapted whole, as GPT-2's ``c_attn``; so ``projections=["q", "v"]`` adapts k too,
as PEFT's LoRA adapts the whole in_proj), the separate weights are one projection each, and ``out_proj`` is
the output projection (heads split its input). The layers of q/k/v read their weight through
:class:`AttentionWeight`, a view with no parameter of its own; out_proj's layer wraps the Linear itself.

:class:`HoraMultiheadAttention` takes the attention's place and makes the update reach it: each forward runs
the attention with the effective weights W + dW in place of its weights (:func:`shadowed`: autograd reaches the
factors and the stored weights are never changed), dW = sum over the active, unmerged adapters of s B A.
Adapter dropout acts on a layer's input, which the attention never hands out, so it is not applied here (with a
warning), as in PEFT's LoRA.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from .config import HoraConfig
from .heads import HeadLayout, Section
from .layer import HoraLayer, layer_options

# child name on the attention -> the parameter it adapts (out_proj: the Linear's weight, wrapped by the layer)
_WEIGHTS = {"in_proj": "in_proj_weight", "q_proj": "q_proj_weight", "k_proj": "k_proj_weight",
            "v_proj": "v_proj_weight", "out_proj": "out_proj.base_layer.weight"}


class AttentionWeight(nn.Module):
    """One projection weight of an ``nn.MultiheadAttention`` seen as a bias-free Linear's weight (out x in).

    ``weight`` is the attention's own parameter (not a copy), so a merge into it changes the attention's
    weight; the view registers nothing, so the attention's state dict keeps its keys.
    """

    is_weight_view = True  # read by hora.tuner.heads.weight_dims

    def __init__(self, attention: nn.MultiheadAttention, parameter_name: str) -> None:
        super().__init__()
        self.__dict__["attention"] = attention  # a reference, not a submodule
        self.parameter_name = parameter_name
        self.out_features, self.in_features = getattr(attention, parameter_name).shape

    @property
    def weight(self) -> nn.Parameter:
        return getattr(self.attention, self.parameter_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("AttentionWeight is read by HoraMultiheadAttention, never called.")

    def extra_repr(self) -> str:
        return f"{self.parameter_name}: in_features={self.in_features}, out_features={self.out_features}"


def attention_layouts(attention: nn.MultiheadAttention, projections: list[str]) -> dict[str, HeadLayout]:
    """Child name -> head layout of the attention's projections among ``projections``: ``in_proj`` (packed
    q|k|v) or ``q_proj``/``k_proj``/``v_proj`` (separate weights), and ``out_proj``."""
    heads, head_dim = attention.num_heads, attention.head_dim
    wanted = set(projections)
    layouts = {}
    if wanted & {"q", "k", "v"}:
        if attention._qkv_same_embed_dim:
            layouts["in_proj"] = HeadLayout("out", tuple(Section(p, heads) for p in "qkv"), head_dim)
        else:
            for p in sorted(wanted & {"q", "k", "v"}):
                layouts[f"{p}_proj"] = HeadLayout("out", (Section(p, heads),), head_dim)
    if "o" in wanted:
        layouts["out_proj"] = HeadLayout("in", (Section("o", heads),), head_dim)
    return layouts


class HoraMultiheadAttention(nn.Module, BaseTunerLayer):
    """An ``nn.MultiheadAttention`` (``base_layer``) whose adapted projections are HoRA layers, run with the
    effective weights W + dW. Other attributes (``embed_dim``, ``batch_first``, ``in_proj_weight``...) are the
    attention's. ``peft``'s unload replaces it by the attention again (:meth:`unload_and_optionally_merge_module`).

    A ``BaseTunerLayer`` with no adapter tensors of its own (PEFT strips its ``base_layer`` from base-model keys):
    the projections' layers hold them and PEFT merges, switches and deletes those; :meth:`merge` and
    :meth:`unmerge` here leave them to it.
    """

    adapter_layer_names = ()
    other_param_names = ()

    def __init__(self, base_layer: nn.MultiheadAttention) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.in_features = self.out_features = base_layer.embed_dim
        self._disable_adapters = False
        self.merged_adapters: list[str] = []
        self._active_adapter: str | list[str] = []

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_layer":
                raise
            return getattr(self.base_layer, name)

    def adapted(self) -> dict[str, HoraLayer]:
        """Child name of the attention -> its HoRA layer, for every adapted projection."""
        return {name: m for name, m in self.base_layer.named_children() if isinstance(m, HoraLayer)}

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """Nothing of its own to merge: PEFT merges the projections' layers (see the class doc)."""

    def unmerge(self) -> None:
        """Nothing of its own to unmerge (see :meth:`merge`)."""

    def _move_adapter_to_device_of_base_layer(self, adapter_name: str, device: object = None) -> None:
        """No adapter tensors of its own: the projections' layers move theirs."""

    def update_layer(self, adapter_name: str, config: HoraConfig, trainable: bool, key: str) -> None:
        """Add an adapter to the projections ``config.projections`` selects (creating their layers)."""
        if config.dropout:
            warnings.warn(
                f"dropout={config.dropout} is not applied to torch.nn.MultiheadAttention '{key}': adapter dropout acts "
                "on a layer's input, which the attention never hands out (it reads its weights directly); as PEFT's "
                "LoRA, the attention's projections are adapted without it.",
                UserWarning, stacklevel=2,
            )
        attention = self.base_layer
        options = layer_options(config)
        for name, layout in attention_layouts(attention, config.projections).items():
            layer = attention._modules.get(name)
            if isinstance(layer, HoraLayer):
                layer.add_adapter(adapter_name, layout, f"{key}.{name}", options)
                continue
            weight = attention.out_proj if name == "out_proj" else AttentionWeight(attention, _WEIGHTS[name])
            layer = HoraLayer(weight, adapter_name, layout, **options)
            layer.requires_grad_(trainable)
            setattr(attention, name, layer)

    def effective_weights(self) -> dict[str, torch.Tensor]:
        """Parameter path in the attention -> W + dW, for every projection with an active, unmerged adapter.
        A layer whose adapters are disabled unmerges first, as :meth:`HoraLayer.forward` does."""
        weights = {}
        for name, layer in self.adapted().items():
            if layer.disable_adapters:
                if layer.merged:
                    layer.unmerge()
                continue
            if layer.merged:
                continue
            deltas = [layer.get_delta_weight(a) for a in layer.active_adapters if a in layer.hora_plans]
            if deltas:
                weight = layer.get_base_layer().weight
                weights[_WEIGHTS[name]] = weight + torch.stack(deltas).sum(0).to(weight.dtype)
        return weights

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        weights = self.effective_weights()
        if not weights:
            return self.base_layer(*args, **kwargs)
        with shadowed(self.base_layer, weights):
            return self.base_layer(*args, **kwargs)

    def unload_and_optionally_merge_module(self, merge: bool, safe_merge: bool,
                                           adapter_names: list[str] | None) -> nn.MultiheadAttention:
        """The plain attention again, with the adapters merged into its weights when ``merge`` (PEFT's unload)."""
        attention = self.base_layer
        for name, layer in self.adapted().items():
            if merge:
                layer.merge(safe_merge=safe_merge, adapter_names=adapter_names)
            if name == "out_proj":
                attention.out_proj = layer.get_base_layer()
            else:
                delattr(attention, name)
        return attention


@contextlib.contextmanager
def shadowed(module: nn.Module, tensors: dict[str, torch.Tensor]) -> Iterator[None]:
    """Inside the block, ``module.<path>`` reads ``tensors[path]``; afterwards what it read before.

    Each tensor goes into its owner's instance ``__dict__``, which attribute lookup consults before
    ``nn.Module.__getattr__`` (and so before the registered parameters), and the previous entry, if any, comes
    back afterwards: parameters stay registered, in order, untouched. (``torch.func.functional_call`` swaps the
    registered parameters instead, which FSDP1 with ``use_orig_params=True`` shadows with views of its own in
    ``__dict__``, so the swapped weights would not be read there.)
    """
    missing = object()
    saved = []
    try:
        for path, tensor in tensors.items():
            owner_path, _, name = path.rpartition(".")
            owner = module.get_submodule(owner_path)
            saved.append((owner, name, owner.__dict__.get(name, missing)))
            owner.__dict__[name] = tensor
        yield
    finally:
        for owner, name, previous in reversed(saved):
            if previous is missing:
                del owner.__dict__[name]
            else:
                owner.__dict__[name] = previous


def is_multihead_attention(module: nn.Module) -> bool:
    return isinstance(module, (nn.MultiheadAttention, HoraMultiheadAttention))


def adapt_multihead_attention(tuner: nn.Module, config: HoraConfig, adapter_name: str, target: nn.Module,
                              target_name: str, parent: nn.Module, key: str) -> None:
    """HoraModel's ``_create_and_replace`` for an ``nn.MultiheadAttention`` (or one adapted already)."""
    if isinstance(parent, nn.TransformerEncoderLayer) and not isinstance(target, HoraMultiheadAttention):
        warnings.warn(
            f"'{key}' sits in a torch.nn.TransformerEncoderLayer, whose fast path (evaluation mode with frozen base "
            "weights) reads the attention's weights itself and so runs without the unmerged adapter; train as usual, "
            "and call model.merge_adapter() (or merge_and_unload) before evaluating.",
            UserWarning, stacklevel=3,
        )
    wrapper = target if isinstance(target, HoraMultiheadAttention) else HoraMultiheadAttention(target)
    wrapper.update_layer(adapter_name, config, adapter_name in tuner.active_adapters, key)
    if wrapper is not target:
        tuner._replace_module(parent, target_name, wrapper, target)


def lora_factors(name: str, wrapper: HoraMultiheadAttention, adapter_name: str,
                 r: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The exact PEFT-LoRA factors of one adapted attention: PEFT's LoRA adapts an ``nn.MultiheadAttention``
    as one target module with ``lora_A``/``lora_B`` on the packed in_proj (module ``name``) and a LoRA Linear on
    out_proj (module ``name.base_layer.out_proj``), both of the adapter's rank; a projection HoRA left alone
    gets zero factors. Module name -> (lora_A (r x in), lora_B (out x r)), scaling folded in.

    Raises:
        ValueError: the attention has separate q/k/v weights, which PEFT's LoRA does not adapt.
    """
    attention = wrapper.base_layer
    if not attention._qkv_same_embed_dim:
        raise ValueError(
            f"'{name}' keeps separate q/k/v weights (kdim/vdim != embed_dim); PEFT's LoRA adapts "
            "nn.MultiheadAttention only with one packed in_proj_weight, so this adapter cannot be exported to LoRA."
        )
    layers = {child: layer for child, layer in wrapper.adapted().items() if adapter_name in layer.hora_plans}
    if "out_proj" in layers:
        warnings.warn(
            f"'{name}.out_proj' is exported exactly, but PEFT's LoRA (0.21.2 and earlier) applies an "
            "nn.MultiheadAttention's out_proj update twice in its forward and merge (huggingface/peft PR 3774), so "
            "the LoRA adapter reproduces this HoRA adapter only under a PEFT with that fix; q/k/v are exact in any.",
            UserWarning, stacklevel=3,
        )
    factors = {}
    for child, lora_name in (("in_proj", name), ("out_proj", f"{name}.base_layer.out_proj")):
        if child in layers:
            factors[lora_name] = layers[child].exact_factors(adapter_name)
            continue
        weight = attention.in_proj_weight if child == "in_proj" else attention.out_proj.weight
        out_features, in_features = weight.shape
        dtype = next(iter(layers.values())).exact_factors(adapter_name)[0].dtype
        factors[lora_name] = (weight.new_zeros(r, in_features, dtype=dtype),
                              weight.new_zeros(out_features, r, dtype=dtype))
    return factors
