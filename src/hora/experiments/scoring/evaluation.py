"""Scoring a trained model: a metric (:mod:`hora.experiments.scoring.metrics`: accuracy, F1, Matthews, Pearson,
Spearman) of a transformers ``Trainer``'s predictions on an encoded data set (classification or regression), or for
``--objective sft`` a score of greedily generated answers: ``exact`` (the generation equals the answer) or
``llm-adapters`` (the answer word LLM-Adapters' rule reads from the generation equals the gold one,
:mod:`hora.experiments.data.commonsense`) or ``gsm8k`` (the final number PEFT's MetaMathQA rule reads from the
generation equals the gold one, :mod:`hora.experiments.data.metamathqa`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hora.experiments.scoring import metrics

ANSWER_METRICS = ("exact", "llm-adapters", "gsm8k")


def predict(trainer, dataset, regression: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) of ``trainer``'s model on ``dataset`` (a non-empty
    :class:`~hora.experiments.data.tasks.EncodedDataset`): argmax classes, or a regression head's values."""
    out = trainer.predict(dataset)
    logits = out.predictions[0] if isinstance(out.predictions, tuple) else out.predictions
    labels = np.asarray(out.label_ids)
    return metrics.predictions(logits, regression), labels.reshape(-1) if regression else labels


def score(trainer, dataset, metric: str = "accuracy", regression: bool = False) -> float:
    """``metric`` of ``trainer``'s predictions on ``dataset``; NaN for an empty data set (nothing predicted)."""
    return score_and_classes(trainer, dataset, metric, regression)[0]


def score_and_classes(trainer, dataset, metric: str = "accuracy",
                      regression: bool = False) -> tuple[float, int | None]:
    """(:func:`score`, the number of distinct classes predicted on ``dataset``) from one prediction pass; the
    count is None for a regression or an empty data set. One class predicted for every example means the model
    ignores its input, whatever its score."""
    if len(dataset) == 0:
        return float("nan"), None
    predicted, labels = predict(trainer, dataset, regression)
    return metrics.score(metric, predicted, labels), None if regression else int(len(np.unique(predicted)))


def accuracy(trainer, dataset) -> float:
    """The fraction of ``dataset`` that ``trainer``'s model classifies right (argmax of the logits); NaN for an
    empty data set."""
    return score(trainer, dataset, "accuracy")


def generation_budget(metric: str, tokenizer, answers: Sequence[str]) -> int:
    """New tokens generated per prompt: PEFT's MetaMathQA cap for ``gsm8k`` (a worked solution), else the
    longest answer's tokens (:func:`answer_tokens`)."""
    if metric == "gsm8k":
        from hora.experiments.data import metamathqa

        return metamathqa.MAX_NEW_TOKENS
    return answer_tokens(tokenizer, answers)


def answer_tokens(tokenizer, answers: Sequence[str]) -> int:
    """Tokens of the longest answer (tokenised alone, without special tokens): the generation budget."""
    return max((len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in set(answers)), default=1)


def generate(model, tokenizer, prompts: Sequence[str], batch_size: int = 64, max_new_tokens: int = 1) -> list[str]:
    """The text ``model`` (a causal LM) generates after each prompt: greedy decoding of at most ``max_new_tokens``
    tokens, stopping at EOS, decoded without special tokens. Batched, left-padded, in length order (less padding,
    the same texts)."""
    import torch

    lengths = [len(ids) for ids in tokenizer(list(prompts))["input_ids"]]
    order = sorted(range(len(prompts)), key=lengths.__getitem__)
    settings = {"max_new_tokens": max_new_tokens, "do_sample": False, "pad_token_id": tokenizer.pad_token_id,
                "eos_token_id": tokenizer.eos_token_id, "temperature": None, "top_p": None, "top_k": None}
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    texts: list[str] = [""] * len(prompts)
    try:
        with torch.no_grad():
            for start in range(0, len(order), batch_size):
                chosen = order[start:start + batch_size]
                batch = tokenizer([prompts[i] for i in chosen], padding=True, padding_side="left",
                                  return_tensors="pt").to(device)
                out = model.generate(**batch, **settings)
                decoded = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
                for i, text in zip(chosen, decoded, strict=True):
                    texts[i] = text
    finally:
        model.train(was_training)
    return texts


def exact_match(model, tokenizer, prompts: Sequence[str], answers: Sequence[str], batch_size: int = 64,
                max_new_tokens: int | None = None) -> float:
    """The fraction of ``prompts`` after which ``model`` (a causal LM) generates exactly its answer
    (:func:`generate` with at most ``max_new_tokens`` tokens, default :func:`answer_tokens`; stripped texts
    compared). So an answer shorter than the budget must be followed by EOS: " positive and" does not match
    " positive". NaN for no prompts."""
    return answer_score("exact", model, tokenizer, prompts, answers, batch_size, max_new_tokens)


def answer_score(metric: str, model, tokenizer, prompts: Sequence[str], answers: Sequence[str],
                 batch_size: int = 64, max_new_tokens: int | None = None, task: str | None = None) -> float:
    """``metric`` (``exact``, ``llm-adapters`` or ``gsm8k``; ``task``: the commonsense task whose answer pattern
    applies, default the one of each gold answer) of the answers generated after ``prompts``. NaN for no prompts."""
    if len(prompts) == 0:
        return float("nan")
    texts = generate(model, tokenizer, prompts, batch_size, max_new_tokens or answer_tokens(tokenizer, answers))
    if metric == "gsm8k":
        from hora.experiments.data import metamathqa

        return metamathqa.accuracy(texts, list(answers))
    if metric == "llm-adapters":
        from hora.experiments.data import commonsense

        return commonsense.accuracy(texts, answers, task if task in commonsense.ANSWER_PATTERNS else None)
    return sum(text.strip() == answer.strip() for text, answer in zip(texts, answers, strict=True)) / len(prompts)
