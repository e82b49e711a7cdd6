"""Study 8's table for docs/results.md: per method and fraction, test accuracy (mean ± sd), the lr
chosen on validation (and whether it is interior to the method's grid), parameters, and the paired difference to
LoRA."""
import sys

from hora.experiments.reports import report

df = report.select_lr(report.read_results([sys.argv[1]]))
STUDY8_METHODS = ("loha", "lokr", "ia3", "adalora", "fourierft", "hra")  # the others: their studies widened the grids
order = ["lora", "hora", "hora-identity", "lora-matched", "hora-nores", "hora-jointgen", *STUDY8_METHODS]
lora_params = df[df.method == "lora"].trainable_params.iloc[0]
print("| method | params (adapter + head) | / LoRA | fraction | test acc % (mean ± sd, 10 seeds) | lr chosen (grid) "
      "| − LoRA, paired (95 % t-interval) |")
print("|---|---|---|---|---|---|---|")
for method in [m for m in order if m in set(df.method)]:
    mine = df[df.method == method]
    diffs = report.paired_difference(df, method, "lora") if method != "lora" else None
    for fraction, group in mine.groupby("fraction"):
        sel = group[group.selected]
        grid = sorted(group.lr.unique())
        lr = sel.lr.iloc[0]
        edge = " (edge)" if method in STUDY8_METHODS and len(grid) > 1 and lr in (grid[0], grid[-1]) else ""
        params = int(sel.trainable_params.iloc[0])
        cell = "–"
        if diffs is not None:
            d = diffs[diffs.fraction == fraction].iloc[0]
            bold = d.ci_low > 0 or d.ci_high < 0
            text = f"{100 * d.diff_mean:+.2f} [{100 * d.ci_low:+.2f}, {100 * d.ci_high:+.2f}] ({int(d.n_pairs)})"
            cell = f"**{text}**" if bold else text
        grid_text = ", ".join(f"{x:g}" for x in grid)
        print(f"| {method} | {params:,} | {params / lora_params:.2f} | {fraction:g} | "
              f"{100 * sel.score.mean():.1f} ± {100 * sel.score.std():.1f} | {lr:g}{edge} ({grid_text}) | {cell} |")
