"""HoRA: cross-head low-rank adaptation with a joint hypernetwork, as a native PEFT method.

Importing this package registers the method with PEFT, so ``peft.get_peft_model(model, HoraConfig(...))``,
``PeftModel.from_pretrained`` and ``save_pretrained`` work as for PEFT's own methods. The package loads
lazily: ``import hora`` imports neither torch nor peft (the ``hora`` command line starts at once); the
public names below load on first use, and the registration happens as soon as peft is imported (at once
if it already is; see :mod:`hora.registration`).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from .kernel_lookup import drop_kernel_lookup_messages
from .registration import register_when_peft_is_imported

if TYPE_CHECKING:
    from .diagnostics import parameter_report
    from .export import export_lora
    from .optim import param_groups
    from .tuner.config import HoraConfig
    from .tuner.heads import HeadLayoutError, find_attention_targets
    from .tuner.layer import HoraLayer
    from .tuner.model import HoraModel
    from .tuner.quantized import UnsupportedQuantizationError

# public name -> the submodule that defines it
_EXPORTS = {
    "HeadLayoutError": "tuner.heads",
    "HoraConfig": "tuner.config",
    "HoraLayer": "tuner.layer",
    "HoraModel": "tuner.model",
    "UnsupportedQuantizationError": "tuner.quantized",
    "export_lora": "export",
    "find_attention_targets": "tuner.heads",
    # the harness's, re-exported for the quickstart: named as a string only, so the library imports nothing of it
    "offline_model": "experiments.models.catalogue",
    "param_groups": "optim",
    "parameter_report": "diagnostics",
}
__all__ = [
    "HeadLayoutError",
    "HoraConfig",
    "HoraLayer",
    "HoraModel",
    "UnsupportedQuantizationError",
    "export_lora",
    "find_attention_targets",
    "offline_model",
    "param_groups",
    "parameter_report",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """A public name, loaded from its submodule on first use; or a submodule (``hora.fsdp``)."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'hora' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


drop_kernel_lookup_messages()  # bitsandbytes, imported by PEFT or transformers, logs a kernel lookup
register_when_peft_is_imported()
