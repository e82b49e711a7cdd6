"""Registration of HoRA in PEFT's public mapping tables under the string peft_type "HORA".

PEFT's ``register_peft_method`` insists on a ``PeftType`` enum member; the mapping dicts themselves accept
a string key (``PeftType`` is a ``str`` enum, so lookups by the saved string work), which PEFT supports
since 0.17.
"""

from __future__ import annotations

from peft import mapping

from .config import PEFT_TYPE, HoraConfig
from .model import HoraModel


def register() -> None:
    """Add HoRA to PEFT's config, tuner and prefix tables (idempotent)."""
    mapping.PEFT_TYPE_TO_CONFIG_MAPPING[PEFT_TYPE] = HoraConfig
    mapping.PEFT_TYPE_TO_TUNER_MAPPING[PEFT_TYPE] = HoraModel
    mapping.PEFT_TYPE_TO_PREFIX_MAPPING[PEFT_TYPE] = HoraModel.prefix
