"""Our runs beside PEFT's published MetaMathQA results (``hora report RESULTS --peft-results DIR``).

DIR is PEFT's ``method_comparison/MetaMathQA/results`` in a clone: one JSON per experiment in the format of
``utils.log_results`` (:func:`hora.experiments.data.metamathqa.result` writes ours the same way). Our rows are the
selected runs (the lr chosen on validation, every seed) of the given results.csv files, each made into that format
from its metrics.json and folder. The table (``peft_comparison.md`` and ``.csv``): experiment, ours or PEFT's,
test accuracy, train time, peak accelerator memory, adapter file size, trainable parameters and the accelerator,
sorted by test accuracy. Times and memory are comparable only between rows of the same accelerator: the note
under the table names the accelerators of each side.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from hora.experiments.data import metamathqa
from hora.experiments.errors import HoraError
from hora.io import atomic_write

COLUMNS = ["experiment", "source", "test_accuracy", "train_time_s", "peak_memory_gib", "file_size_mb",
           "trainable_params", "accelerator"]


def row(result: dict, source: str) -> dict:
    """One table row of a result in PEFT's format; ``source`` is "ours" or "PEFT"."""
    train, run = result["train_info"], result["run_info"]
    final = train["metrics"][-1] if train.get("metrics") else {}

    def scaled(value, unit: float):
        return None if value is None else value / unit

    return {"experiment": run["experiment_name"], "source": source, "test_accuracy": final.get("test accuracy"),
            "train_time_s": train.get("train_time"),
            "peak_memory_gib": scaled(train.get("accelerator_memory_max"), 2**30),
            "file_size_mb": scaled(train.get("file_size"), 2**20),
            "trainable_params": train.get("num_trainable_params"),
            "accelerator": result["meta_info"].get("system_info", {}).get("accelerator")}


def published(folder: str | Path) -> list[dict]:
    """PEFT's result files in ``folder`` that finished (``status`` success), as rows."""
    folder = Path(folder)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise HoraError(f"no result files (*.json) in {folder}: give PEFT's method_comparison/MetaMathQA/results "
                        "folder of a clone")
    rows = []
    for path in files:
        try:
            result = json.loads(path.read_text())
            if result["train_info"]["status"] == "success":
                rows.append(row(result, "PEFT"))
        except (ValueError, KeyError, TypeError) as exc:
            raise HoraError(f"{path} is not one of PEFT's result files ({type(exc).__name__}: {exc})") from None
    return rows


def ours(results: list[Path]) -> list[dict]:
    """The selected runs of our results.csv files, as rows."""
    rows = []
    for csv in results:
        df = pd.read_csv(csv)
        chosen = df[df["selected"]] if "selected" in df else df
        for run_dir in chosen["run_dir"]:
            folder = Path(run_dir)
            record = metamathqa.RunRecord(json.loads((folder / "metrics.json").read_text()), folder)
            rows.append(row(metamathqa.result(record), "ours"))
    return rows


def write_comparison(results: list[Path], peft_results: str | Path, output: Path) -> Path:
    """``output``/peft_comparison.{md,csv}: our runs among PEFT's published ones. Returns the markdown's path."""
    table = pd.DataFrame(ours(results) + published(peft_results), columns=COLUMNS)
    table = table.sort_values("test_accuracy", ascending=False, na_position="last")
    output.mkdir(parents=True, exist_ok=True)
    atomic_write(output / "peft_comparison.csv", lambda tmp: table.to_csv(tmp, index=False))
    path = output / "peft_comparison.md"
    atomic_write(path, lambda tmp: Path(tmp).write_text("\n".join(markdown(table))))
    return path


def markdown(table: pd.DataFrame) -> list[str]:
    """The table in markdown, our rows in bold, and the note on hardware."""

    def cell(value, fmt: str) -> str:
        return "n/a" if value is None or pd.isna(value) else format(value, fmt)

    lines = ["# Our runs among PEFT's published MetaMathQA -> GSM8K results", "",
             "| experiment | source | test accuracy | train time (s) | peak memory (GiB) | file size (MB) | "
             "trainable params | accelerator |", "|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        name = f"**{r['experiment']}**" if r["source"] == "ours" else r["experiment"]
        lines.append(f"| {name} | {r['source']} | {cell(r['test_accuracy'], '.3f')} | {cell(r['train_time_s'], '.0f')} "
                     f"| {cell(r['peak_memory_gib'], '.1f')} | {cell(r['file_size_mb'], '.1f')} | "
                     f"{cell(r['trainable_params'], ',.0f')} | {r['accelerator'] or 'n/a'} |")
    sides = {source: sorted({str(a) for a in group["accelerator"] if a}) for source, group in table.groupby("source")}
    lines += ["", "Train time and peak memory compare only between rows on the same accelerator (ours: "
              f"{', '.join(sides.get('ours', [])) or 'none'}; PEFT's: {', '.join(sides.get('PEFT', [])) or 'none'}); "
              "test accuracy compares across them. PEFT's rows are single runs at a fixed learning rate; ours are "
              "each seed at the learning rate chosen on validation.", ""]
    return lines
