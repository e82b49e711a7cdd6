"""Accuracy of a Trainer's predictions: argmax of the logits against the labels."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from hora.experiments.models import loaders
from hora.experiments.scoring.evaluation import accuracy


class _Predicting:
    """A stand-in for ``transformers.Trainer``: ``predict`` returns fixed logits and labels."""

    def __init__(self, predictions, label_ids):
        self.output = SimpleNamespace(predictions=predictions, label_ids=label_ids)

    def predict(self, dataset):
        return self.output


def test_accuracy_is_the_share_of_argmax_hits():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.1, 0.2]])
    labels = np.array([0, 1, 1, 1])
    assert accuracy(_Predicting(logits, labels), [0] * 4) == 0.75
    # models that also return hidden states give a tuple; the logits come first
    assert accuracy(_Predicting((logits, np.zeros((4, 8))), labels), [0] * 4) == 0.75


def test_accuracy_of_an_empty_set_is_nan_without_predicting():
    assert math.isnan(accuracy(_Predicting(None, None), []))


def test_exact_match_batched_left_padded_equals_one_prompt_at_a_time(tiny_llama):
    """Greedy answers of a random tiny Llama: left padding in batches changes nothing; a prompt matches when its
    stripped generation is its stripped answer."""
    import torch

    from hora.experiments.scoring.evaluation import answer_tokens, exact_match

    tok, model = loaders.load_tokenizer(tiny_llama), loaders.load_causal_lm(tiny_llama)
    prompts = ["Review: good film\nSentiment:", "Review: the plot was very dull and weak\nSentiment:",
               "Review: a lovely story\nSentiment:", "Review: boring\nSentiment:"]
    singly = []
    for prompt in prompts:
        ids = tok(prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**ids, max_new_tokens=2, do_sample=False, pad_token_id=tok.pad_token_id)
        singly.append(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    answers = [f"  {text.strip()} " for text in singly]  # what the model says, spaced differently: all match
    assert exact_match(model, tok, prompts, answers, batch_size=3, max_new_tokens=2) == 1.0
    wrong = [answers[0], " nothing", answers[2], " nothing"]
    assert exact_match(model, tok, prompts, wrong, batch_size=4, max_new_tokens=2) == 0.5
    assert answer_tokens(tok, [" positive", " very good film"]) == 3
    assert math.isnan(exact_match(model, tok, [], []))


def test_score_by_metric_on_a_regression_head_and_answer_scores(monkeypatch):
    from hora.experiments.scoring import evaluation

    regression = _Predicting(np.array([[0.1], [0.5], [0.9], [0.4]]), np.array([[0.0], [1.0], [2.0], [1.5]]))
    assert evaluation.score(regression, [0] * 4, "pearson", regression=True) == pytest.approx(
        np.corrcoef([0.1, 0.5, 0.9, 0.4], [0.0, 1.0, 2.0, 1.5])[0, 1])
    classes = _Predicting(np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0]]), np.array([0, 1, 0]))
    assert evaluation.score(classes, [0] * 3, "matthews") == pytest.approx(0.5)
    generated = [" the correct answer is option2", "maybe option1", " the correct answer is answer5"]
    monkeypatch.setattr(evaluation, "generate", lambda *args, **kwargs: generated)
    golds = ["the correct answer is option2", "the correct answer is option2", "the correct answer is answer5"]
    assert evaluation.answer_score("llm-adapters", None, None, ["p"] * 3, golds, max_new_tokens=8) == pytest.approx(
        2 / 3)  # the pattern of each gold's task; the second reads option1
    assert evaluation.answer_score("llm-adapters", None, None, ["p"] * 3, golds, max_new_tokens=8,
                                   task="social_i_qa") == pytest.approx(1 / 3)  # option words are not SIQA's
    assert evaluation.answer_score("exact", None, None, ["p"] * 3, golds, max_new_tokens=8) == pytest.approx(2 / 3)
