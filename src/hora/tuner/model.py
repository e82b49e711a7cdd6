"""HoraModel: the PEFT tuner that injects HoRA layers and builds the per-adapter head-factor banks (kept on the
model, :mod:`hora.tuner.banks`)."""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from accelerate import init_empty_weights
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer, check_target_module_exists
from torch import nn
from transformers.pytorch_utils import Conv1D

from .banks import HoraBanks, legacy_key
from .config import HoraConfig
from .forms import build_bank
from .generator import BankLayout, ModulePlan, SeedSlot
from .heads import HeadLayoutError, discover_layout, find_attention_targets, layer_key, weight_dims
from .layer import HoraLayer, layer_options
from .mha import adapt_multihead_attention, is_multihead_attention
from .placement import place_bank, rebuild_plans_after_load
from .quantized import quantization_backend


class HoraModel(BaseTuner):
    """Creates a HoRA model from a pretrained transformers model (use ``peft.get_peft_model``).

    Besides replacing the target projections by :class:`HoraLayer` (and an ``nn.MultiheadAttention`` by
    :class:`~hora.tuner.mha.HoraMultiheadAttention`), it builds one bank per adapter, of its generator form
    (:mod:`hora.tuner.forms`; ``self.hora_bank[adapter]``), holding the seeds and generators of all adapted layers.
    The banks live on the model (:class:`~hora.tuner.banks.HoraBanks`, ``model.hora``), which brackets every
    top-level forward so that each bank generates all head factors once per forward while training and
    caches them in evaluation; so ``peft.inject_adapter_in_model`` works too (no state on the tuner).
    """

    prefix: str = "hora_"
    tuner_layer_cls = HoraLayer
    target_module_mapping: dict[str, list[str]] = {}
    uses_shared_state: bool = False  # the banks live on the model (hora.tuner.banks), not on the tuner

    @property
    def hora_bank(self) -> nn.ModuleDict:
        """adapter -> bank, held by the model's :class:`HoraBanks` (empty before the first injection)."""
        banks = HoraBanks.of(self.model)
        return banks.hora_bank if banks is not None else nn.ModuleDict()

    def _prepare_adapter_config(self, peft_config: HoraConfig, model_config: dict) -> HoraConfig:
        if peft_config.modules_to_save:
            # PeftModelForSequenceClassification appends its own head names ("classifier", "score") to the list
            # given, so a head named in both would be listed twice in adapter_config.json; keep each name once
            peft_config.modules_to_save = list(dict.fromkeys(peft_config.modules_to_save))
        if peft_config.target_modules is None:
            names = find_attention_targets(self.model, peft_config.projections)
            if peft_config.layers_to_transform is not None:
                # PEFT applies layers_to_transform to suffix matches only, so filter the full names here
                probe = copy.copy(peft_config)
                probe.target_modules = {name.rpartition(".")[2] for name in names}
                names = [name for name in names if check_target_module_exists(probe, name)]
            peft_config.target_modules = set(names)
        return peft_config

    def _create_and_replace(
        self,
        config: HoraConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        **optional_kwargs: Any,
    ) -> None:
        if is_multihead_attention(target):
            adapt_multihead_attention(self, config, adapter_name, target, target_name, parent, current_key)
            return
        if isinstance(parent, nn.MultiheadAttention):
            raise TypeError(
                f"'{current_key}' is a projection inside a torch.nn.MultiheadAttention, whose forward reads its "
                f"weight directly: target the attention module '{current_key.rpartition('.')[0]}' itself and "
                "choose its projections with HoraConfig(projections=[...]) (e.g. ['q', 'k', 'v', 'o'])."
            )
        base = target.get_base_layer() if isinstance(target, BaseTunerLayer) else target
        quantization_backend(base, current_key)  # refuses quantized layers HoRA cannot merge into
        if not isinstance(base, (nn.Linear, Conv1D)):
            raise TypeError(
                f"HoRA adapts nn.Linear and transformers Conv1D layers; '{current_key}' is a "
                f"{type(base).__name__}. Remove it from target_modules."
            )
        layout = discover_layout(current_key, base, getattr(self.model, "config", None), config.head_layout,
                                 attention=parent)
        _check_rank(config.r, base, current_key)
        args = layer_options(config)
        if isinstance(target, HoraLayer):
            target.add_adapter(adapter_name, layout, current_key, args)
            return
        new_module = HoraLayer(target, adapter_name, layout, **args)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    def inject_adapter(self, model: nn.Module, adapter_name: str, *args: Any, **kwargs: Any) -> None:
        """Inject the layers (PEFT), then build the adapter's bank from the injected layers."""
        # PEFT's rule: an injection leaves existing adapters' trainability alone; _mark_only_adapters_as_trainable
        # (run inside it) sets the banks by the active adapter, so restore theirs here
        existing = [(p, p.requires_grad) for p in self.hora_bank.parameters()]
        super().inject_adapter(model, adapter_name, *args, **kwargs)
        for parameter, requires_grad in existing:
            parameter.requires_grad = requires_grad
        self._build_bank(model, adapter_name, low_cpu_mem_usage=kwargs.get("low_cpu_mem_usage", False))

    def _build_bank(self, model: nn.Module, adapter_name: str, low_cpu_mem_usage: bool = False) -> None:
        config: HoraConfig = self.peft_config[adapter_name]
        layers = [
            (name, module) for name, module in model.named_modules()
            if isinstance(module, HoraLayer) and adapter_name in module.hora_r
        ]
        if not layers:
            raise ValueError(f"No module was adapted for adapter '{adapter_name}'; check target_modules.")
        head_dims = {module.layout.head_dim for _, module in layers}
        if len(head_dims) > 1:
            raise HeadLayoutError(f"All adapted modules must share one head_dim, found {sorted(head_dims)}.")
        heads: dict[str, int] = {}
        counts: dict[str, int] = {}
        bodies: dict[str, int] = {}
        shared_free: dict[str, int] = {}
        shared_free_dims: set[int] = set()
        plans = []
        joint = config.generator == "joint"
        for name, module in layers:
            body_key = layer_key(name) if config.scope == "layer" else name
            body = bodies.setdefault(body_key, len(bodies))
            slots = []
            for section in module.layout.sections:
                p = section.projection
                if heads.setdefault(p, section.num_heads) != section.num_heads:
                    raise HeadLayoutError(
                        f"'{name}' has {section.num_heads} {p}-heads but other modules have {heads[p]}."
                    )
                slots.append(SeedSlot(p, counts.get(p, 0), section.num_heads))
                counts[p] = counts.get(p, 0) + 1
            free_index = None
            if adapter_name in module.hora_mix or joint:
                free_index = shared_free.setdefault(layer_key(name), len(shared_free))
                shared_free_dims.add(module.in_features if module.layout.side == "out" else module.out_features)
            if joint:
                plans.append(ModulePlan(name, body, tuple(slots), None, free=len(plans)))
            else:
                plans.append(ModulePlan(name, body, tuple(slots), free_index))
        if len(shared_free_dims) > 1:
            raise HeadLayoutError(
                f"{'generator=joint' if joint else 'joint_free_factor'} shares one free seed per layer, so every "
                f"adapted module's free side (input of q/k/v, output of o) must have one size; found "
                f"{sorted(shared_free_dims)}. Adapt fewer projections (e.g. projections=['q', 'v'])."
            )
        layout = BankLayout(head_dims.pop(), heads, counts, len(bodies), tuple(plans),
                            shared_free_dims.pop() if shared_free_dims else None, len(shared_free))
        with init_empty_weights() if low_cpu_mem_usage else contextlib.nullcontext():  # meta, as PEFT's LoRA
            bank = build_bank(config, layout)
        bank.set_plans(plans)
        bank.register_load_state_dict_post_hook(rebuild_plans_after_load(plans))
        place_bank(bank, layers[0][1].get_base_layer().weight, autocast_adapter_dtype=False)
        if adapter_name not in self.active_adapters or config.inference_mode:
            bank.requires_grad_(False)
        # created after PEFT's first injection (which freezes the base model only if it finds no tuner layer yet)
        HoraBanks.attach(model).add(adapter_name, bank, self.active_adapters)
        for plan, (_, module) in zip(plans, layers, strict=True):
            module.attach(adapter_name, bank, plan)

    @contextlib.contextmanager
    def _enable_peft_forward_hooks(self, *args: Any, **kwargs: Any) -> Iterator[None]:
        """PeftModel.forward/generate call this with their kwargs: refuse PEFT's mixed adapter batches (which
        PEFT would otherwise drop silently for a tuner without support, running every row with the active
        adapter)."""
        if kwargs.get("adapter_names") is not None:
            raise ValueError(
                "Cannot pass `adapter_names` to a HoRA model: HoRA does not support mixed adapter batches. Run "
                "each adapter's rows in their own forward after `model.set_adapter(name)`, or export each adapter "
                "to LoRA (hora.export_lora), which supports them."
            )
        if kwargs.get("alora_offsets") is not None:
            raise ValueError("Cannot pass `alora_offsets` to a HoRA model: it is an activated-LoRA (aLoRA) option.")
        yield

    def _cast_adapter_dtype(self, adapter_name: str, autocast_adapter_dtype: bool = True) -> None:
        """PEFT's rule for the layers' factors (upcast float16/bfloat16 to float32 when
        ``autocast_adapter_dtype``), and the same device and dtype for the adapter's bank."""
        super()._cast_adapter_dtype(adapter_name, autocast_adapter_dtype=autocast_adapter_dtype)
        bank = self.hora_bank[adapter_name] if adapter_name in self.hora_bank else None
        layers = [m for _, m in iter_hora_layers(self.model) if adapter_name in m.hora_plans]
        if bank is not None and layers:
            place_bank(bank, layers[0].get_base_layer().weight, autocast_adapter_dtype)

    def _mark_only_adapters_as_trainable(self, model: nn.Module) -> None:
        super()._mark_only_adapters_as_trainable(model)
        if (banks := HoraBanks.of(model)) is not None:  # the active banks train, as the active layers
            banks.set_adapter(self.active_adapters)

    def set_adapter(self, adapter_name: str | list[str], inference_mode: bool = False) -> None:
        super().set_adapter(adapter_name, inference_mode=inference_mode)
        if (banks := HoraBanks.of(self.model)) is not None:
            banks.set_adapter(adapter_name, inference_mode=inference_mode)

    def set_requires_grad(self, adapter_names: str | Sequence[str], requires_grad: bool = True) -> None:
        super().set_requires_grad(adapter_names, requires_grad)
        names = {adapter_names} if isinstance(adapter_names, str) else set(adapter_names)
        for name in names & set(self.hora_bank):
            self.hora_bank[name].requires_grad_(requires_grad)

    def delete_adapter(self, adapter_name: str) -> None:
        super().delete_adapter(adapter_name)
        HoraBanks.of(self.model).delete_adapter(adapter_name)

    def _replace_module(self, parent: nn.Module, child_name: str, new_module: nn.Module, child: nn.Module) -> None:
        """Swap a module in place; HoRA layers are created on their base weight's device already."""
        setattr(parent, child_name, new_module)

    def _unload_and_optionally_merge(self, *args: Any, **kwargs: Any) -> nn.Module:
        model = super()._unload_and_optionally_merge(*args, **kwargs)
        HoraBanks.detach(model)
        return model

    @classmethod
    def _remove_adapter_name_from_key(cls, key: str, adapter_name: str) -> str:
        """Checkpoint keys carry no adapter name: ``hora_bank.<adapter>.seeds.q`` -> ``hora_bank.seeds.q``."""
        marker = f"hora_bank.{adapter_name}."
        if marker in key:
            return key.replace(marker, "hora_bank.", 1)
        return super()._remove_adapter_name_from_key(key, adapter_name)

    @classmethod
    def _remap_adapter_state_dict_for_load(cls, model: nn.Module, config: HoraConfig, adapter_name: str,
                                           state_dict: dict) -> dict:
        """Adapters saved before the banks moved onto the model keep them under ``base_model.hora_bank.``:
        rename those keys to the banks' place (:func:`hora.tuner.banks.legacy_key`), then PEFT's mapping."""
        state_dict = {legacy_key(key): value for key, value in state_dict.items()}
        return super()._remap_adapter_state_dict_for_load(model, config, adapter_name, state_dict)


