"""``--load-in-4bit`` / ``--load-in-8bit``: a decoder's linear layers quantized by bitsandbytes (QLoRA).

The recipe is QLoRA's: 4-bit NormalFloat (nf4) weights with double quantisation (the per-block scales are
themselves quantized to 8 bits), computing in bfloat16 on CUDA (float32 on CPU, where bitsandbytes also
runs these layers); or LLM.int8() 8-bit weights. The adapter stays in float32, and
``peft.prepare_model_for_kbit_training`` readies the model (float32 norms/embeddings, gradient
checkpointing, input gradients). A new classification head is kept out of quantisation (it is trained).

Offered for decoders (the built-in smollm2, or a causal-LM folder): the harness's encoders and ViT are small
enough not to need it, and are refused with a clear error. HoRA's merging and export on such a base are
:mod:`hora.tuner.quantized`'s.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

from hora.experiments.errors import HoraError
from hora.experiments.models import catalogue

BITS = {"load_in_4bit": "4bit", "load_in_8bit": "8bit"}  # the TrainConfig fields and what each one asks for


def quantization_of(settings: Mapping[str, Any]) -> str | None:
    """"4bit", "8bit" or None from a run's settings (a TrainConfig as a dict, or a metrics.json's); a run
    recorded before the options existed was not quantized."""
    chosen = [bits for name, bits in BITS.items() if settings.get(name)]
    if len(chosen) > 1:
        raise HoraError("--load-in-4bit and --load-in-8bit exclude each other: choose one")
    return chosen[0] if chosen else None


def check(settings: Mapping[str, Any]) -> None:
    """Refuse quantisation where it cannot work: without bitsandbytes, for full fine-tuning (quantized weights
    do not train), for DoRA on 8 bits without CUDA, and for models that are not decoders."""
    bits = quantization_of(settings)
    if bits is None:
        return
    option = f"--load-in-{bits}"
    if importlib.util.find_spec("bitsandbytes") is None:
        raise HoraError(f"{option} quantizes through bitsandbytes: pip install 'hora[quant]'")
    if settings.get("method") == "full":
        raise HoraError(f"{option}: full fine-tuning cannot train quantized weights; use an adapter method "
                        "(hora, lora, ...)")
    if bits == "8bit" and settings.get("method") == "dora" and not _cuda():
        # PEFT 0.21's DoRA on bitsandbytes' CPU int8 layer fails in its first forward (MatMul8bitLt finds no
        # scales: 'NoneType' object has no attribute 'unsqueeze'), with plain PEFT as well as here
        raise HoraError("--load-in-8bit: PEFT's DoRA fails on bitsandbytes' 8-bit layers without CUDA; use "
                        "--load-in-4bit, or another method (hora, lora, ...)")
    model = settings.get("model")
    use = "use --model smollm2 or a local causal-LM folder"
    if model is None:
        raise HoraError(f"{option} is offered for decoders, and the default model is not one: {use}")
    if model in catalogue.MODELS:
        if model not in catalogue.DECODER_MODELS:
            raise HoraError(f"{option} is offered for decoders, and '{model}' is not one: {use}")
    elif catalogue.is_local(model):  # a Hub ID's config is read when the run resolves it (check_model)
        check_model(settings, model, catalogue.read_config(model))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def check_model(settings: Mapping[str, Any], name: str, config: dict) -> None:
    """Refuse quantisation (when ``settings`` ask for it) of a model whose config.json is no causal LM."""
    bits = quantization_of(settings)
    if bits is not None and not catalogue.is_causal_lm(config):
        raise HoraError(f"--load-in-{bits} is offered for decoders, and {name} holds no causal LM (its config.json "
                        "names no ...ForCausalLM architecture): use --model smollm2 or a causal-LM folder or Hub ID")


def bnb_config(bits: str, keep: list[str] | tuple[str, ...] = ()):
    """transformers' ``BitsAndBytesConfig`` for ``bits`` ("4bit": nf4, double quantisation, bfloat16 compute on
    CUDA and float32 on CPU; "8bit": LLM.int8()), leaving the modules named in ``keep`` (a new head) unquantized."""
    import torch
    from transformers import BitsAndBytesConfig

    skip = list(keep) or None
    if bits == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
    compute = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute, llm_int8_skip_modules=skip)


def device_map() -> dict | None:
    """``from_pretrained``'s device_map of a quantized model (bitsandbytes loads it onto a device at once): under a
    launcher with CUDA (torchrun / accelerate launch set ``LOCAL_RANK``), this rank's own GPU, ``{"": LOCAL_RANK}``;
    else None, transformers' choice (the current CUDA device, or the CPU). transformers chooses
    ``torch.cuda.current_device()``, which is GPU 0 on every rank until Trainer sets the rank's device, later."""
    import torch

    rank = os.environ.get("LOCAL_RANK")
    if rank is None or not torch.cuda.is_available():
        return None
    return {"": int(rank)}


def prepare(model):
    """``peft.prepare_model_for_kbit_training``: float32 for the unquantized parameters, gradient checkpointing
    (non-reentrant) and gradients at the inputs, as the QLoRA recipe trains."""
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, gradient_checkpointing_kwargs={"use_reentrant": False})
