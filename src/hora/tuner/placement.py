"""Device and dtype of HoRA's adapter weights, following PEFT's rules for LoRA.

* Adapter weights are created on the base weight's device and in its (floating) dtype. Under
  ``low_cpu_mem_usage=True`` PEFT creates them inside accelerate's ``init_empty_weights``, i.e. on the
  ``meta`` device, and loading the adapter (``load_state_dict(..., assign=True)``) materialises them.
* ``autocast_adapter_dtype=True`` (PEFT's default) then upcasts float16/bfloat16 (and float8) adapter
  weights to float32; with ``False`` they keep the base weight's dtype.

PEFT applies both rules to tuner layers by their base layer's weight; HoRA's per-adapter bank is held by the
model's :class:`~hora.tuner.banks.HoraBanks` (``hora.hora_bank.<adapter>``), which has no base layer, so
:class:`~hora.tuner.model.HoraModel` places it with :func:`place_bank` by the adapted layers' weight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from peft.utils import UPCAST_DTYPES
from torch import nn

from .generator import FactorBank, ModulePlan


def _upcast_dtypes() -> set[torch.dtype]:
    """float16, bfloat16 and the float8 types this torch build has (PEFT's ``cast_adapter_dtype`` set)."""
    dtypes = {torch.float16, torch.bfloat16}
    dtypes.update(getattr(torch, name) for name in UPCAST_DTYPES if getattr(torch, name, None) is not None)
    return dtypes


def factory_kwargs(weight: torch.Tensor) -> dict:
    """``device``/``dtype`` for new adapter tensors of a layer whose base weight is ``weight``: its device, and
    its dtype when floating point (float32 for integer/quantised storage)."""
    dtype = weight.dtype if weight.dtype.is_floating_point else torch.float32
    return {"device": weight.device, "dtype": dtype}


def adapter_dtype(weight: torch.Tensor, autocast_adapter_dtype: bool) -> torch.dtype:
    """The dtype PEFT gives adapter weights of a layer with base weight ``weight``."""
    dtype = factory_kwargs(weight)["dtype"]
    if autocast_adapter_dtype and dtype in _upcast_dtypes():
        return torch.float32
    return dtype


def is_meta(module: nn.Module) -> bool:
    """Whether any parameter of ``module`` is still on the meta device (awaiting ``assign=True`` loading)."""
    return any(p.is_meta for p in module.parameters())


def place_bank(bank: FactorBank, weight: torch.Tensor, autocast_adapter_dtype: bool | None = None) -> None:
    """Move a bank to ``weight``'s device and to PEFT's adapter dtype (see :func:`adapter_dtype`).

    ``autocast_adapter_dtype=None`` keeps the bank's current dtype (device only). A bank on the meta device
    is left alone: loading materialises it.
    """
    if is_meta(bank) or weight.is_meta:
        return
    if autocast_adapter_dtype is None:
        bank.to(weight.device)
    else:
        bank.to(device=weight.device, dtype=adapter_dtype(weight, autocast_adapter_dtype))


def rebuild_plans_after_load(plans: Sequence[ModulePlan]) -> Callable[[nn.Module, object], None]:
    """A ``load_state_dict`` post-hook for a bank: after ``assign=True`` loading replaced meta parameters by
    real ones, rebuild the bank's non-persistent index buffers (still on meta) on the parameters' device."""

    def hook(bank: nn.Module, incompatible_keys: object) -> None:
        if any(b.is_meta for b in bank.buffers()) and not is_meta(bank):
            bank.set_plans(plans)

    return hook
