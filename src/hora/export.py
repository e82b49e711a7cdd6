"""Exact export of a HoRA adapter to a standard PEFT LoRA adapter.

Each adapted module's update is dW = s B A with B (d_out x r) and A (r x d_in) — a rank-r LoRA. The bank
folds s into the generated factor, so the export writes PEFT LoRA factors lora_B = s B_head (or
lora_A = s A_head for o), the free factor unchanged, and lora_alpha = r (LoRA scaling 1). PEFT's LoRA
then computes bit-for-bit the same products: no SVD, no approximation. An ``nn.MultiheadAttention`` is one
PEFT-LoRA target (factors on its packed in_proj and on its out_proj, :func:`hora.tuner.mha.lora_factors`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model_state_dict

from .io import atomic_save_safetensors, atomic_write_json
from .tuner.mha import HoraMultiheadAttention, lora_factors
from .tuner.model import HoraModel, hora_tuner, iter_hora_layers

LORA_WEIGHTS_NAME = "adapter_model.safetensors"
LORA_CONFIG_NAME = "adapter_config.json"


@torch.no_grad()
def lora_state_dict(model: PeftModel | HoraModel, adapter_name: str = "default") -> dict[str, torch.Tensor]:
    """PEFT-LoRA checkpoint tensors (keys ``base_model.model.<module>.lora_{A,B}.weight``) of one adapter,
    plus the adapter's other saved modules (modules_to_save), in the adapter's dtype."""
    tuner = hora_tuner(model)
    if adapter_name not in tuner.hora_bank:
        raise ValueError(f"No HoRA adapter named '{adapter_name}'; available: {sorted(tuner.hora_bank)}.")
    tensors = {}
    for name, (lora_A, lora_B) in _lora_modules(tuner, adapter_name).items():
        tensors[f"base_model.model.{name}.lora_A.weight"] = lora_A
        tensors[f"base_model.model.{name}.lora_B.weight"] = lora_B
    if isinstance(model, PeftModel):
        # embeddings are never HoRA targets; "auto" would look the base model's name up to check for a resized
        # vocabulary (on the Hub, or with a warning offline)
        saved = get_peft_model_state_dict(model, adapter_name=adapter_name, save_embedding_layers=False)
        tensors.update({k: v for k, v in saved.items() if f".{HoraModel.prefix}" not in k})
    return tensors


def _lora_modules(tuner: HoraModel, adapter_name: str) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """PEFT-LoRA module name -> (lora_A, lora_B) of one adapter: each HoRA layer's factors, except that an
    adapted ``nn.MultiheadAttention`` is one LoRA target (:func:`hora.tuner.mha.lora_factors`)."""
    r = tuner.peft_config[adapter_name].r
    modules = {}
    attentions = [(name, m) for name, m in tuner.model.named_modules() if isinstance(m, HoraMultiheadAttention)]
    for name, wrapper in attentions:
        if any(adapter_name in layer.hora_plans for layer in wrapper.adapted().values()):
            modules.update(lora_factors(name, wrapper, adapter_name, r))
    for name, layer in iter_hora_layers(tuner.model):
        if adapter_name in layer.hora_plans and not any(name.startswith(f"{a}.") for a, _ in attentions):
            modules[name] = layer.exact_factors(adapter_name)
    return modules


def lora_config(model: PeftModel | HoraModel, adapter_name: str = "default") -> LoraConfig:
    """The LoraConfig under which :func:`lora_state_dict` reproduces the HoRA adapter exactly."""
    tuner = hora_tuner(model)
    config = tuner.peft_config[adapter_name]
    layers = [(name, layer) for name, layer in iter_hora_layers(tuner.model) if adapter_name in layer.hora_plans]
    # a LoRA target per HoRA layer, but one per nn.MultiheadAttention (its out_proj LoRA is created by PEFT)
    targets = {name for name in _lora_modules(tuner, adapter_name) if not name.endswith(".base_layer.out_proj")}
    return LoraConfig(
        r=config.r,
        lora_alpha=config.r,
        lora_dropout=config.dropout,
        target_modules=sorted(targets),
        fan_in_fan_out=any(layer.fan_in_fan_out for _, layer in layers),
        # PEFT appends the task's head names each time a model is wrapped: list each module once
        modules_to_save=list(dict.fromkeys(config.modules_to_save)) if config.modules_to_save else None,
        task_type=config.task_type,
        base_model_name_or_path=config.base_model_name_or_path,
        revision=config.revision,
        inference_mode=True,
    )


def export_lora(model: PeftModel | HoraModel, out_dir: str | Path, adapter_name: str = "default") -> Path:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` of an equivalent PEFT LoRA adapter.

    Load it with ``PeftModel.from_pretrained(base_model, out_dir)``. Files are written atomically.
    """
    out_dir = Path(out_dir)
    tensors = lora_state_dict(model, adapter_name)
    config = lora_config(model, adapter_name).to_dict()
    config["peft_type"] = "LORA"
    config["task_type"] = config["task_type"].value if hasattr(config["task_type"], "value") else config["task_type"]
    config["target_modules"] = sorted(config["target_modules"])
    atomic_save_safetensors(out_dir / LORA_WEIGHTS_NAME, tensors)
    atomic_write_json(out_dir / LORA_CONFIG_NAME, config)
    return out_dir
