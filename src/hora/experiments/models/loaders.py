"""Loading a run's base model, tokenizer and image transform from a reference that
:func:`hora.experiments.models.catalogue.resolve_model` resolved (a folder, a built-in's cache or a Hub ID):
a classifier with a fresh head, a causal LM for ``--objective sft``, either one quantized by bitsandbytes when
``--load-in-4bit`` / ``--load-in-8bit`` ask (:mod:`hora.experiments.models.qlora`)."""

from __future__ import annotations

from pathlib import Path

from hora.experiments.console import quiet
from hora.experiments.errors import HoraError
from hora.experiments.models.catalogue import source_kwargs
from hora.experiments.models.qlora import bnb_config, device_map


def load_tokenizer(ref: str | Path, revision: str | None = None):
    """The tokenizer of ``ref``: a decoder pads with EOS; its "sequence length is longer than the specified
    maximum" note is off (the harness reports truncation itself, :func:`quiet.no_token_length_note`)."""
    from transformers import AutoTokenizer

    tok = quiet.no_token_length_note(AutoTokenizer.from_pretrained(ref, **source_kwargs(ref, revision)))
    if tok.pad_token is None:  # decoders (SmolLM2, Llama): pad with EOS, see the module docstring
        tok.pad_token = tok.eos_token
    return tok


def load_image_transform(ref: str | Path, revision: str | None = None):
    """image -> pixel tensor (C x H x W float32) through the model's own image processor (``AutoImageProcessor``:
    its resize, crop and normalisation; for a timm model, timm's data config, which needs torchvision)."""
    from transformers import AutoImageProcessor

    try:
        processor = AutoImageProcessor.from_pretrained(ref, **source_kwargs(ref, revision))
    except ImportError as exc:  # TimmWrapperImageProcessor without timm / torchvision
        raise HoraError(f"the image processor of {ref} needs a package that is not installed ({exc}); "
                        "pip install 'hora[timm]'") from None
    except OSError:
        raise HoraError(f"model {ref} has no image processor (preprocessor_config.json) to read the images of "
                        "--image-column") from None

    def transform(image):
        if hasattr(image, "convert"):
            image = image.convert("RGB")
        return processor(images=image, return_tensors="pt")["pixel_values"][0]

    return transform


def load_base_model(ref: str | Path, kind: str, label_names: list[str], revision: str | None = None,
                    regression: bool = False, quantization: str | None = None):
    """A classification model from ``ref`` with a new head of ``len(label_names)`` outputs, or of one output
    for a regression (``problem_type="regression"``: mean squared error on a float target).

    The head is always freshly initialised (from the current torch RNG, so seed first): for the ViT
    this replaces the Fashion-MNIST head even when the class counts match. ``quantization`` ("4bit", "8bit")
    loads a text model's linear layers through bitsandbytes, the new head excepted
    (:mod:`hora.experiments.models.qlora`).
    """
    import torch
    from transformers import AutoModelForImageClassification, AutoModelForSequenceClassification

    num_labels = 1 if regression else len(label_names)
    id2label = {0: "score"} if regression else dict(enumerate(label_names))
    label2id = {n: i for i, n in id2label.items()}
    head = dict(num_labels=num_labels, id2label=id2label, label2id=label2id)
    if regression:
        head["problem_type"] = "regression"
    with quiet.loading_new_head():
        if kind == "image":
            try:
                model = AutoModelForImageClassification.from_pretrained(
                    ref, dtype=torch.float32, ignore_mismatched_sizes=True, **head, **source_kwargs(ref, revision))
            except ImportError as exc:  # a timm model without timm
                raise HoraError(f"{ref} is a timm model and timm is not installed ({exc}): "
                                "pip install 'hora[timm]'") from None
            if hasattr(model, "timm_model"):  # transformers' TimmWrapper: timm's own head reset
                model.timm_model.reset_classifier(num_labels)
            else:
                model.classifier = torch.nn.Linear(model.classifier.in_features, num_labels)
        else:
            model = AutoModelForSequenceClassification.from_pretrained(
                ref, dtype=torch.float32, **head, **source_kwargs(ref, revision),
                **_quantized(quantization, keep=("score", "classifier")))
            # sequence classification finds each text's last real token through pad_token_id: it must be
            # the tokenizer's (decoders have none of their own; load_tokenizer pads with EOS)
            tok = load_tokenizer(ref, revision)
            if tok.pad_token_id is not None and model.config.pad_token_id != tok.pad_token_id:
                model.config.pad_token_id = tok.pad_token_id
    return model


def load_causal_lm(ref: str | Path, revision: str | None = None, quantization: str | None = None):
    """The causal LM at ``ref`` in float32, with its own LM head (``--objective sft``; nothing new is
    initialised), its linear layers quantized by bitsandbytes when ``quantization`` ("4bit", "8bit") says so.
    Its ``pad_token_id`` is set to the tokenizer's (EOS when it has none, see ``load_tokenizer``)."""
    import torch
    from transformers import AutoModelForCausalLM

    with quiet.no_progress_bars():
        model = AutoModelForCausalLM.from_pretrained(ref, dtype=torch.float32, **source_kwargs(ref, revision),
                                                     **_quantized(quantization))
    tok = load_tokenizer(ref, revision)
    if tok.pad_token_id is not None:
        model.config.pad_token_id = tok.pad_token_id
        model.generation_config.pad_token_id = tok.pad_token_id
    return model


def load_model(ref: str | Path, kind: str, label_names: list[str], objective: str = "classify",
               revision: str | None = None, regression: bool = False, quantization: str | None = None):
    """The base model of a run: ``load_causal_lm`` for ``--objective sft``, else ``load_base_model``."""
    if objective == "sft":
        return load_causal_lm(ref, revision, quantization)
    return load_base_model(ref, kind, label_names, revision, regression, quantization)


def _quantized(quantization: str | None, keep: tuple[str, ...] = ()) -> dict:
    """``from_pretrained``'s quantization_config for ``quantization`` (none for None), and under a launcher the
    device_map that loads it onto this rank's GPU."""
    if quantization is None:
        return {}
    placement = device_map()
    return {"quantization_config": bnb_config(quantization, keep), **({"device_map": placement} if placement else {})}


def head_module_names(model) -> list[str]:
    """Names of the classification head (trained and saved with every method): ``classifier`` / ``score``, or
    the classifier of a timm model (``timm_model.head`` for a ViT)."""
    if hasattr(model, "timm_model"):
        classifier = model.timm_model.get_classifier()
        return [f"timm_model.{n}" for n, m in model.timm_model.named_modules() if m is classifier and n]
    names = [n for n in ("classifier", "score") if hasattr(model, n)]
    if not names:
        raise HoraError(f"cannot find the classification head of {type(model).__name__} (no classifier/score)")
    return names
