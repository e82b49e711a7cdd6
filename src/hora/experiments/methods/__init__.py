"""Methods: the adapted model of a run, for HoRA and every baseline, and what a trained run's adapter becomes.

Modules, one job each:
    build           the adapted model of a method name: HoRA, LoRA / DoRA / VeRA / full, any PEFT method
    peft_methods    PEFT's own methods by name (``loha``, ``lokr``, ``ia3``, ...) or as an adapter config path
    named_variants  named variants for ``--methods`` (HoRA's switches, matched LoRA): a base method plus options
    portable        a saved adapter that travels: the base model named portably, a model card
    run_export      ``hora export``: a trained HoRA run folder to a standard PEFT LoRA adapter, checked
"""
