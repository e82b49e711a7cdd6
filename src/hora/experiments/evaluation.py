"""Scoring a trained model: accuracy of a transformers ``Trainer``'s predictions on an encoded data set
(classification), Pearson and Spearman correlation of its predictions (regression), or the exact-match rate of
greedily generated answers (``--objective sft``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def accuracy(trainer, dataset) -> float:
    """The fraction of ``dataset`` (a :class:`~hora.experiments.tasks.EncodedDataset`) that ``trainer``'s model
    classifies right (argmax of the logits); NaN for an empty data set."""
    if len(dataset) == 0:
        return float("nan")
    out = trainer.predict(dataset)
    logits = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
    return float((np.asarray(logits).argmax(-1) == np.asarray(out.label_ids)).mean())


def correlations(trainer, dataset) -> dict[str, float]:
    """Pearson and Spearman correlation (scipy) between ``trainer``'s model's single output and the float targets
    of ``dataset`` (a regression, e.g. STS-B); NaN for an empty data set or constant predictions."""
    from scipy.stats import pearsonr, spearmanr

    if len(dataset) < 2:
        return {"pearson": float("nan"), "spearman": float("nan")}
    out = trainer.predict(dataset)
    predictions = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
    predictions, targets = np.asarray(predictions, dtype=np.float64).reshape(-1), np.asarray(out.label_ids).reshape(-1)
    if np.ptp(predictions) == 0:  # scipy warns and returns NaN: say NaN without the warning
        return {"pearson": float("nan"), "spearman": float("nan")}
    return {"pearson": float(pearsonr(predictions, targets).statistic),
            "spearman": float(spearmanr(predictions, targets).statistic)}


def answer_tokens(tokenizer, answers: Sequence[str]) -> int:
    """Tokens of the longest answer (tokenised alone, without special tokens): the generation budget."""
    return max((len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in set(answers)), default=1)


def exact_match(model, tokenizer, prompts: Sequence[str], answers: Sequence[str], batch_size: int = 64,
                max_new_tokens: int | None = None) -> float:
    """The fraction of ``prompts`` after which ``model`` (a causal LM) generates exactly its answer.

    Greedy decoding of at most ``max_new_tokens`` tokens (default :func:`answer_tokens`), stopping at EOS; the
    generated tokens are decoded without special tokens, stripped, and compared with the stripped answer. So
    an answer shorter than the budget must be followed by EOS: " positive and" does not match " positive".
    Batched, left-padded, in length order (less padding, same result). NaN for no prompts.
    """
    import torch

    if len(prompts) == 0:
        return float("nan")
    budget = max_new_tokens or answer_tokens(tokenizer, answers)
    lengths = [len(ids) for ids in tokenizer(list(prompts))["input_ids"]]
    order = sorted(range(len(prompts)), key=lengths.__getitem__)
    settings = {"max_new_tokens": budget, "do_sample": False, "pad_token_id": tokenizer.pad_token_id,
                "eos_token_id": tokenizer.eos_token_id, "temperature": None, "top_p": None, "top_k": None}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                chosen = order[start:start + batch_size]
                batch = tokenizer([prompts[i] for i in chosen], padding=True, padding_side="left",
                                  return_tensors="pt").to(device)
                out = model.generate(**batch, **settings)
                texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
                correct += sum(text.strip() == answers[i].strip() for text, i in zip(texts, chosen, strict=True))
    finally:
        model.train(was_training)
    return correct / len(prompts)
