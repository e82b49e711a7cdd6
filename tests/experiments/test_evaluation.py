"""Accuracy of a Trainer's predictions: argmax of the logits against the labels."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from hora.experiments.evaluation import accuracy


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

    from hora.experiments import models
    from hora.experiments.evaluation import answer_tokens, exact_match

    tok, model = models.load_tokenizer(tiny_llama), models.load_causal_lm(tiny_llama)
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
