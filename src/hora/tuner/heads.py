"""Head layouts: which side of an attention projection's weight is split into heads, and how.

A projection weight W (out x in, as ``nn.Linear`` stores it) is split by heads on one side:

* q, k, v (and fused q|k|v): the ``out`` side. Rows [h*d_h, (h+1)*d_h) of a section belong to head h.
* o: the ``in`` side. Columns [h*d_h, (h+1)*d_h) belong to head h.

Head counts and the head dimension d_h come from the model config (num_attention_heads,
num_key_value_heads or multi_query, head_dim or hidden_size / num_attention_heads). A model without such a
config (a timm ViT: ``blocks.N.attn.{qkv,proj}``) is read from the attention module that holds the
projection, as timm's ``Attention`` keeps them: ``num_heads``, ``head_dim`` and, under grouped-query
attention, ``num_kv_heads`` (``head_dim`` absent: the weight's split side / heads). The role of a module
comes from its name. Anything that cannot be read raises :class:`HeadLayoutError`, which shows how to
state the layout explicitly with ``HoraConfig(head_layout=...)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from transformers.pytorch_utils import Conv1D

from .projections import PROJECTIONS


class HeadLayoutError(ValueError):
    """The head layout of a target module could not be determined or does not fit its weight."""


@dataclass(frozen=True)
class Section:
    """A contiguous block of heads of one projection inside a (possibly fused) weight."""

    projection: Literal["q", "k", "v", "o"]
    num_heads: int


@dataclass(frozen=True)
class HeadLayout:
    """How one weight is split into heads: ``side`` ('out' rows or 'in' columns), sections, d_h."""

    side: Literal["out", "in"]
    sections: tuple[Section, ...]
    head_dim: int

    @property
    def num_heads(self) -> int:
        return sum(section.num_heads for section in self.sections)

    @property
    def width(self) -> int:
        """Size of the head-split side: total heads x d_h."""
        return self.num_heads * self.head_dim


_PARENT = r"(?:^|\.)[^.]*(?:[Aa]ttention|[Aa]ttn)[^.]*"
_ROLE_PATTERNS: tuple[tuple[str, str], ...] = (
    ("q", r"(?:^|\.)(?:query|q_proj|q_lin|q|wq|to_q)$"),
    ("k", r"(?:^|\.)(?:key|k_proj|k_lin|k|wk|to_k)$"),
    ("v", r"(?:^|\.)(?:value|v_proj|v_lin|v|wv|to_v)$"),
    ("qkv", r"(?:^|\.)(?:qkv_proj|c_attn|qkv|Wqkv)$"),
    ("o", _PARENT + r"\.(?:o_proj|out_proj|o|out_lin|c_proj|proj|wo|dense)$"),
    ("o", r"(?:^|\.)attention\.output\.dense$"),
)
_LAYOUT_HINT = (
    'HoraConfig(head_layout={{"{name}": {{"sections": [["q", H_q], ["k", H_kv], ["v", H_kv]], '
    '"head_dim": D}}}}) for a fused q|k|v weight, or [["o", H_q]] for an output projection'
)


def projection_role(module_name: str) -> str | None:
    """The attention role of a module from its name: 'q', 'k', 'v', 'qkv' (fused), 'o', or None."""
    for role, pattern in _ROLE_PATTERNS:
        if re.search(pattern, module_name):
            return role
    return None


def weight_dims(layer: nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of an nn.Linear, a transformers Conv1D (weight stored in x out) or a weight
    view (:class:`hora.tuner.mha.AttentionWeight`)."""
    if isinstance(layer, Conv1D):
        fan_in, fan_out = layer.weight.shape
        return int(fan_in), int(fan_out)
    if isinstance(layer, nn.Linear) or getattr(layer, "is_weight_view", False):  # hora.tuner.mha.AttentionWeight
        return layer.in_features, layer.out_features
    raise HeadLayoutError(
        f"HoRA adapts nn.Linear and transformers Conv1D layers, not {type(layer).__name__}."
    )


