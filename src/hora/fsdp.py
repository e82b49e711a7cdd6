"""FSDP2 for HoRA models: shard every transformer block, keep the shared head-factor bank in the root unit.

HoRA's :class:`~hora.tuner.generator.FactorBank` lives on the model (``model.hora``, :mod:`hora.tuner.banks`) and
generates the head factors of all adapted layers in a forward pre-hook, before any block runs, so its parameters must
belong to the root FSDP unit (all-gathered when the whole model's forward starts). Wrapping whole transformer blocks,
then the root, does that; wrapping single Linear layers or a module that holds the bank would not."""

from __future__ import annotations

from typing import Any

from torch import nn

from .tuner.generator import FactorBank


def block_classes(model: nn.Module) -> set[type[nn.Module]]:
    """The classes of the model's transformer blocks, named by transformers' ``_no_split_modules``.

    ``model`` may be a PEFT model or a plain transformers model; its submodules are searched for
    ``_no_split_modules`` (e.g. ``{"BertLayer", "BertEmbeddings"}``, ``{"LlamaDecoderLayer"}``).
    """
    names = {name for module in model.modules() for name in getattr(module, "_no_split_modules", None) or ()}
    return {type(module) for module in model.modules() if type(module).__name__ in names}


def fully_shard_blocks(model: nn.Module, classes: set[type[nn.Module]] | None = None, **fsdp_kwargs: Any) -> nn.Module:
    """Apply FSDP2 ``fully_shard`` to every module of ``classes`` (default: :func:`block_classes`), then to
    ``model`` itself, the root unit that keeps every bank. Call it after ``get_peft_model``
    and before building the optimizer, inside an initialised process group.

    ``fsdp_kwargs`` go to each ``fully_shard`` call (``mesh``, ``reshard_after_forward``, ``mp_policy``...).
    Returns ``model`` (sharded in place). Raises ``ValueError`` when no block matches, or when a block to
    wrap holds a bank (the bank would then be resharded while other blocks still need it).
    """
    from torch.distributed.fsdp import fully_shard

    classes = block_classes(model) if classes is None else classes
    blocks = [module for module in model.modules() if isinstance(module, tuple(classes)) and module is not model]
    if not blocks:
        raise ValueError(f"no transformer block of {sorted(c.__name__ for c in classes)} in the model to shard")
    for block in blocks:
        if any(isinstance(child, FactorBank) for child in block.modules()):
            raise ValueError(f"{type(block).__name__} holds a HoRA bank; it must stay in the root FSDP unit")
    for block in reversed(blocks):  # innermost first: a nested block is sharded before its parent
        fully_shard(block, **fsdp_kwargs)
    fully_shard(model, **fsdp_kwargs)
    return model
