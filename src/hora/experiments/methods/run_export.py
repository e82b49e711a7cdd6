"""``hora export``: a trained HoRA run folder to a standard PEFT LoRA adapter folder, checked and labelled.

The LoRA adapter itself (``adapter_config.json``, ``adapter_model.safetensors``) is written by
:func:`hora.export_lora`. Beside it goes ``hora_export.json``: where it came from, the base model (``base_model``,
the local folder it was trained from; ``base_model_name``, its portable name, as in the adapter's config), and
the label names (``id2label`` / ``label2id``), which a PEFT adapter has no field for. JSON keys are strings and
transformers looks labels up by integer, so load it as (docs/operations.md, tested with ``pipeline()``)::

    info = json.loads(Path(out_dir, "hora_export.json").read_text())
    id2label = {int(i): name for i, name in info["id2label"].items()}
    base = AutoModelForSequenceClassification.from_pretrained(
        info["base_model"], id2label=id2label, label2id=info["label2id"])
    model = PeftModel.from_pretrained(base, out_dir)

(``AutoModelForCausalLM`` and no labels when ``info["objective"]`` is ``sft``.) The paths are checked before
anything is loaded: OUT_DIR may not be the adapter folder or inside it, nor hold a training run or a non-LoRA
adapter, so an export never overwrites what it exports.
"""

from __future__ import annotations

from pathlib import Path

from hora.experiments import paths
from hora.experiments.errors import HoraError
from hora.experiments.methods.portable import portable_name
from hora.io import atomic_write_json

EXPORT_INFO = "hora_export.json"


def label_maps(label_names: list[str]) -> dict[str, dict]:
    """``id2label`` (string keys, as in a transformers config.json) and ``label2id`` of the label names."""
    names = [str(n) for n in label_names]
    return {"id2label": {str(i): n for i, n in enumerate(names)}, "label2id": {n: i for i, n in enumerate(names)}}


def export_run(adapter_dir: str | Path, out_dir: str | Path, check: bool = True) -> float | None:
    """Export the HoRA adapter of ``adapter_dir`` (a ``hora train`` folder) to a LoRA adapter in ``out_dir``.

    Returns the max |logit difference| between the HoRA model and the exported LoRA (None without ``check``).
    """
    adapter_dir, out_dir = paths.check_export_paths(adapter_dir, out_dir)
    from hora.experiments.methods import build

    meta, base_method = build.read_run(adapter_dir)
    if base_method != "hora":
        raise HoraError(f"{adapter_dir} holds a '{meta.get('method')}' run; only HoRA adapters are exported "
                        "(LoRA/DoRA/VeRA adapters are already PEFT adapters)")
    model, meta = build.load_trained(adapter_dir)
    import hora

    hora.export_lora(model, out_dir)
    diff = build.verify_export(model, out_dir, meta) if check else None
    atomic_write_json(out_dir / EXPORT_INFO, {
        "source_adapter": str(adapter_dir.resolve()),
        "method": meta.get("method"),
        "base_model": meta.get("model_path"),  # a local folder or a Hub ID (at "revision")
        "revision": meta.get("revision"),
        "regression": bool(meta.get("regression", False)),  # one output, problem_type "regression"
        "base_model_name": portable_name(meta["model_path"]) if meta.get("model_path") else None,
        "kind": meta.get("kind"),
        "objective": meta.get("objective", "classify"),  # sft: load the base model as a causal LM
        "task": meta.get("task"),
        "label_names": list(meta.get("label_names") or []),
        **label_maps(list(meta.get("label_names") or [])),
        "max_logit_difference": diff,
    })
    return diff
