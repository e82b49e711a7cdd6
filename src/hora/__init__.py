"""HoRA: cross-head low-rank adaptation with a joint hypernetwork, as a native PEFT method.

Importing this package registers the method with PEFT, so ``peft.get_peft_model(model, HoraConfig(...))``,
``PeftModel.from_pretrained`` and ``save_pretrained`` work as for PEFT's own methods.
"""

from .config import HoraConfig
from .diagnostics import parameter_report
from .export import export_lora
from .heads import HeadLayoutError, find_attention_targets
from .layer import HoraLayer
from .model import HoraModel
from .offline import offline_model
from .optim import param_groups
from .registration import register

register()

__all__ = [
    "HeadLayoutError",
    "HoraConfig",
    "HoraLayer",
    "HoraModel",
    "export_lora",
    "find_attention_targets",
    "offline_model",
    "param_groups",
    "parameter_report",
]
__version__ = "0.1.0"
