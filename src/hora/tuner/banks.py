"""Where a model keeps its HoRA banks: :class:`HoraBanks`, a submodule of the adapted model itself.

Every adapter's :class:`~hora.tuner.generator.FactorBank` (seeds and generators of all its adapted layers) lives in
``model.hora.hora_bank[adapter]``, on the model and not on the PEFT tuner, so a model adapted without a tuner
(``peft.inject_adapter_in_model``) keeps its banks, and ``get_peft_model_state_dict`` /
``set_peft_model_state_dict`` save and load them: :class:`HoraBanks` is a PEFT ``BaseTunerLayer`` whose
adapter container is ``hora_bank``, so PEFT finds the banks' tensors structurally, as it finds a layer's.

It also brackets every forward of the model (a forward pre-hook and an always-called forward hook on the
model's root): with autograd on, each bank generates the head factors of all its layers once per forward
(:meth:`FactorBank.enter_forward`). The hooks find the banks of the module they are called on, so a copy of
the model runs its own banks: ``nn.DataParallel``'s per-device replica (a shallow copy whose layers would still
hold the original banks on the first device) rebinds its layers to its own banks as its forward starts.
A PeftModel saves the banks as ``base_model.model.hora.hora_bank.<tensor>``; adapters saved before the banks
moved here name them ``base_model.hora_bank.<tensor>`` and still load (:func:`legacy_key`).
"""

from __future__ import annotations

from typing import Any

from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn

from .generator import FactorBank
from .layer import HoraLayer
from .shape_check import check_adapter_shapes

ATTRIBUTE = "hora"  # model.hora: the HoraBanks of a model (no "hora_" in the name: PEFT skips such keys)
_LEGACY_PREFIX = "base_model.hora_bank."  # where adapters saved before the banks moved here keep them
_PREFIX = f"base_model.model.{ATTRIBUTE}.hora_bank."


