"""Experiment harness for HoRA: offline assets, tasks, baselines from PEFT, training, sweeps, reports.

Modules:
    assets   locate and load the offline assets (MiniLM-L6, SmolLM2-135M, Rotten Tomatoes, MNIST, ...)
    tasks    task data, fixed seeded splits, data fractions, base models
    methods  the adapted model for hora / lora / dora / vera / full
    train    one training run on transformers' Trainer
    sweep    a grid of runs over methods x fractions x seeds (x learning rates)
    report   summary statistics, paired differences, plots
    bench    speed and memory against PEFT's LoRA and a minimal LoRA (a package; benchmarks/ calls it)
"""

from hora.experiments.errors import AssetMissingError, HoraError

__all__ = ["AssetMissingError", "HoraError"]
