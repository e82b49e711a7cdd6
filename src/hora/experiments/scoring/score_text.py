"""How a score is named and written wherever it is shown (a run's table, the model card, progress lines,
summary.md, plots, the method map, study and benchmark tables): its metric's name and its unit.

A run's scores are fractions (:mod:`hora.experiments.scoring.metrics`, :mod:`hora.experiments.scoring.evaluation`).
Rates (accuracy, F1, exact match, the LLM-Adapters answer accuracy) are shown in percent, x 100 with a "%" sign;
correlations (Matthews, Pearson, Spearman) are numbers in [-1, 1] shown as they are, never with a "%". A difference of
two rates is in percentage points, a difference of two correlations in correlation units.

A classification run that predicts one class for every test example (``predicted_classes`` = 1) has learned
nothing about the input: its score, and any comparison made only of such runs, says nothing.
"""

from __future__ import annotations

import math

# metric -> (its name in a sentence, whether it is a rate shown in percent)
METRICS = {
    "accuracy": ("accuracy", True),
    "f1": ("F1", True),
    "matthews": ("Matthews correlation", False),
    "pearson": ("Pearson correlation", False),
    "spearman": ("Spearman correlation", False),
    "exact": ("exact match of the greedy answer", True),
    "llm-adapters": ("LLM-Adapters answer accuracy", True),
}

ONE_CLASS = "predicts one class: the comparison says nothing"


def name(metric: str | None) -> str:
    """The metric's name in a sentence ("Pearson correlation"); an unknown name as it is."""
    return METRICS.get(metric or "accuracy", (str(metric), False))[0]


def is_rate(metric: str | None) -> bool:
    """Whether the metric is a rate in [0, 1] shown in percent (else a correlation in [-1, 1])."""
    return METRICS.get(metric or "accuracy", ("", False))[1]


def scale(metric: str | None) -> float:
    """The factor from a stored score to the shown number: 100 for a rate, 1 for a correlation."""
    return 100.0 if is_rate(metric) else 1.0


def unit(metric: str | None) -> str:
    """The shown number's unit, for a label: "%" for a rate, "" for a correlation."""
    return "%" if is_rate(metric) else ""


def bounds(metric: str | None) -> tuple[float, float]:
    """The range of the shown number: [0, 100] for a rate, [-1, 1] for a correlation."""
    return (0.0, 100.0) if is_rate(metric) else (-1.0, 1.0)


def missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value: float | None, metric: str | None, digits: int | None = None) -> str:
    """The shown number without its unit: ``100 * value`` to ``digits`` (default 2) decimals for a rate, ``value``
    to ``digits + 2`` (default 4) decimals for a correlation; "n/a" for a missing score."""
    if missing(value):
        return "n/a"
    digits = 2 if digits is None else digits
    return f"{scale(metric) * value:.{digits if is_rate(metric) else digits + 2}f}"


def text(value: float | None, metric: str | None, digits: int | None = None) -> str:
    """The score with its unit: "54.69 %" (a rate), "-0.1329" (a correlation), "n/a"."""
    shown = number(value, metric, digits)
    return f"{shown} %" if is_rate(metric) and shown != "n/a" else shown


def labelled(value: float | None, metric: str | None, split: str = "test", digits: int | None = None) -> str:
    """"test Pearson correlation -0.1329", "val accuracy 54.69 %"."""
    return f"{split} {name(metric)} {text(value, metric, digits)}"


def column(metric: str | None, split: str = "test") -> str:
    """A table header or axis label: "test accuracy (%)", "test Pearson correlation"."""
    return f"{split} {name(metric)}" + (" (%)" if is_rate(metric) else "")


def difference_unit(metric: str | None) -> str:
    """The unit of a difference of two scores: "percentage points" or "correlation units"."""
    return "percentage points" if is_rate(metric) else "correlation units"


def predicts_one_class(predicted_classes: object) -> bool:
    """Whether a run's recorded ``predicted_classes`` says it predicted one class on test (missing: no)."""
    try:
        return int(predicted_classes) == 1  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return False
