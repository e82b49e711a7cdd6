"""Base models: which model a run adapts, and loading it.

Modules, one job each (each imports only those above it):
    catalogue  the names ``--model`` takes (built-ins, folders, Hub IDs), their configs, limits and kinds
    qlora      ``--load-in-4bit`` / ``--load-in-8bit``: the checks and bitsandbytes' quantization config
    loaders    the tokenizer, image transform, classifier (a fresh head) or causal LM of a resolved model
"""
