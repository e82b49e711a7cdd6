"""Study 8's results CSV (docs/results.md), from the run folders themselves (a grid widened later rewrites its
results.csv as it goes): every finished run of runs/i36/<method>/runs, a learning rate counted for a (method, fraction)
only when both tuning seeds (0, 1) ran at it, and a cell kept only when its lr chosen on validation has all 10 seeds;
beside study 5's LoRA and HoRA forms and study 7's cross-head form at the same fractions, seeds and protocol."""
import json
import sys
from pathlib import Path

import pandas as pd

from hora.experiments.grid.sweep import _finished, _row
from hora.experiments.reports import report
from hora.experiments.training.train_config import TrainConfig

TUNE, SEEDS = {0, 1}, set(range(10))
rows = []
for metrics_path in sorted(Path("runs/i36").glob("*/runs/*/metrics.json")):
    metrics = json.loads(metrics_path.read_text())
    cfg = TrainConfig(**{k: v for k, v in metrics["config"].items() if k in TrainConfig.__dataclass_fields__})
    if _finished(metrics_path.parent, cfg) is not None:  # finished: not pending, settings as recorded
        rows.append(_row(metrics, metrics_path.parent))
new = pd.DataFrame(rows)
kept = []
for (method, fraction), group in new.groupby(["method", "fraction"]):
    tuned = [lr for lr, g in group.groupby("lr") if TUNE <= set(g.seed)]
    group = group[group.lr.isin(tuned)]
    chosen = report.best_lr(group)
    seeds = set(group[group.lr == chosen].seed)
    status = "complete" if seeds >= SEEDS else f"incomplete ({len(seeds)} of 10 seeds at the chosen lr {chosen:g})"
    print(f"{method} {fraction:g}: lrs tuned {sorted(tuned)}, chosen {chosen:g}: {status}")
    if seeds >= SEEDS:
        kept.append(group)
new = pd.concat(kept, ignore_index=True)
old = pd.concat([pd.read_csv("docs/results/study5_results.csv"), pd.read_csv("docs/results/study7_results.csv")])
old = old[old.method.isin(["lora", "hora", "hora-identity", "hora-jointgen", "lora-matched", "hora-nores"])
          & old.fraction.isin([0.02, 0.05])]
old = old.drop_duplicates(subset=["method", "fraction", "seed", "lr"])  # study 7 repeats study 5's LoRA runs
old = old.rename(columns={"accuracy": "score", "val_accuracy": "val_score"}).assign(metric="accuracy")
out = report.select_lr(pd.concat([new, old], ignore_index=True).drop(columns=["selected"], errors="ignore"))
out["run_dir"] = out["run_dir"].str.replace(str(Path.cwd()) + "/", "", regex=False)
out.to_csv(sys.argv[1], index=False)