def _check_rank(r: int, layer: nn.Module, name: str) -> None:
    """r > min(d_in, d_out) is accepted, as by PEFT's LoRA (the update is valid, its rank is simply at most
    min(d_in, d_out)), with a warning: the extra rank costs parameters and buys nothing."""
    limit = min(weight_dims(layer))  # from the module: a 4-bit layer's packed weight has another shape
    if r > limit:
        warnings.warn(
            f"r={r} exceeds min(d_in, d_out) = {limit} of '{name}': its update has rank at most {limit}, and the "
            f"extra rank only adds parameters; r <= {limit} gives the same expressivity.",
            UserWarning,
            stacklevel=3,
        )


def iter_hora_layers(model: nn.Module) -> list[tuple[str, HoraLayer]]:
    """(name, layer) of every HoRA layer of a model."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, HoraLayer)]


def find_hora_tuner(model: nn.Module) -> HoraModel | None:
    """The HoraModel (the PEFT tuner that owns the banks) of ``model``: ``model`` itself, a PeftModel's
    ``base_model``, or the first HoraModel among the submodules of any other wrapper; None when the model
    has no HoRA adapter (e.g. a PEFT LoRA model)."""
    return next((m for m in model.modules() if isinstance(m, HoraModel)), None)


def hora_tuner(model: nn.Module) -> HoraModel:
    """:func:`find_hora_tuner`, for callers that need a HoRA model: raises TypeError when there is none."""
    tuner = find_hora_tuner(model)
    if tuner is None:
        raise TypeError(f"Expected a HoRA PeftModel, got {type(model).__name__}.")
    return tuner
