"""The theory simulation (``hora simulate``, docs/theory.md): shared generators (HoRA, joint) against independent
per-head low-rank updates (LoRA) on one multi-head attention layer, fitted to synthetic data.

Modules, one job each:
    simulation       the experiment: regimes, true updates, the fits over sample sizes and replicates, the plots
    attention_model  the simulated layer and its three parametrisations of the updates to W_Q and W_V
    fit              batched L-BFGS: many independent least-squares fits at once
    rates            log-log slopes of the mean error against n, with a bootstrap interval
"""
