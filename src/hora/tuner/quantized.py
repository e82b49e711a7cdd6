"""Quantized base layers: which ones HoRA adapts, and how their weight is read and written for merging.

HoRA's forward never touches the base weight (``y = base_layer(x) + B (A x)``), so a quantized base layer
runs its own kernel as it does under PEFT's LoRA. Only merging needs the weight W (d_out x d_in) itself:

    merge    W' = Q(D(W_q) + dW)        unmerge    W = Q(D(W'_q) - dW)

with D the back-end's dequantisation and Q its requantisation; ``D(W_q) + dW`` is summed in float32 (the
adapter's dtype) before Q rounds it, as PEFT's LoRA does. Merging on a quantized base is therefore exact only
up to one requantisation (int8 per-row absmax, or nf4/fp4 per 64-block absmax), the same error as LoRA's merge.

D and Q are PEFT's own (:func:`peft.utils.resolve_quantization_backend`: ``get_base_weight`` /
``set_base_weight`` of :class:`~peft.tuners.tuners_utils.BaseTunerLayer`), reached through
:attr:`HoraLayer.quantization_backend`. HoRA supports the back-ends it is tested on:

* bitsandbytes ``Linear4bit`` (nf4/fp4, with or without double quantisation, any compute dtype) and
  ``Linear8bitLt`` (tests/tuner/test_quantized.py, on CPU with bitsandbytes 0.50.2).

Any other quantized layer PEFT knows (GPTQ, AWQ, AQLM, EETQ, HQQ, torchao, INC, TransformerEngine), and any
Linear whose weight is not a plain floating tensor (a tensor subclass, an integer or float8 weight with scales
kept elsewhere), is refused when targeted: adding dW to such a weight as if it were dense would give a wrong
model without an error.
"""

from __future__ import annotations

import warnings

import torch
from peft.utils import resolve_quantization_backend
from peft.utils.quantization_utils import Bnb4bitBackend, Bnb8bitBackend, QuantizationBackend
from torch import nn
from torch.distributed.tensor import DTensor

SUPPORTED_BACKENDS = (Bnb4bitBackend, Bnb8bitBackend)
"""PEFT quantization back-ends whose layers HoRA adapts and merges (bitsandbytes 4-bit and 8-bit)."""

DENSE_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)

_ADVICE = (
    "HoRA adapts dense layers and bitsandbytes 4-bit/8-bit layers (load the model with transformers' "
    "BitsAndBytesConfig, or unquantized), or leave this module out of target_modules. See docs/operations.md, "
    "'Quantized base models'."
)


class UnsupportedQuantizationError(TypeError):
    """A targeted layer is quantized by a back-end HoRA cannot merge into (or cannot recognise)."""


def quantization_backend(base_layer: nn.Module, name: str = "") -> QuantizationBackend | None:
    """PEFT's quantization back-end of ``base_layer`` (None for a dense layer), or
    :class:`UnsupportedQuantizationError` when HoRA does not support it; ``name`` (the module's key) is only for
    the message."""
    label = f"'{name}' ({type(base_layer).__name__})" if name else type(base_layer).__name__
    try:
        backend = resolve_quantization_backend(base_layer)
    except ValueError as error:  # PEFT 0.21: a torchao layer without the quantizer's config, which HoRA does not take
        raise UnsupportedQuantizationError(
            f"{label} is quantized by a back-end HoRA does not support (PEFT: {error}). " + _ADVICE
        ) from None
    if backend is not None:
        if not isinstance(backend, SUPPORTED_BACKENDS):
            raise UnsupportedQuantizationError(
                f"{label} is quantized with {backend.backend_name or type(backend).__name__}, which HoRA does not "
                "support. " + _ADVICE
            )
        return backend
    weight = getattr(base_layer, "weight", None)
    if isinstance(weight, torch.Tensor) and not _is_dense(weight):
        raise UnsupportedQuantizationError(
            f"{label} has a {type(weight).__name__} weight of dtype {weight.dtype}, not a plain floating tensor: it "
            "looks quantized by a back-end HoRA does not know, and merging into it would be wrong. " + _ADVICE
        )
    return None


def _is_dense(weight: torch.Tensor) -> bool:
    """Whether ``weight`` is a plain (or FSDP-sharded) float16/bfloat16/float32/float64 tensor, meta included."""
    plain = type(weight) in (torch.Tensor, nn.Parameter) or isinstance(weight, DTensor)
    return plain and weight.dtype in DENSE_DTYPES


def weight_plus(layer: nn.Module, delta: torch.Tensor, in_place: bool) -> torch.Tensor:
    """``W + delta`` for ``layer.set_base_weight`` (a PEFT BaseTunerLayer): W (d_out x d_in, Conv1D: d_in x d_out).

    Dense W: in W's dtype, in place unless ``in_place`` is False (then a new tensor, W unchanged). Quantized W:
    dequantised by PEFT's back-end and summed in the wider of W's and delta's dtypes (float32 for a float32
    adapter), a new tensor that ``set_base_weight`` requantises.
    """
    backend = layer.quantization_backend
    if isinstance(backend, Bnb4bitBackend):
        _restore_standard_4bit_layout(layer.get_base_layer())
    weight = layer.get_base_weight()
    if backend is not None:
        warnings.warn(
            f"Merging into {backend.backend_name} weights requantises W + dW: outputs differ from the unmerged "
            "adapter's by that rounding, and updates smaller than half a quantisation step are lost (as with LoRA). "
            "For the trained outputs keep the adapter unmerged (or export it to LoRA); to deploy a merged model, "
            "load the base unquantized and merge there.",
            UserWarning,
            stacklevel=3,
        )
        return weight.to(torch.promote_types(weight.dtype, delta.dtype)) + delta.to(weight.device)
    delta = delta.to(weight.dtype)
    return weight.add_(delta) if in_place else weight + delta


def _restore_standard_4bit_layout(base_layer: nn.Module) -> None:
    """Undo bitsandbytes' CPU repacking of a ``Linear4bit`` weight, in place.

    On a CPU with AVX512-BF16, bitsandbytes (0.50.2) repacks the 4-bit weight at its first inference forward
    (eval mode, no gradient) into a layout its CPU kernel reads (``quant_state.packing_format_for_cpu``);
    ``dequantize_4bit``, which PEFT's back-end calls, reads only the standard layout and would return a wrong
    weight. bitsandbytes undoes the repacking itself before saving a state dict; this does the same.
    """
    weight = base_layer.weight
    if getattr(weight.quant_state, "packing_format_for_cpu", False):
        from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

        weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(weight.data, weight.quant_state)
