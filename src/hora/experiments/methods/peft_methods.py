"""PEFT's own methods as baselines: any method PEFT registers, by name (``loha``, ``lokr``, ``ia3``, ...), or any PEFT
adapter config given as a path (a folder holding ``adapter_config.json``, e.g. one of PEFT's method_comparison
experiment folders, or the JSON file itself).

A method *name* is the lower-case name of a ``peft.PeftType`` whose config class is in PEFT's own table
(``peft.mapping.PEFT_TYPE_TO_CONFIG_MAPPING``). Its config is that class with PEFT's defaults, except:

    target_modules   the modules HoRA adapts (``hora.find_attention_targets``: q and v by default)
    modules_to_save  the classification head (none with ``--objective sft``), trained and saved as for LoRA
    task_type        SEQ_CLS for text classification, CAUSAL_LM for ``--objective sft``, none for images
    r                our ``--r`` where the config has a field ``r`` (AdaLoRA: its final budget ``target_r``,
                     with ``init_r`` = 1.5 r, PEFT's default ratio 12 : 8; OFT: ``r`` is its number of blocks,
                     with ``oft_block_size`` 0 as in PEFT's own rank-32 OFT experiment)
    alpha            our ``--alpha`` into ``lora_alpha`` or ``alpha`` where the config has one
    dropout          our ``--dropout`` into ``lora_dropout`` or ``<name>_dropout`` where the config has one
                     (LoHa/LoKr/OFT's ``module_dropout`` drops whole modules: a different thing, left at PEFT's 0)
    total_step       AdaLoRA: the run's ``--steps`` (its rank schedule needs them; ``--epochs`` is refused)
    feedforward_modules  IA3: none (HoRA adapts attention projections only)

:func:`describe` says per method which of r, alpha and dropout it takes and which it ignores (``hora methods``).
A config *path* keeps every setting of the file (its rank, its alpha, ...) but ``target_modules`` (and IA3's
``feedforward_modules``), ``modules_to_save`` and ``task_type``, which are the run's as above (and AdaLoRA's
``total_step``); PEFT's own method_comparison experiment folders load as they are. Its results
carry the folder's name (the file's stem when the file is not called ``adapter_config.json``).

Not every PEFT type can be a baseline here; :data:`REFUSED` says why for each one refused, and the
prompt-learning methods (prompt tuning, prefix tuning, P-tuning, ...) are refused as a family: they prepend
virtual tokens and have no adapted modules to match HoRA's. Nothing here imports peft at import time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path

from hora.experiments.errors import HoraError, did_you_mean

CONFIG_NAME = "adapter_config.json"
# the harness's own names keep their meaning (hora, lora, dora, vera in methods.py); PEFT's other types are named here
OWN = frozenset({"hora", "lora", "vera"})
# PEFT types that cannot be a baseline on the attention projections HoRA adapts, and why (one line each)
REFUSED = {
    "adaption_prompt": "it adds gated prompts to Llama-style attention (no adapted projections, no head to train)",
    "ln_tuning": "it tunes LayerNorms, not the attention projections HoRA adapts",
    "trainable_tokens": "it trains token embeddings, not the attention projections HoRA adapts",
    "poly": "its forward needs a task id per example (multi-task routing)",
    "xlora": "it mixes already trained LoRA adapters (it has none to start from)",
    "cartridge": "it is a prompt-learning (KV-cache prefix) method",
    "cpt": "it is a prompt-learning method for causal LMs",
    # measured with PEFT 0.21.2 (tests/experiments/methods/test_peft_methods.py builds every other type)
    "shadow": "its layer fails on BERT-style attention in PEFT 0.21.2 ('ShadowCarrier' object has no attribute "
              "'view')",
}
RANK_FIELDS = ("r",)
ALPHA_FIELDS = ("lora_alpha", "alpha")
ADALORA_INIT_RATIO = 1.5  # PEFT's AdaLoraConfig defaults: init_r 12 for target_r 8


@dataclass(frozen=True)
class PeftMethod:
    """A PEFT method as a baseline: ``label`` (what results call it), its ``peft_type`` and, for a config path, the
    file's settings (``settings``) and where it was read (``path``)."""

    label: str
    peft_type: str
    settings: dict = field(default_factory=dict)
    path: str | None = None

    @property
    def name(self) -> str:
        return self.peft_type.lower()


