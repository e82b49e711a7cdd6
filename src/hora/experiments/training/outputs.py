"""What a finished run leaves: the adapter and metrics.json, saved before anything optional; then the optional
steps (HoRA's parameter report, the adapter diagnostics, the model card), each of which may fail without losing
the run (recorded in metrics.json as ``missing``; ``pending`` lists them until they have run)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hora.experiments.methods import portable
from hora.experiments.training.train_config import PENDING, TrainConfig
from hora.io import atomic_save_files, atomic_write_json


def finish_run(cfg: TrainConfig, model, metrics: dict, writer: bool) -> dict:
    """Save the run (``writer``: the process that writes, one under a launcher), then run the optional steps and
    write metrics.json again with what they added; the run's final metrics."""
    steps: dict[str, Callable[[], dict | None]] = {
        "parameter report": lambda: parameter_report(model, metrics["base_method"]),
        "diagnostics": lambda: adapter_diagnostics(model, metrics["base_method"]),
    }
    if writer and cfg.save:
        steps["model card"] = lambda: portable.write_card(model, cfg.output, metrics, cfg.output)
    if writer:  # what the run trained is safe before any optional step runs; "pending" until they have run
        save_run(cfg, model, {**metrics, PENDING: list(steps)})
    missing = run_optional_steps(steps, metrics)
    if missing:
        metrics["missing"] = missing
    if writer:
        write_metrics(cfg, metrics)
    return metrics


def adapter_diagnostics(model, method: str) -> dict:
    """Mean stable rank of the updates and cross-head shared energy of the head factors (DESIGN: report
    both beside accuracy), from :mod:`hora.diagnostics` for HoRA, LoRA and DoRA; none for other methods."""
    import torch

    from hora.diagnostics import adapter_diagnostics, lora_diagnostics
    from hora.tuner.heads import HeadLayoutError

    compute = {"hora": adapter_diagnostics, "lora": lora_diagnostics, "dora": lora_diagnostics}.get(method)
    if compute is None:
        return {}
    try:
        out = compute(model)
    except (torch.linalg.LinAlgError, HeadLayoutError):
        # The two failures a finished run can meet here; its metrics are then written without diagnostics:
        # - LinAlgError: a diverged run (kept as a result by ``hora compare``, stop_on_nan=False) has NaN in
        #   its update, which has no singular values, so no stable rank;
        # - HeadLayoutError: a LoRA/DoRA run on a model whose config does not give its head counts; the head
        #   split is read only for this diagnostic (a HoRA run read it when its adapter was built).
        # Anything else is a bug and is raised.
        return {}
    return {f"diag_{k}": float(v) for k, v in out.items() if isinstance(v, int | float)}


def parameter_report(model, base_method: str) -> dict:
    """HoRA's LoRA-equivalent parameter count (:func:`hora.parameter_report`); nothing for other methods."""
    if base_method != "hora":
        return {}
    import hora

    return {"lora_equivalent_params": int(hora.parameter_report(model)["lora_equivalent"])}


def run_optional_steps(steps: dict[str, Any], metrics: dict) -> dict[str, str]:
    """Run each optional step (name -> a function returning metrics to add) after the run is saved, adding what
    it returns to ``metrics``. A step that fails costs the run nothing: one line on stderr, and the step's name
    with its error in the returned dict (recorded in metrics.json as ``missing``)."""
    missing = {}
    for name, step in steps.items():
        try:
            metrics.update(step() or {})
        except Exception as exc:  # noqa: BLE001 - by design: an optional step must never lose a trained run
            missing[name] = f"{type(exc).__name__}: {exc}"
            print(f"hora: warning: the run's {name} failed ({missing[name]}); the adapter and metrics.json are "
                  f"saved, and metrics.json records the {name} as missing", file=sys.stderr, flush=True)
    return missing


def save_run(cfg: TrainConfig, model, metrics: dict) -> None:
    """The adapter (``--save``) and metrics.json, with the run's whole config, into ``cfg.output``, atomically."""
    out = Path(cfg.output)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.save:  # the adapter names its base model portably (hora.experiments.methods.portable)
        atomic_save_files(out, lambda tmp: portable.save_adapter(model, tmp, metrics))
    write_metrics(cfg, metrics)


def write_metrics(cfg: TrainConfig, metrics: dict) -> None:
    """metrics.json of the run, with its whole config, written atomically."""
    atomic_write_json(Path(cfg.output) / "metrics.json", {**metrics, "config": asdict(cfg)})
