"""Strict loading of HoRA adapters from strangers: JSON and safetensors only, every defect a clear error.

``PeftModel.from_pretrained`` works for HoRA adapters as for any PEFT method; :func:`load_adapter` wraps it
with checks that name the problem and what to do: a missing or non-JSON config, another PEFT type, unknown
fields or wrong types, a truncated or corrupt weights file, tensors that do not belong to HoRA, or an
adapter trained for a base model of another shape. Nothing is executed from the adapter folder (no pickle,
no remote code).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import peft
from safetensors import SafetensorError, safe_open
from torch import nn

from .registration import register
from .tuner.config import PEFT_TYPE, HoraConfig
from .tuner.shape_check import AdapterShapeError

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"


class AdapterLoadError(ValueError):
    """An adapter folder cannot be loaded; the message says why and what to do."""


def read_adapter_config(folder: str | Path) -> HoraConfig:
    """Parse and validate ``adapter_config.json`` of a HoRA adapter folder."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise AdapterLoadError(f"{path} does not exist; an adapter folder holds {CONFIG_NAME} and {WEIGHTS_NAME}.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AdapterLoadError(f"{path} is not valid UTF-8 JSON ({error}); re-save the adapter.") from error
    if not isinstance(data, dict):
        raise AdapterLoadError(f"{path} must hold a JSON object, found {type(data).__name__}.")
    if data.get("peft_type") != PEFT_TYPE:
        raise AdapterLoadError(
            f"{path} is a {data.get('peft_type')!r} adapter, not HoRA; load it with peft.PeftModel.from_pretrained."
        )
    known = {f.name for f in dataclasses.fields(HoraConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise AdapterLoadError(f"{path} has unknown fields {unknown}; it was written by another tool or version.")
    _check_types(data, path)
    try:
        return HoraConfig(**{k: v for k, v in data.items() if k != "peft_type"})
    except (TypeError, ValueError) as error:
        raise AdapterLoadError(f"{path}: {error}") from error


def _check_types(data: dict, path: Path) -> None:
    expected = {
        "r": int, "alpha": (int, float), "use_rslora": bool, "dropout": (int, float), "hidden": (int, type(None)),
        "activation": str, "scope": str, "generator": str, "residual": bool, "w2_init": str,
        "joint_free_factor": bool, "init_weights": bool, "projections": list, "head_mixing": bool,
        "embedding_dim": (int, type(None)), "generator_gain": (int, float), "generator_lr_ratio": (int, float),
        "target_modules": (list, str, type(None)), "head_layout": (dict, type(None)),
    }
    for name, types in expected.items():
        if name not in data:
            continue
        value = data[name]
        wrong_bool = isinstance(value, bool) and types in (int, (int, float), (int, type(None)))
        if wrong_bool or not isinstance(value, types):
            raise AdapterLoadError(f"{path}: field {name!r} has the wrong type ({value!r}).")


def check_weights_file(folder: str | Path) -> list[str]:
    """Open ``adapter_model.safetensors`` without loading it; return its keys or raise a clear error."""
    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        raise AdapterLoadError(f"{path} does not exist; HoRA loads adapter weights from safetensors only.")
    try:
        with safe_open(str(path), framework="pt") as handle:
            keys = list(handle.keys())
            for key in keys:
                handle.get_slice(key).get_shape()
    except (SafetensorError, OSError, ValueError) as error:
        raise AdapterLoadError(f"{path} is truncated or corrupt ({error}); re-save or re-download it.") from error
    if not any(".hora_" in key or "hora_bank." in key for key in keys):
        raise AdapterLoadError(f"{path} holds no HoRA tensors; is it a HoRA adapter?")
    return keys


def load_adapter(base_model: nn.Module, folder: str | Path, adapter_name: str = "default",
                 is_trainable: bool = False) -> peft.PeftModel:
    """Validate an adapter folder, then load it onto ``base_model`` with PEFT.

    Raises:
        AdapterLoadError: the folder is incomplete, corrupt, not HoRA, or made for another base model.
    """
    register()  # HoRA in PEFT's mapping tables, so PeftModel.from_pretrained reads the config

    read_adapter_config(folder)
    file_keys = set(check_weights_file(folder))
    try:
        model = peft.PeftModel.from_pretrained(base_model, str(folder), adapter_name=adapter_name,
                                               is_trainable=is_trainable)
    except AdapterShapeError as error:
        raise AdapterLoadError(f"The adapter in {folder} was trained for a base model of another shape. {error}") \
            from error
    # HoRA adapts attention projections, never embeddings: with PEFT's default ("auto") this would look the
    # base model's name up (on the Hub, or warn offline) to learn whether the vocabulary was resized
    model_keys = set(peft.get_peft_model_state_dict(model, adapter_name=adapter_name, save_embedding_layers=False))
    if model_keys != file_keys:
        missing, unexpected = sorted(model_keys - file_keys), sorted(file_keys - model_keys)
        raise AdapterLoadError(
            f"The adapter in {folder} does not fit this base model: {len(missing)} adapter tensors missing "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}). Load it onto the base "
            "model it was trained for."
        )
    return model
