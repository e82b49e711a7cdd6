"""HoRA's generator forms, one bank class each, by the name ``HoraConfig.generator`` takes: the seam a new form
plugs into, as PEFT's ``LoraVariant`` is for LoRA's variants. A form's bank builds itself for the adapted modules
(``build``), generates their factors in one batched pass (``generate``) and hands each layer its (A, B)
(``layer_factors``), so a layer never branches on the form."""

from __future__ import annotations

from .config import HoraConfig
from .generator import BankLayout, FactorBank
from .joint import JointBank
from .seed_banks import EmbeddingBank, IdentityBank, MlpBank

BANK_FORMS: dict[str, type[FactorBank]] = {
    "mlp": MlpBank,
    "embedding": EmbeddingBank,
    "identity": IdentityBank,
    "joint": JointBank,
}


def build_bank(config: HoraConfig, layout: BankLayout) -> FactorBank:
    """The bank of ``config.generator``'s form for the adapted modules of ``layout``."""
    return BANK_FORMS[config.generator].build(config, layout)
