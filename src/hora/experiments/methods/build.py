"""The adapted model for each method: HoRA, and the baselines straight from PEFT.

``hora``  ``hora.HoraConfig`` (this library)
``lora``  ``peft.LoraConfig``
``dora``  ``peft.LoraConfig(use_dora=True)``
``vera``  ``peft.VeraConfig`` (same rank as the others; VeRA's own papers use far larger ranks)
``full``  full fine-tuning, every weight trainable
any other PEFT method, by name (``loha``, ``lokr``, ``ia3``, ...) or as an adapter config path: its PEFT config
          class (:mod:`hora.experiments.methods.peft_methods`, which says what each takes and ignores)

Every adapter method targets exactly the same modules, the attention projections found by
``hora.find_attention_targets`` (default q and v), and trains and saves the classification head
(``modules_to_save``); for ``--objective sft`` (a causal LM that generates its answer) there is no new head and
the task type is ``CAUSAL_LM``. Nothing here re-implements a baseline.
"""

from __future__ import annotations

import json
from pathlib import Path

from hora.experiments.errors import HoraError
from hora.experiments.methods import named_variants, peft_methods
from hora.experiments.models import loaders
from hora.tuner.projections import PROJECTIONS

METHODS = ("hora", "lora", "dora", "vera", "full")
# Defaults when no --lr is given, chosen for a few hundred steps of Adam on a small encoder.
# They are reasonable starting points, not tuned per method: pass --lrs to compare to choose on validation.
# Another PEFT method starts at PEFT_LR, IA3 (it trains scaling vectors only, as VeRA) at 1e-2.
DEFAULT_LR = {"hora": 1e-3, "lora": 1e-3, "dora": 1e-3, "vera": 1e-2, "full": 5e-5, "ia3": 1e-2}
PEFT_LR = 1e-3


def check_method(method: str, epochs: float | None = None) -> str:
    """A method, a named variant of one (see :mod:`hora.experiments.methods.named_variants`) or a PEFT method (by name
    or config path) that can run with ``epochs``."""
    variant = named_variants.resolve(method)
    if variant.peft is not None:
        peft_methods.check_run(variant.peft, epochs)
    return method


def default_lr(method: str) -> float:
    """The default learning rate of a method or variant (that of its base method)."""
    variant = named_variants.resolve(method)
    if variant.peft is not None:
        return DEFAULT_LR.get(variant.peft.name, PEFT_LR)
    return DEFAULT_LR[variant.method]


def method_label(method: str) -> str:
    """What results call ``method``: itself, or for a PEFT adapter config path its folder's name."""
    peft = named_variants.resolve(method).peft
    return peft.label if peft is not None else method


def parse_projections(targets: str | None) -> tuple[str, ...]:
    """'q,v' -> ('q', 'v'); validates against :data:`hora.tuner.projections.PROJECTIONS` (q, k, v, o)."""
    if targets is None or targets == "":
        return ("q", "v")
    projs = tuple(t.strip().lower() for t in targets.split(",") if t.strip())
    bad = [p for p in projs if p not in PROJECTIONS]
    if bad or not projs:
        raise HoraError(f"unknown projection(s) {','.join(bad) or targets!r}: "
                        f"use a comma list of {','.join(PROJECTIONS)}")
    return projs


def available() -> list[tuple[str, str]]:
    """(name, what it is) for every method ``--methods`` accepts by name: the harness's own and its named variants,
    every other PEFT method (what it takes of r, alpha and dropout), then PEFT's types that are refused, and why."""
    import hora  # noqa: F401  (HoRA in PEFT's table: a HORA adapter config is accepted as a path)

    rows = [(name, v.description) for name, v in named_variants.VARIANTS.items()]
    rows += [(name, "PEFT " + peft_methods.describe(name, cls)) for name, cls in peft_methods.supported().items()]
    rows += [(name, f"refused: {reason}") for name, cls in peft_methods.config_classes().items()
             if name not in peft_methods.OWN and (reason := peft_methods.refusal(name, cls)) is not None]
    return rows


