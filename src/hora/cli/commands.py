"""The ``hora`` commands: each parses its options, makes one call into the library or the harness, and
prints the result. The options of ``train`` and ``compare`` come from TrainConfig (:mod:`hora.cli.options`);
errors and warnings are shown by :mod:`hora.cli.display`.
"""

# ruff: noqa: B008  (typer declares options as call defaults)
from __future__ import annotations

import os
from pathlib import Path

import typer

from hora.cli.display import print_table, process_seconds, report_rows, train_rows, user_errors, version_text
from hora.cli.options import with_config_options, with_execution_options
from hora.experiments.errors import GridInterrupted, HoraError, TrainingInterrupted
from hora.experiments.training.train_config import MODEL_HELP

app = typer.Typer(
    name="hora",
    help="HoRA: cross-head low-rank adaptation with a joint hypernetwork (a PEFT method). "
    "Train, compare with LoRA/DoRA/VeRA/full fine-tuning, export to a standard LoRA adapter.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                 help="Show the installed version of hora and exit."),
) -> None:
    """Every command runs quietly: only hora's own progress and warnings that ask something of you."""
    from hora.experiments.console.quiet import quiet_libraries

    quiet_libraries()


@app.command()
@with_config_options("train")
def train(ctx: typer.Context, settings: dict) -> None:
    """Train one model: a method on a task, then report its validation and test score (by --metric).

    With no options: HoRA (r=8, q and v) on all-MiniLM-L6-v2 + Rotten Tomatoes, 300 steps of batch 32
    (a few minutes on 2 CPU cores). Writes the adapter, a model card (README.md) and metrics.json into --output.
    """
    with user_errors():
        from hora.experiments.training import train as train_mod
        from hora.experiments.training.train_config import TrainConfig

        cfg = TrainConfig(**settings)
        try:
            metrics = train_mod.train(cfg)
        except TrainingInterrupted as exc:  # Ctrl-C: what was saved, and the command that resumes
            from hora.experiments.console.interrupt import interrupted_message

            typer.echo(interrupted_message(exc, ctx), err=True)
            raise typer.Exit(130) from None
    if os.environ.get("RANK", "0") != "0":  # under torchrun only the main process reports
        return
    model_name = metrics["model"] if len(str(metrics["model"])) < 40 else Path(metrics["model"]).name
    print_table(f"hora train: {metrics['method']} on {metrics['task']} ({model_name})",
                train_rows(metrics, Path(cfg.output), process_seconds()))


def grid_interrupted(output: Path) -> typer.Exit:
    """Print what a grid stopped with Ctrl-C kept; the exit to raise."""
    typer.echo(f"hora: interrupted; the finished runs are kept in {output}: rerun the same command to continue",
               err=True)
    return typer.Exit(130)