@dataclass(frozen=True)
class AttentionShape:
    """Head counts read from a model config: query heads, key/value heads, head dimension."""

    num_heads: int
    num_kv_heads: int
    head_dim: int

    @classmethod
    def from_config(cls, config: object) -> AttentionShape:
        """Read H_q, H_kv and d_h, handling GQA (num_key_value_heads), MQA (multi_query) and head_dim."""
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        num_heads = getattr(text_config, "num_attention_heads", None)
        if not isinstance(num_heads, int) or num_heads <= 0:
            raise HeadLayoutError(
                f"Cannot read num_attention_heads from the model config ({type(config).__name__}); "
                "state the layout explicitly with " + _LAYOUT_HINT.format(name="MODULE_SUFFIX")
            )
        num_kv_heads = getattr(text_config, "num_key_value_heads", None)
        if not num_kv_heads:
            num_kv_heads = 1 if getattr(text_config, "multi_query", False) else num_heads
        head_dim = getattr(text_config, "head_dim", None)
        if not head_dim:
            hidden = getattr(text_config, "hidden_size", None)
            if not isinstance(hidden, int) or hidden % num_heads:
                raise HeadLayoutError(
                    f"Cannot infer head_dim: hidden_size {hidden} is not divisible by {num_heads} heads; "
                    "state it with " + _LAYOUT_HINT.format(name="MODULE_SUFFIX")
                )
            head_dim = hidden // num_heads
        return cls(int(num_heads), int(num_kv_heads), int(head_dim))

    @classmethod
    def from_module(cls, attention: nn.Module | None, role: str, fan_in: int, fan_out: int) -> AttentionShape | None:
        """Read H_q, H_kv and d_h from the attention module that holds a projection, or None if it has none.

        H_q is the first positive int among ``num_heads``, ``num_attention_heads``, ``n_heads``; H_kv among
        ``num_kv_heads``, ``num_key_value_heads``, ``n_kv_heads`` (default H_q); d_h among ``head_dim``,
        ``attention_head_size``. Without d_h it is the projection's split side over its heads:
        fan_out / (H_q + 2 H_kv) for fused q|k|v, fan_out / H_P for q/k/v, fan_in / H_q for o.

        Raises:
            HeadLayoutError: d_h is absent and the heads do not divide the weight.
        """
        num_heads = _int_attribute(attention, _MODULE_HEADS)
        if num_heads is None:
            return None
        num_kv_heads = _int_attribute(attention, _MODULE_KV_HEADS) or num_heads
        head_dim = _int_attribute(attention, _MODULE_HEAD_DIM)
        if head_dim is None:
            heads = {"qkv": num_heads + 2 * num_kv_heads, "q": num_heads, "k": num_kv_heads, "v": num_kv_heads,
                     "o": num_heads}[role]
            split = fan_in if role == "o" else fan_out
            if split % heads:
                raise HeadLayoutError(
                    f"Cannot infer head_dim from {type(attention).__name__}: {heads} heads do not divide the "
                    f"weight's {'input' if role == 'o' else 'output'} size {split}; state it with "
                    + _LAYOUT_HINT.format(name="MODULE_SUFFIX")
                )
            head_dim = split // heads
        return cls(num_heads, num_kv_heads, head_dim)


# Attribute names under which attention modules keep their head counts (timm's Attention: num_heads,
# head_dim, num_kv_heads), first match wins.
_MODULE_HEADS = ("num_heads", "num_attention_heads", "n_heads")
_MODULE_KV_HEADS = ("num_kv_heads", "num_key_value_heads", "n_kv_heads")
_MODULE_HEAD_DIM = ("head_dim", "attention_head_size")


def _int_attribute(module: nn.Module | None, names: tuple[str, ...]) -> int | None:
    """The first of ``names`` that the module has as a positive int (bools excluded), else None."""
    for name in names:
        value = getattr(module, name, None) if module is not None else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _attention_shape(
    module_name: str, role: str, layer: nn.Module, model_config: object | None, attention: nn.Module | None
) -> AttentionShape:
    """Head counts for one module: the model config's when it has them, else its attention module's."""
    fan_in, fan_out = weight_dims(layer)
    if model_config is not None:
        try:
            return AttentionShape.from_config(model_config)
        except HeadLayoutError:  # e.g. a wrapper's config without head counts: the attention module may know
            shape = AttentionShape.from_module(attention, role, fan_in, fan_out)
            if shape is None:
                raise
            return shape
    shape = AttentionShape.from_module(attention, role, fan_in, fan_out)
    if shape is None:
        holder = "" if attention is None else f", nor does its {type(attention).__name__} have num_heads"
        raise HeadLayoutError(
            f"The model has no config to read head counts from (module '{module_name}'){holder}; state the "
            "layout with " + _LAYOUT_HINT.format(name=module_name)
        )
    return shape