def attention_targets(model, projections: tuple[str, ...] = ("q", "v")) -> list[str]:
    """Full module names of the attention projections, as HoRA itself would adapt them."""
    import hora

    try:
        targets = list(hora.find_attention_targets(model, projections=projections))
    except HoraError:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise HoraError(f"cannot find attention projections {projections} in {type(model).__name__}: {exc}") \
            from None
    if not targets:
        raise HoraError(f"no attention projections {projections} found in {type(model).__name__}")
    return targets


def build_adapted_model(method: str, model, *, r: int = 8, alpha: float = 16.0, dropout: float = 0.0,
                        hidden: int | None = None, projections: tuple[str, ...] = ("q", "v"),
                        kind: str = "text", head_modules: list[str] | None = None,
                        hora_options: dict | None = None, objective: str = "classify",
                        total_steps: int | None = None):
    """Wrap ``model`` for ``method``; returns (model, info) with info holding the targets and the Trainer
    ``callbacks`` the method needs.

    ``head_modules``: the classification head's module names, trained fully and saved with the adapter.
    ``objective``: "classify" (PEFT task type SEQ_CLS for text) or "sft" (CAUSAL_LM).
    ``total_steps``: the run's optimiser steps (AdaLoRA's schedule reads them).
    """
    variant = named_variants.resolve(method)
    method = variant.method
    hora_options = {"hidden": hidden, **variant.options, **(hora_options or {})}
    info: dict = {"method": method, "callbacks": []}
    if method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        info["targets"] = []
        return model, info

    from peft import LoraConfig, VeraConfig, get_peft_model

    import hora  # noqa: F401  (registers the HoRA method with PEFT)

    targets = attention_targets(model, projections)
    info["targets"] = targets
    task_type = "CAUSAL_LM" if objective == "sft" else "SEQ_CLS" if kind == "text" else None
    common = {"target_modules": targets, "modules_to_save": list(head_modules or []) or None,
              "task_type": task_type}
    if variant.peft is not None:  # another PEFT method: its own config class
        cfg = peft_methods.build_config(variant.peft, r=r, alpha=alpha, dropout=dropout, common=common,
                                        total_steps=total_steps)
        info["callbacks"] = peft_methods.callbacks(variant.peft)
        return peft_methods.adapt(variant.peft, model, cfg), info
    elif method == "hora":
        try:
            cfg = hora.HoraConfig(r=r, alpha=alpha, dropout=dropout, **common, **hora_options)
        except ValueError as exc:  # the library's check of a setting the user gave (e.g. --hidden 0)
            raise HoraError(str(exc)) from None
    elif method == "lora":
        if variant.match_hora is not None:
            matched_options = {"hidden": hidden, **named_variants.resolve(variant.match_hora).options}
            r = _rank_matching_hora(model, r, alpha, common, matched_options)
            info["matched_rank"] = r
        cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, **common)
    elif method == "dora":
        cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, use_dora=True, **common)
    else:  # vera
        cfg = VeraConfig(r=r, vera_dropout=dropout, **common)
    return get_peft_model(model, cfg), info


def _rank_matching_hora(model, r: int, alpha: float, common: dict, hora_options: dict) -> int:
    """The smallest LoRA rank whose adapter has at least as many parameters as HoRA with ``hora_options`` at
    rank r."""
    import copy

    import peft

    import hora

    probe = peft.get_peft_model(copy.deepcopy(model), hora.HoraConfig(r=r, alpha=alpha, **common, **hora_options))
    report = hora.parameter_report(probe)
    return named_variants.matched_rank(r, report["hora"], report["lora_equivalent"])


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def read_run(adapter_dir: str | Path) -> tuple[dict, str]:
    """The metrics.json of a ``hora train`` folder and the base method of its run (a named variant counts
    as its base method), with a one-line error naming what is missing."""
    adapter_dir = Path(adapter_dir)
    meta_path = adapter_dir / "metrics.json"
    if not adapter_dir.is_dir():
        raise HoraError(f"adapter folder not found: {adapter_dir}")
    if not meta_path.is_file():
        raise HoraError(f"{adapter_dir} has no metrics.json: not a folder written by 'hora train'")
    meta = json.loads(meta_path.read_text())
    method = meta.get("method")
    return meta, named_variants.resolve(method).method if method in named_variants.VARIANTS else str(method)