@app.command()
@with_config_options("compare")
@with_execution_options()
def compare(
    settings: dict,
    execution: dict,
    methods: str = typer.Option("hora,lora", help="Comma list of methods: hora, lora, dora, vera, full, a named "
                                "variant, any other PEFT method or a PEFT adapter_config.json path ('hora methods')."),
    fractions: str = typer.Option("0.05,0.25,1", help="Comma list of training-data fractions in (0, 1]."),
    seeds: str = typer.Option("0,1,2", help="Comma list of seeds (runs are paired by seed)."),
    lrs: str = typer.Option(None, help="Comma list of learning rates; with several, each method's lr is chosen "
                            "per fraction on the validation score only. Default: one lr per method."),
    tune_seeds: str = typer.Option(None, help="With several --lrs: the seeds (among --seeds) that try every lr; "
                                   "the other seeds run only at the lr chosen on their validation. "
                                   "Default: all seeds try every lr."),
    output: Path = typer.Option(Path("runs/compare"), help="Folder for results.csv, summary.md, the plot."),
    save_adapters: bool = typer.Option(False, help="Also save every run's adapter."),
    resume: bool = typer.Option(True, help="Skip runs already finished in --output with the same settings."),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """Compare methods over data fractions and seeds on one task.

    Writes OUTPUT/results.csv (one row per run), OUTPUT/summary.md (mean ± sd per method and fraction,
    HoRA − LoRA paired by seed with a 95% t-interval) and OUTPUT/accuracy_vs_fraction.png.
    The default grid is 18 runs of about 2 minutes each on 2 CPU cores (MiniLM-L6, 300 steps);
    an interrupted comparison resumes where it stopped.
    """
    with user_errors():
        from hora.experiments.training.train_config import TrainConfig

        # checked before pandas, scipy and torch load (a misspelt --model fails at once); a diverged run is a
        # result, not an error
        base = TrainConfig(**settings, stop_on_nan=False)
        from hora.experiments.grid import sweep
        from hora.experiments.grid.executors import ExecutionSettings, open_executor

        grid = sweep.parse_grid(methods=methods, fractions=fractions, seeds=seeds, lrs=lrs, tune_seeds=tune_seeds)
        try:
            with open_executor(ExecutionSettings(**execution)) as executor:
                df = sweep.run_compare(base, output=output, save_adapters=save_adapters, progress=progress,
                                       resume=resume, executor=executor, **grid)
        except (TrainingInterrupted, GridInterrupted):
            raise grid_interrupted(output / "runs") from None
    typer.echo((output / "summary.md").read_text())  # plain: markdown tables must not be re-wrapped
    typer.echo(f"{len(df)} runs; wrote {output / 'results.csv'}, {output / 'summary.md'}, "
               f"{output / 'accuracy_vs_fraction.png'}")


@app.command()
@with_execution_options()
def study(
    execution: dict,
    preset: str = typer.Option("quick", help="quick (about 10 minutes on 2 cores; checks the pipeline, not "
                               "evidence), full (the protocol of issue 4; hours), or a benchmark: glue, commonsense, "
                               "vtab1k, metamathqa (GPU; docs/benchmarks.md gives each one's command, downloads and "
                               "cost)."),
    only: str = typer.Option(None, help="Comma list of grids to run: text, decoder, vision, ablations, "
                             "ablations-qkvo; for a benchmark its tasks (e.g. sst2,cola). Default: all."),
    output: Path = typer.Option(Path("runs/study"), help="Folder for each grid's results and study.md."),
    progress: bool = typer.Option(True, help="Show progress bars."),
    dry_run: bool = typer.Option(False, help="Benchmarks: print the runs and their estimated GPU-hours; run nothing."),
    data_root: str = typer.Option(None, help="Benchmarks: the data in the benchmark's published layout (a folder, "
                                  "or for glue a Hub ID); default: its Hub ID or the folder named in "
                                  "docs/benchmarks.md."),
    model: str = typer.Option(None, help=f"Benchmarks: another model than the preset's. {MODEL_HELP}"),
    steps: int = typer.Option(None, help="Benchmarks: train every run this many steps instead of the recipe's "
                              "epochs (a quick slice)."),
    methods: str = typer.Option(None, help="Benchmarks: comma list of methods instead of the preset's."),
    seeds: str = typer.Option(None, help="Benchmarks: comma list of seeds instead of the preset's."),
    lrs: str = typer.Option(None, help="Benchmarks: comma list of learning rates instead of the preset's grid."),
) -> None:
    """Run the evidence study: HoRA against LoRA (equal rank and matched parameters), DoRA, VeRA and the
    identity control on text (MiniLM-L6), a GQA decoder (SmolLM2-135M) and vision (ViT -> MNIST-5k),
    plus ablations; or a benchmark of the literature (--preset glue|commonsense|vtab1k|metamathqa) with its model.
    Learning rates are chosen on validation only. Resumable: rerun the same command to
    continue. Writes OUTPUT/<grid>/{results.csv,summary.md,accuracy_vs_fraction.png} and OUTPUT/study.md.
    """
    with user_errors():
        from hora.experiments.grid import presets
        from hora.experiments.grid import study as study_mod
        from hora.experiments.grid.executors import ExecutionSettings, open_executor
        from hora.experiments.grid.sweep import parse_list

        grids = parse_list(only, str, "only") if only else None
        protocol = {"methods": parse_list(methods, str, "methods") if methods else None,
                    "seeds": parse_list(seeds, int, "seeds") if seeds else None,
                    "lrs": parse_list(lrs, float, "lrs") if lrs else None}
        if dry_run:
            for line in presets.plan(preset, grids, protocol).lines():
                typer.echo(line)
            return
        try:
            with open_executor(ExecutionSettings(**execution)) as executor:
                path = study_mod.run_study(preset, output, only=grids, progress=progress, executor=executor,
                                           root=data_root, overrides={"model": model, "steps": steps},
                                           protocol=protocol)
        except (TrainingInterrupted, GridInterrupted):
            raise grid_interrupted(output) from None
    typer.echo(f"wrote {path}")


@app.command()
def report(
    results: list[Path] = typer.Argument(..., help="One or more results.csv files written by 'hora compare'."),
    output: Path = typer.Option(Path("runs/report"), help="Folder for the merged results.csv, summary.md, plot."),
    title: str = typer.Option("HoRA comparison", help="Heading of summary.md."),
    peft_results: Path = typer.Option(None, help="PEFT's method_comparison/MetaMathQA/results folder (a clone): "
                                      "also write OUTPUT/peft_comparison.md, our runs among PEFT's published ones."),
) -> None:
    """Summarise one or several comparisons together (e.g. methods run in parallel into separate folders):
    learning rate chosen on validation, mean ± sd, paired differences to LoRA, score-vs-fraction plot."""
    with user_errors():
        from hora.experiments.reports.report import report_runs

        summary = report_runs(results, output, title=title)
        comparison = None
        if peft_results is not None:
            from hora.experiments.reports.peft_report import write_comparison

            comparison = write_comparison(results, peft_results, output)
    typer.echo(summary.read_text())
    if comparison is not None:
        typer.echo(comparison.read_text())


@app.command("map")
def method_map(
    manifest: Path = typer.Option(Path("docs/results/method_map.json"),
                                  help="JSON file listing the forms (rows) and the results CSVs of each setting."),
    output: Path = typer.Option(Path("docs"), help="Folder for method_map.md (the table) and method_map.png."),
) -> None:
    """The method map: every form of HoRA against LoRA on every measured setting (form − LoRA, paired by
    seed, 95 % interval), as a markdown table and a forest plot, from the results CSVs a manifest lists."""
    with user_errors():
        from hora.experiments.reports.method_map import write_map

        written = write_map(manifest, output)
    typer.echo(f"wrote {written['table']}, {written['figure']}")


@app.command()
def export(
    adapter_dir: Path = typer.Argument(..., help="A folder written by 'hora train' with --method hora."),
    out_dir: Path = typer.Argument(..., help="Where to write the standard PEFT LoRA adapter."),
    check: bool = typer.Option(True, help="Load the exported LoRA and check it gives the same logits."),
) -> None:
    """Export a trained HoRA adapter to a standard PEFT LoRA adapter (exact, no SVD).

    The base model is rebuilt from the adapter folder's metrics.json; the LoRA adapter then loads with
    plain PEFT (PeftModel.from_pretrained) or any server that reads LoRA adapters. OUT_DIR/hora_export.json
    records the base model and the label names (id2label, label2id). OUT_DIR may not be ADAPTER_DIR or
    inside it, nor hold a training run: the export never overwrites the adapter it exports.
    """
    with user_errors():
        from hora.experiments.methods.run_export import export_run

        diff = export_run(adapter_dir, out_dir, check=check)
    suffix = f" (max |logit difference| vs HoRA: {diff:.2e})" if diff is not None else ""
    typer.echo(f"exported LoRA adapter to {out_dir}{suffix}")


@app.command()
def info(
    model: str = typer.Option("minilm", help=MODEL_HELP),
    r: int = typer.Option(8, help="Rank."),
    alpha: float = typer.Option(16.0, help="Scaling alpha."),
    hidden: int = typer.Option(None, help="HoRA generator width p (default: the library's)."),
    targets: str = typer.Option("q,v", help="Attention projections to adapt, a comma list of q,k,v,o."),
) -> None:
    """Show HoRA's parameter count on a model against LoRA of equal rank on the same modules."""
    with user_errors():
        from hora.experiments.methods.build import hora_parameter_report

        rep, modules = hora_parameter_report(model, r=r, alpha=alpha, hidden=hidden, targets=targets)
    print_table(f"HoRA on {model}: r={r}, alpha={alpha:g}, targets {targets} ({modules} modules)",
                report_rows(rep), headers=("quantity", "value"))


@app.command("methods")
def list_methods() -> None:
    """List the methods --method/--methods accept: HoRA and its variants, LoRA/DoRA/VeRA/full, every other PEFT
    method (what each takes of --r, --alpha, --dropout), and the PEFT types refused, with why. A PEFT
    adapter_config.json (or its folder) is accepted too, named after its folder."""
    with user_errors():
        from hora.experiments.methods.build import available

        rows = available()
    width = max(len(name) for name, _ in rows)
    for name, text in rows:
        typer.echo(f"{name:<{width}}  {text}")


@app.command()
def simulate(
    output: Path = typer.Option(Path("runs/simulate"), help="Folder for the simulation's results and plots."),
    quick: bool = typer.Option(False, help="The quick preset: n = 2^7 ... 2^12, 5 replications (about 8 minutes "
                               "on one core). Without it, the full preset: n up to 2^16, 10 replications "
                               "(many hours)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Simulate the theory: sample efficiency of a shared (joint) generator vs independent heads."""
    with user_errors():
        from hora.experiments.simulate.simulation import run_simulation

        result = run_simulation(output, quick=quick, seed=seed)
    typer.echo(f"simulation written to {output}")
    for key, value in result.items():
        if isinstance(value, int | float | str):
            typer.echo(f"  {key}: {value}")


@app.command()
@with_config_options("dynamics", steps=50, fraction=0.05, batch_size=16)
def dynamics(
    settings: dict,
    methods: str = typer.Option("hora-jointgen,hora,lora", help="Comma list of methods to record."),
    lrs: str = typer.Option(None, help="Comma list of learning rates, one per method (default: each method's)."),
    output: Path = typer.Option(Path("runs/dynamics"), help="Folder for dynamics.json and dynamics.png."),
) -> None:
    """Update norm per step of every parameter group (seeds, generator bodies and output layers, LoRA's A
    and B) and of the factors they make, over the first steps of training (MiniLM-L6, Rotten Tomatoes)."""
    with user_errors():
        from hora.experiments.grid.sweep import parse_list
        from hora.experiments.training import dynamics as dyn
        from hora.experiments.training.train_config import TrainConfig

        names = parse_list(methods, str, "methods")
        rates = parse_list(lrs, float, "lrs") if lrs else None
        if rates is not None and len(rates) != len(names):
            raise HoraError(f"--lrs gives {len(rates)} rates for {len(names)} methods; give one per method")
        # accuracy is not the point here: 512 validation/test examples keep the evaluation short
        base = TrainConfig(**settings, progress=False, max_eval_samples=512)
        path = dyn.run(names, base, output, dict(zip(names, rates, strict=True)) if rates else None)
        typer.echo(f"dynamics written to {path}")
        for method, groups in dyn.summary(output / "dynamics.json").items():
            typer.echo(f"  {method}: " + ", ".join(f"{g} {v:.2e}" for g, v in sorted(groups.items())))


@app.command("pretrain-vit")
def pretrain_vit(
    epochs: float = typer.Option(1.0, help="Epochs over the 60k Fashion-MNIST training images."),
    batch_size: int = typer.Option(128, help="Batch size."),
    lr: float = typer.Option(1e-3, help="Learning rate."),
    seed: int = typer.Option(0, help="Random seed."),
    force: bool = typer.Option(False, help="Retrain even if a cached ViT exists."),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """Pre-train the small ViT on Fashion-MNIST and cache it (for '--task mnist --model vit').

    No pretrained ViT ships in any offline package, so the vision experiments pre-train this one here
    (4 layers, 4 heads, hidden 128, 28x28 grayscale, about 0.8M parameters; a few minutes on 2 CPU cores)
    and adapt it to MNIST digits. Needs Fashion-MNIST: 'make fashion-mnist' or 'hora assets --fetch-fashion-mnist'.
    """
    with user_errors():
        from hora.experiments.training import pretrain_vit as pretrain_mod

        metrics = pretrain_mod.pretrain_vit(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, force=force,
                                         progress=progress)
    acc = metrics.get("fashion_mnist_test_accuracy")
    typer.echo(f"ViT cached at {metrics.get('folder')}"
               + (f"; Fashion-MNIST test accuracy {100 * acc:.2f} %" if acc else ""))


@app.command()
def assets(
    fetch_fashion_mnist: bool = typer.Option(False, help="Without root: apt-get download + dpkg -x "
                                             "Fashion-MNIST into the cache ($HORA_CACHE or ~/.cache/hora)."),
) -> None:
    """List the offline assets (weights and data that ship in packages) and how to install missing ones."""
    with user_errors():
        from hora.experiments import assets as assets_mod

        if fetch_fashion_mnist:
            typer.echo(f"Fashion-MNIST at {assets_mod.fetch_fashion_mnist()}")
        rows = assets_mod.status()
        cache = assets_mod.cache_dir()
    # plain lines, not a table: a table cuts long paths at the terminal's (or a pipe's 80) columns
    typer.echo(f"offline assets (cache: {cache})")
    for name, where, cmd in rows:
        typer.echo(f"\n{name}\n  location: {where}\n  install:  {cmd}")


@app.command()
def bench(
    output: Path = typer.Option(Path("benchmarks/results/bench_cpu.json"), help="JSON file to write."),
    threads: int = typer.Option(2, help="torch.set_num_threads."),
    tiny: bool = typer.Option(False, help="A tiny BERT instead of the MiniLM-L6 shape (seconds)."),
    repeats: int = typer.Option(4, help="Interleaved rounds."),
    steps: int = typer.Option(2, help="Timed training steps per variant and round."),
    compile_check: bool = typer.Option(True, help="Check torch.compile graph breaks in HoRA code."),
) -> None:
    """Speed and memory of HoRA vs PEFT's LoRA and a minimal LoRA on CPU, as ratios (docs/performance.md)."""
    with user_errors():
        from hora.experiments.bench.suite import run_cpu_suite

        run_cpu_suite(output=output, threads=threads, tiny=tiny, repeats=repeats, steps=steps,
                      compile_check=compile_check, log=typer.echo)