def _explicit_layout(module_name: str, overrides: Mapping[str, Mapping] | None) -> HeadLayout | None:
    """The user's layout for this module (matched by exact name or dotted suffix), if any."""
    for suffix, spec in (overrides or {}).items():
        if module_name == suffix or module_name.endswith("." + suffix):
            try:
                sections = tuple(Section(str(p), int(h)) for p, h in spec["sections"])
                head_dim = int(spec["head_dim"])
            except (KeyError, TypeError, ValueError) as error:
                raise HeadLayoutError(
                    f"head_layout[{suffix!r}] must look like {{'sections': [['q', 12]], 'head_dim': 64}}; "
                    f"got {spec!r} ({error})."
                ) from error
            projections = {section.projection for section in sections}
            if not projections <= set(PROJECTIONS) or ("o" in projections and len(sections) > 1):
                raise HeadLayoutError(
                    f"head_layout[{suffix!r}]: sections must be q/k/v sections of one output-split weight, "
                    f"or a single 'o' section; got {spec['sections']!r}."
                )
            if head_dim <= 0 or any(section.num_heads <= 0 for section in sections):
                raise HeadLayoutError(f"head_layout[{suffix!r}]: head counts and head_dim must be positive.")
            return HeadLayout("in" if projections == {"o"} else "out", sections, head_dim)
    return None


def discover_layout(
    module_name: str,
    layer: nn.Module,
    model_config: object | None,
    overrides: Mapping[str, Mapping] | None = None,
    attention: nn.Module | None = None,
) -> HeadLayout:
    """Find and check the head layout of one target module.

    Order: the explicit ``overrides`` (HoraConfig.head_layout), then the model config, then the head
    attributes of ``attention``, the module that holds the projection (e.g. timm's ``Attention``).

    Raises:
        HeadLayoutError: the role or the head counts cannot be determined, or heads x d_h does not
            match the weight's split side.
    """
    fan_in, fan_out = weight_dims(layer)
    layout = _explicit_layout(module_name, overrides)
    if layout is None:
        role = projection_role(module_name)
        if role is None:
            raise HeadLayoutError(
                f"Module '{module_name}' is not recognised as an attention q/k/v/o projection, so its heads are "
                "unknown. HoRA adapts attention projections; state the layout explicitly with "
                + _LAYOUT_HINT.format(name=module_name)
            )
        shape = _attention_shape(module_name, role, layer, model_config, attention)
        heads = {"q": shape.num_heads, "k": shape.num_kv_heads, "v": shape.num_kv_heads}
        if role == "qkv":
            sections = tuple(Section(p, heads[p]) for p in ("q", "k", "v"))
            layout = HeadLayout("out", sections, shape.head_dim)
        elif role == "o":
            layout = HeadLayout("in", (Section("o", shape.num_heads),), shape.head_dim)
        else:
            layout = HeadLayout("out", (Section(role, heads[role]),), shape.head_dim)
    split = fan_out if layout.side == "out" else fan_in
    if split != layout.width:
        described = " + ".join(f"{s.num_heads} {s.projection}-heads" for s in layout.sections)
        raise HeadLayoutError(
            f"Module '{module_name}': {described} x head_dim {layout.head_dim} = {layout.width} does not match "
            f"its {'output' if layout.side == 'out' else 'input'} size {split}; the head count does not divide "
            "the weight. Fix the model config or state the layout with " + _LAYOUT_HINT.format(name=module_name)
        )
    return layout


def layer_key(module_name: str) -> str:
    """The attention layer a module belongs to: its name up to the first numeric component.

    ``encoder.layer.3.attention.self.query`` and ``encoder.layer.3.attention.output.dense`` share the key
    ``encoder.layer.3``; without a numeric component the parent module's name is used.
    """
    parts = module_name.split(".")
    for index, part in enumerate(parts):
        if part.isdigit():
            return ".".join(parts[: index + 1])
    return ".".join(parts[:-1])


def find_attention_targets(model: nn.Module, projections: Iterable[str] = ("q", "v")) -> list[str]:
    """Full names of the model's attention projections of the given roles (fused q|k|v included if any of
    q, k, v is requested), in module order; an ``nn.MultiheadAttention`` is named itself (its projections are
    parameters: HoRA adapts them through the attention, :mod:`hora.tuner.mha`). Raises HeadLayoutError when none is
    found."""
    wanted = set(projections)
    names = []
    attentions: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(attention + ".") for attention in attentions):
            continue
        if isinstance(getattr(module, "base_layer", module), nn.MultiheadAttention):  # adapted already or not
            attentions.append(name)
            names.append(name)
            continue
        if isinstance(module, BaseTunerLayer):  # already adapted: judge its base layer, skip its insides
            module = module.get_base_layer()
        elif name.endswith(".base_layer"):
            continue
        if not isinstance(module, (nn.Linear, Conv1D)):
            continue
        role = projection_role(name)
        if role in wanted or (role == "qkv" and wanted & {"q", "k", "v"}):
            names.append(name)
    if not names:
        raise HeadLayoutError(
            f"Found no attention projections {sorted(wanted)} in {type(model).__name__}; pass "
            "HoraConfig(target_modules=[...]) and, if needed, head_layout=... for this architecture."
        )
    return names