def load_trained(adapter_dir: str | Path):
    """Rebuild the base model recorded in ``adapter_dir/metrics.json`` and load the adapter onto it.

    Returns (peft_model, metrics).
    """
    adapter_dir = Path(adapter_dir)
    meta, base_method = read_run(adapter_dir)
    if base_method == "full":
        raise HoraError(f"{adapter_dir} holds a '{meta.get('method')}' run, which has no adapter to load")
    if not (adapter_dir / "adapter_config.json").is_file():
        raise HoraError(f"{adapter_dir} has no adapter_config.json (was it trained with --no-save?)")
    from peft import PeftModel

    import hora  # noqa: F401

    base = _base_of_run(meta)
    if base_method == "hora":
        from hora.loading import AdapterLoadError, load_adapter

        try:
            model = load_adapter(base, adapter_dir)  # strict: clear errors for corrupt or foreign adapters
        except AdapterLoadError as error:
            raise HoraError(str(error)) from None
    else:
        model = PeftModel.from_pretrained(base, adapter_dir)
    model.eval()
    return model, meta


def _base_of_run(meta: dict):
    """The base model a finished run (its metrics.json ``meta``) adapted, with a fresh head of its classes."""
    from hora.experiments.models import catalogue, qlora

    revision = meta.get("revision")
    _, ref = catalogue.resolve_model(meta["model"], meta["kind"], revision)
    return loaders.load_model(ref, meta["kind"], meta["label_names"], meta.get("objective", "classify"), revision,
                             bool(meta.get("regression", False)),
                             qlora.quantization_of(meta))  # the base the adapter was trained on


def _input_shape(config) -> tuple[int, int, int]:
    """(channels, height, width) of one image the vision model with ``config`` takes: a transformers ViT's
    ``num_channels`` and ``image_size``, or a timm model's pretrained ``input_size``."""
    pretrained = getattr(config, "pretrained_cfg", None) or {}
    if "input_size" in pretrained:
        return tuple(pretrained["input_size"])
    size = config.image_size
    return (config.num_channels, *(size if isinstance(size, list | tuple) else (size, size)))


def verify_export(model, lora_dir: str | Path, meta: dict) -> float:
    """Max |logit difference| between ``model`` (HoRA) and the exported LoRA on a small probe batch."""
    import torch
    from peft import PeftModel

    from hora.experiments.models import catalogue

    _, ref = catalogue.resolve_model(meta["model"], meta["kind"], meta.get("revision"))
    if meta["kind"] == "text":
        tok = loaders.load_tokenizer(ref, meta.get("revision"))
        batch = dict(tok(["a fine, moving film", "dull and far too long", "it is what it is"],
                         padding=True, return_tensors="pt"))
    else:
        gen = torch.Generator().manual_seed(0)
        batch = {"pixel_values": torch.randn(3, *_input_shape(model.config), generator=gen)}
    base = _base_of_run(meta)
    lora = PeftModel.from_pretrained(base, lora_dir).eval()
    model.eval()
    with torch.no_grad():  # each model takes the batch on its own device (a quantized base loads onto a GPU)
        a = model(**_on_device(batch, model)).logits
        b = lora(**_on_device(batch, lora)).logits
    return float((a.float() - b.float().to(a.device)).abs().max())


def _on_device(batch: dict, model) -> dict:
    """``batch`` on the device of ``model``'s first parameter (its input embedding's, under a device map)."""
    device = next(model.parameters()).device
    return {key: value.to(device) for key, value in batch.items()}


def hora_parameter_report(model: str, *, r: int, alpha: float, hidden: int | None, targets: str) -> tuple[dict, int]:
    """HoRA's :func:`hora.parameter_report` on ``model`` (a known name or a local folder) at these settings,
    and the number of adapted modules."""
    import hora
    from hora.experiments.models import catalogue

    if model in catalogue.MODELS:
        kind = "image" if model in catalogue.IMAGE_MODELS else "text"
    else:
        kind = catalogue.model_kind(catalogue.read_config(catalogue.timm_hub_id(model) or model))
    _, ref = catalogue.resolve_model(model, kind)
    base = loaders.load_base_model(ref, kind, ["0", "1"])
    peft_model, built = build_adapted_model("hora", base, r=r, alpha=alpha, hidden=hidden,
                                            projections=parse_projections(targets), kind=kind)
    return hora.parameter_report(peft_model), len(built["targets"])
