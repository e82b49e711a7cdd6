"""Graph breaks of ``torch.compile`` in a HoRA forward, in training and in unmerged evaluation (no grad).

``torch._dynamo.explain`` compiles the forward and lists every graph break with the user stack where
dynamo stopped. A break counts as "in HoRA code" when the innermost frame of that stack lies in a source
file of HoRA's method core: the modules directly in the ``hora`` package (``cli`` and ``__main__``
among them, which never run inside a forward), whose files :func:`hora_core_files` takes from the import
system (``pkgutil`` and each module's spec), not from a substring of the path. Why this and not the alternatives:

* matching ``"/hora/"`` in a frame's file name misfires on any checkout or virtualenv whose path contains
  that folder name, counts the harness (``hora.experiments``, this benchmark) as HoRA, and misses HoRA
  installed under another directory name;
* compiling HoRA's code with ``fullgraph=True`` turns the first break into an error, so the report could
  name only one break and no longer count the breaks outside HoRA (in the base model or in transformers).

The harness is a subpackage (``hora.experiments``), so it is left out by construction.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pkgutil
from collections.abc import Callable
from typing import Any

import torch

from .variants import Settings, build_variant
from .workloads import Workload


@functools.cache
def hora_core_files() -> frozenset[str]:
    """Real paths of the source files of the library: the modules directly in the ``hora`` package and in its
    tuner (``hora.tuner``), not the harness or the CLI, as the import system locates them."""
    import hora.tuner

    origins = [hora.__spec__.origin, hora.tuner.__spec__.origin]
    for package in (hora, hora.tuner):
        for module in pkgutil.iter_modules(package.__path__, prefix=f"{package.__name__}."):
            if not module.ispkg:
                origins.append(importlib.util.find_spec(module.name).origin)
    return frozenset(os.path.realpath(origin) for origin in origins if origin)


def in_hora_code(filename: str) -> bool:
    """Whether ``filename`` (a frame's file) is one of :func:`hora_core_files`."""
    return os.path.realpath(filename) in hora_core_files()


def compile_report(workload: Workload, settings: Settings) -> dict[str, Any]:
    """Graph breaks of a HoRA forward under ``torch._dynamo.explain``, in training and in evaluation
    (no grad, unmerged), split by whether they occur in HoRA's code."""
    model = build_variant(workload, "hora", settings, torch.device("cpu"))
    batch = workload.inputs(torch.device("cpu"))

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return workload.loss(model(**batch))

    def evaluate(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return workload.loss(model(**batch))

    report: dict[str, Any] = {"workload": workload.name}
    for mode, fn in (("train", forward), ("eval", evaluate)):
        model.train(mode == "train")
        report[mode] = _explain(fn, batch)
    # headline figures (training), as before
    report.update({k: report["train"][k] for k in ("graph_count", "graph_break_count", "graph_breaks_in_hora_code")})
    return report


def _explain(fn: Callable[[dict[str, torch.Tensor]], torch.Tensor], batch: dict[str, torch.Tensor]) -> dict:
    import torch._dynamo

    torch._dynamo.reset()
    explanation = torch._dynamo.explain(fn)(batch)
    reasons = []
    in_hora = 0
    for reason in explanation.break_reasons:
        frames = [f"{frame.filename}:{frame.lineno} {frame.name}" for frame in reason.user_stack]
        hora_frame = any(in_hora_code(frame.filename) for frame in reason.user_stack[-1:])
        in_hora += hora_frame
        reasons.append({"reason": str(reason.reason).splitlines()[0][:300], "in_hora_code": hora_frame,
                        "where": frames[-3:]})
    torch._dynamo.reset()
    return {"graph_count": explanation.graph_count, "graph_break_count": explanation.graph_break_count,
            "graph_breaks_in_hora_code": in_hora, "break_reasons": reasons}