def config_classes() -> dict[str, type]:
    """Every PEFT type PEFT's own table holds (HoRA's too, once registered), by lower-case name -> config class."""
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    return {str(getattr(t, "value", t)).lower(): cls for t, cls in PEFT_TYPE_TO_CONFIG_MAPPING.items()}


def refusal(name: str, config_class: type) -> str | None:
    """Why PEFT type ``name`` cannot be a baseline here, or None when it can."""
    if name in REFUSED:
        return REFUSED[name]
    names = {f.name for f in fields(config_class)}
    if "target_modules" not in names or "modules_to_save" not in names:
        return "it is a prompt-learning method (virtual tokens, no adapted modules to match HoRA's)"
    return None


def supported() -> dict[str, type]:
    """The PEFT methods ``--methods`` accepts by name (the harness's own names excepted), name -> config class."""
    return {name: cls for name, cls in sorted(config_classes().items())
            if name not in OWN and refusal(name, cls) is None}


def is_config_path(method: str) -> bool:
    """``method`` names a file or folder rather than a method name: it ends with ``.json`` or holds a path
    separator (a folder in the working directory is ``./NAME``, so a folder called ``loha`` never hides LoHa)."""
    return method.endswith(".json") or "/" in method or "\\" in method


def resolve(method: str) -> PeftMethod | None:
    """The PEFT method ``method`` names (a PEFT type's name or an adapter config path); None when it is neither a
    PEFT type nor a path (the caller reports an unknown method). A refused type or an unreadable file is one line."""
    if is_config_path(method):
        return _from_path(Path(method).expanduser())
    classes = config_classes()
    if method not in classes or method in OWN:
        return None
    reason = refusal(method, classes[method])
    if reason is not None:
        raise HoraError(f"method '{method}' cannot be a baseline here: {reason}; "
                        f"choose one of {', '.join(supported())}")
    return PeftMethod(label=method, peft_type=method.upper())


def _from_path(path: Path) -> PeftMethod:
    file = path / CONFIG_NAME if path.is_dir() else path
    if not file.is_file():
        raise HoraError(f"no PEFT adapter config at {path}: give a folder holding {CONFIG_NAME} or the JSON file")
    try:
        settings = json.loads(file.read_text())
    except ValueError as exc:
        raise HoraError(f"{file} is not valid JSON ({exc})") from None
    if not isinstance(settings, dict) or not settings.get("peft_type"):
        raise HoraError(f"{file} has no peft_type: not a PEFT adapter config")
    name = str(settings["peft_type"]).lower()
    classes = config_classes()
    if name not in classes:
        raise HoraError(f"{file}: peft_type {settings['peft_type']} is not one this PEFT knows "
                        f"({did_you_mean(name, classes)}PEFT's types: {', '.join(sorted(classes))})")
    reason = refusal(name, classes[name])
    if reason is not None:
        raise HoraError(f"{file} ({settings['peft_type']}) cannot be a baseline here: {reason}")
    label = file.parent.name if file.name == CONFIG_NAME else file.stem
    return PeftMethod(label=label, peft_type=str(settings["peft_type"]), settings=settings, path=str(file))


def check_run(method: PeftMethod, epochs: float | None) -> None:
    """Refuse, before any work, a method that cannot run with these settings."""
    if method.name == "adalora" and epochs is not None:
        raise HoraError(f"{method.label} (AdaLoRA) needs --steps, not --epochs: its rank schedule is set by the "
                        "number of optimiser steps")