class HoraBanks(nn.Module, BaseTunerLayer):
    """The banks of all HoRA adapters of one model, keyed by adapter name (``hora_bank``).

    As a ``BaseTunerLayer`` it follows PEFT's adapter life cycle (set_adapter, enable/disable, delete_adapter,
    requires_grad); it has no base layer (no weight, no bias, in/out features None) and nothing to merge (the
    layers merge their updates).
    """

    adapter_layer_names = ("hora_bank",)
    other_param_names = ()
    in_features = out_features = None  # PEFT reads these of every tuner layer; the banks are no layer

    @property
    def weight(self) -> None:  # BaseTunerLayer's reads the base layer's weight: the banks have none
        raise AttributeError("HoraBanks has no base layer, hence no weight")

    @property
    def bias(self) -> None:
        raise AttributeError("HoraBanks has no base layer, hence no bias")

    def __init__(self) -> None:
        super().__init__()
        self.hora_bank = nn.ModuleDict()
        self._disable_adapters = False
        self.merged_adapters: list[str] = []
        self._active_adapter: str | list[str] = []

    @classmethod
    def of(cls, model: nn.Module) -> HoraBanks | None:
        """The banks of ``model``, or None when it has no HoRA adapter."""
        banks = model._modules.get(ATTRIBUTE)
        return banks if isinstance(banks, HoraBanks) else None

    @classmethod
    def attach(cls, model: nn.Module) -> HoraBanks:
        """The banks of ``model``, created on first use: registered as ``model.hora``, with the forward hooks
        that bracket the model's forward and a ``load_state_dict`` pre-hook that refuses adapter tensors of
        the wrong shape with one clear line (:func:`hora.tuner.shape_check.check_adapter_shapes`)."""
        banks = cls.of(model)
        if banks is None:
            if hasattr(model, ATTRIBUTE):
                raise AttributeError(
                    f"{type(model).__name__} already has an attribute '{ATTRIBUTE}', where HoRA keeps its banks."
                )
            banks = cls()
            model.add_module(ATTRIBUTE, banks)
            model.register_forward_pre_hook(_enter_forward)
            model.register_forward_hook(_exit_forward, always_call=True)
            model.register_load_state_dict_pre_hook(check_adapter_shapes)
        return banks

    @classmethod
    def detach(cls, model: nn.Module) -> None:
        """Remove the banks and their hooks from ``model`` (unload)."""
        banks = cls.of(model)
        if banks is None:
            return
        for hooks in (model._forward_pre_hooks, model._forward_hooks):
            for key in [k for k, hook in hooks.items() if hook in (_enter_forward, _exit_forward)]:
                del hooks[key]
                model._forward_hooks_always_called.pop(key, None)
        for key in [k for k, hook in model._load_state_dict_pre_hooks.items()
                    if getattr(hook, "hook", None) is check_adapter_shapes]:
            del model._load_state_dict_pre_hooks[key]
        delattr(model, ATTRIBUTE)

    def forward(self, x: Any) -> Any:
        """The identity: a model that runs its children in order (an ``nn.Sequential`` root) runs this one
        last, and its output passes unchanged."""
        return x

    def enter_forward(self, model: nn.Module) -> None:
        """Start of a forward of ``model`` (whose banks these are): every bank starts its forward; in a replica
        made by ``nn.DataParallel`` the layers are first pointed at the replica's banks (:meth:`bind_layers`)."""
        if getattr(self, "_is_replica", False):  # torch sets it on every module of a DataParallel replica
            self.bind_layers(model)
        for bank in self.hora_bank.values():
            bank.enter_forward()

    def exit_forward(self) -> None:
        for bank in self.hora_bank.values():
            bank.exit_forward()

    def bind_layers(self, model: nn.Module) -> None:
        """Point every HoRA layer of ``model`` at these banks. A DataParallel replica is a shallow copy made at
        each forward: its layers share the original's bank mapping, whose banks (seeds and generators) live on
        the first device and would receive no broadcast copy; the replica's own banks hold its device's copy."""
        for bank in self.hora_bank.values():
            bank.clear_cache()  # a replica starts with a copy of the original's attributes, its cache included
        for module in model.modules():
            if isinstance(module, HoraLayer):
                module.use_banks(self.hora_bank)

    def add(self, adapter_name: str, bank: FactorBank, active_adapters: list[str]) -> None:
        """Hold a new adapter's bank (its trainability is the caller's) and record the model's active adapters,
        which ``enable_adapters(True)`` makes trainable again after a ``disable_adapter()`` block."""
        self.hora_bank[adapter_name] = bank
        self._active_adapter = list(active_adapters)

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """Nothing to merge: a bank only generates factors; the layers merge their updates."""

    def unmerge(self) -> None:
        """Nothing to unmerge (see :meth:`merge`)."""

    def _move_adapter_to_device_of_base_layer(self, adapter_name: str, device: object = None) -> None:
        """PEFT moves each tuner layer's adapter to its base layer's device; the banks have no base layer and
        are placed by :func:`hora.tuner.placement.place_bank` (on the adapted layers' device)."""


def _enter_forward(model: nn.Module, args: Any) -> None:
    """Forward pre-hook of a model with HoRA banks: start the forward of the banks of the module called (the
    model itself, a deep copy or a DataParallel replica of it)."""
    banks = HoraBanks.of(model)
    if banks is not None:
        banks.enter_forward(model)


def _exit_forward(model: nn.Module, args: Any, output: Any) -> None:
    """Forward hook (always called, errors included) that ends what :func:`_enter_forward` started."""
    banks = HoraBanks.of(model)
    if banks is not None:
        banks.exit_forward()


def legacy_key(key: str) -> str:
    """The current checkpoint key of a key saved before the banks moved onto the model:
    ``base_model.hora_bank.X`` -> ``base_model.model.hora.hora_bank.X``; other keys unchanged."""
    return _PREFIX + key[len(_LEGACY_PREFIX):] if key.startswith(_LEGACY_PREFIX) else key
