"""What bitsandbytes logs when it is imported, dropped as soon as ``import hora`` runs.

With bitsandbytes installed, its import (by PEFT or transformers, whether or not anything is quantized) looks
up a CPU kernel on the Hub and logs ``Failed to load CPU gemm_4bit_forward from kernels-community ...`` (and
``kernels`` logs ``Skipping publisher trust check ... offline mode``). Neither asks anything of the user: two
logging filters drop those two messages only, so every other message of both libraries still shows. Logging
only: nothing is imported here.
"""

from __future__ import annotations

import logging

# (logger, start of the message) of what bitsandbytes' import logs while looking for a CPU kernel on the Hub
KERNEL_LOOKUP = (
    ("bitsandbytes.backends.cpu.ops", "Failed to load CPU gemm_4bit_forward from kernels-community"),
    ("kernels._internals.hf_hub", "Skipping publisher trust check for 'kernels-community/"),
)


class DropMessage(logging.Filter):
    """Drops the records of one logger whose message starts with ``prefix``."""

    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


def drop_kernel_lookup_messages() -> None:
    """Add the filters of :data:`KERNEL_LOOKUP` (once per logger: idempotent)."""
    for name, prefix in KERNEL_LOOKUP:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessage) and f.prefix == prefix for f in logger.filters):
            logger.addFilter(DropMessage(prefix))