def mapped_settings(config_class: type, *, r: int, alpha: float, dropout: float) -> dict:
    """Our r, alpha and dropout under the names ``config_class`` gives them (see the module docstring)."""
    names = {f.name for f in fields(config_class)}
    name = config_class.__name__.removesuffix("Config").lower()
    out: dict = {}
    if "target_r" in names:  # AdaLoRA: r is its final average rank, init_r its starting one
        out.update(target_r=r, init_r=math.ceil(ADALORA_INIT_RATIO * r))
    elif any(f in names for f in RANK_FIELDS):
        out["r"] = r
        if "oft_block_size" in names:  # OFT: r blocks or blocks of a size, not both
            out["oft_block_size"] = 0
    alpha_field = next((f for f in ALPHA_FIELDS if f in names), None)
    if alpha_field is not None:
        out[alpha_field] = alpha
    dropout_field = next((f for f in ("lora_dropout", f"{name}_dropout") if f in names), None)
    if dropout_field is not None:
        out[dropout_field] = dropout
    return out


def describe(name: str, config_class: type) -> str:
    """Which of our r, alpha and dropout a PEFT method takes (and under which field), and which it ignores."""
    mapped = mapped_settings(config_class, r=8, alpha=16.0, dropout=0.0)
    takes = {"r": next((f for f in ("target_r", "r") if f in mapped), None),
             "alpha": next((f for f in ALPHA_FIELDS if f in mapped), None),
             "dropout": next((f for f in mapped if f.endswith("dropout")), None)}
    used = [ours if field_ == ours else f"{ours} as {field_}" for ours, field_ in takes.items() if field_]
    ignored = [ours for ours, field_ in takes.items() if not field_]
    text = f"{config_class.__name__}: " + (f"takes {', '.join(used)}" if used else "PEFT's defaults only")
    text += f"; ignores {', '.join(ignored)}" if ignored else ""
    return text + ("; total_step = --steps" if name == "adalora" else "")


def build_config(method: PeftMethod, *, r: int, alpha: float, dropout: float, common: dict,
                 total_steps: int | None):
    """The PEFT config of ``method`` for one run. ``common``: target_modules, modules_to_save, task_type."""
    cls = config_classes()[method.name]
    if method.path is not None:  # the file's settings; its modules are replaced by the run's (IA3's feed-forward
        # modules with them: HoRA adapts attention projections, none of which is feed-forward)
        keep = {k: v for k, v in method.settings.items() if k not in ("peft_type", "feedforward_modules", *common)}
        settings = {**keep, **common}
    else:
        settings = {**mapped_settings(cls, r=r, alpha=alpha, dropout=dropout), **common}
    if method.name == "adalora":
        settings["total_step"] = total_steps
    known = {f.name for f in fields(cls)}
    if "feedforward_modules" in known:  # IA3: none of the attention projections HoRA adapts is feed-forward
        settings["feedforward_modules"] = []
    try:
        return cls(**{k: v for k, v in settings.items() if k in known})
    except (ValueError, TypeError) as exc:  # PEFT's own check of a setting (e.g. a rank its layout refuses)
        raise HoraError(f"{method.label}: PEFT refuses the config: {exc}") from None


def adapt(method: PeftMethod, model, config):
    """``get_peft_model(model, config)``, with PEFT's refusal of this model's shapes as one line (e.g. VB-LoRA's
    ``vector_length`` must divide the layers' widths: a config file can set another)."""
    from peft import get_peft_model

    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise HoraError(f"{method.label}: PEFT cannot adapt {type(model).__name__} with this config: {exc} "
                        "(give a PEFT adapter config file with other settings)") from None


def callbacks(method: PeftMethod) -> list:
    """Trainer callbacks a method needs: AdaLoRA's rank allocation after every optimiser step (PEFT's
    ``update_and_allocate``, which reads the gradients before they are zeroed)."""
    if method.name != "adalora":
        return []
    from transformers import TrainerCallback

    class AdaLoraAllocation(TrainerCallback):
        def on_optimizer_step(self, args, state, control, model=None, **kwargs):
            model.base_model.update_and_allocate(state.global_step)

    return [AdaLoraAllocation()]
