"""Experiment harness for HoRA: base models and data that install offline, HoRA against every PEFT method, training
runs, grids over methods, data fractions and seeds, and their reports.

Rooms, one concern each; a room imports only the rooms listed below it (``pyproject.toml``'s import-linter
contract; training, reports, simulate and bench know nothing of each other):
    grid      many runs as one resumable command (sweep, executors, presets, study)
    training  one run from its settings to a saved adapter (train_config, train, checkpoints, sft, ...)
    reports   tables and plots of finished runs (report, benchmark_report, method_map, peft_report)
    simulate  the theory simulation of ``hora simulate``
    bench     speed and memory against PEFT's LoRA, measured side by side
    methods   the adapted model of each method, and what a trained adapter becomes
    models    base models: the catalogue of names, quantization, loading
    console   what a command shows while it works
    scoring   metrics, evaluation, and how a score is written
    data      every data source, read once into fixed seeded splits

Modules at the top, used by every room:
    assets  locate and install the offline assets (MiniLM-L6, SmolLM2-135M, Rotten Tomatoes, MNIST, ...)
    paths   checks of the paths a command reads and writes, before any work starts
    errors  the harness's error and warning classes (``HoraError``: one line saying what to do)
"""

from hora.experiments.errors import AssetMissingError, HoraError

__all__ = ["AssetMissingError", "HoraError"]
