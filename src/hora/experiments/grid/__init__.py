"""Grids: many runs as one resumable command, and who runs them.

Modules, one job each:
    sweep         a grid's protocol: methods x fractions x seeds (x learning rates chosen on validation), its report
    runs          one run of a grid: what to run, how it ended, what an executor does with a batch of them
    executors     who runs a grid's runs: one after another in this process, or Ray (``--ray``)
    ray_executor  each run a Ray task, on a local Ray instance or a cluster
    presets       the benchmarks of the PEFT literature as data (model, data, metric, methods, seeds, steps)
    study         a study as one resumable command: its comparison grids and presets, then study.md
"""
