"""The one-line error for an adapter whose tensors do not fit the model it is loaded onto: a ``load_state_dict``
pre-hook that every HoRA-adapted model registers (:class:`hora.tuner.banks.HoraBanks`), raised as
:class:`AdapterShapeError` and reported by :func:`hora.loading.load_adapter` with what to do."""

from __future__ import annotations

from torch import nn


class AdapterShapeError(RuntimeError):
    """An adapter's tensors do not fit this model's (a RuntimeError, as torch's own size-mismatch error)."""


def check_adapter_shapes(tuner: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
    """``load_state_dict`` pre-hook of a HoRA-adapted model: refuse tensors whose shape differs from the model's
    with one line naming the first module, both shapes and what to do, instead of torch's multi-line
    ``size mismatch`` report. PEFT's ``ignore_mismatched_sizes=True`` drops such tensors before loading, so
    they never reach this check.
    """
    parameters = dict(tuner.named_parameters())
    mismatched = []
    for key, tensor in state_dict.items():
        if not key.startswith(prefix) or not hasattr(tensor, "shape"):
            continue
        parameter = parameters.get(key[len(prefix):])
        if parameter is not None and tuple(parameter.shape) != tuple(tensor.shape):
            mismatched.append((key[len(prefix):], tuple(tensor.shape), tuple(parameter.shape)))
    if not mismatched:
        return
    mismatched.sort(key=lambda item: "hora_bank." in item[0])  # a layer names the module best
    name, saved, expected = mismatched[0]
    if "hora_bank." in name:
        where = f"the bank tensor '{name[name.index('hora_bank.'):]}' (seeds and generators of all adapted layers)"
    else:
        module, _, tensor_name = name.partition(".hora_")
        where = f"module '{module}' (hora_{tensor_name})"
    more = f" and {len(mismatched) - 1} more tensors" if len(mismatched) > 1 else ""
    raise AdapterShapeError(
        f"The HoRA adapter does not fit this base model: {where} has shape {saved} in the adapter but {expected} "
        f"in this model{more}. Load it onto the base model it was trained for (base_model_name_or_path in its "
        "adapter_config.json), or pass ignore_mismatched_sizes=True to leave those tensors untrained."
    )
