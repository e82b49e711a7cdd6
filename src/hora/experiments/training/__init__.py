"""Training: one run, from its settings to a saved adapter and metrics.json.

Modules, one job each:
    train_config  the settings of one run, each defined once (type, default, help, role), and their checks
    train         one run on transformers' ``Trainer``, in steps: inputs, adapted model, fit and score, record
    inputs        a run's inputs: the resolved base model, its examples encoded, further test sets
    outputs       what a run leaves: adapter and metrics.json first, then the optional steps (card, diagnostics)
    checkpoints   resumable training: atomic checkpoints, an exact running loss, a stop on NaN
    sft           generative fine-tuning (``--objective sft``) through TRL's ``SFTTrainer``
    dynamics      the first steps' training dynamics: which parameters move, how fast their factors move
    devices       the devices and CPU threads of a process no launcher placed
    pretrain_vit  ``hora pretrain-vit``: the small ViT of the vision tasks, pre-trained here on Fashion-MNIST
"""
