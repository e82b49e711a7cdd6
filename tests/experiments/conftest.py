"""Fixtures for the experiment harness: a tiny random BERT with a real tokenizer, tiny text data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

POSITIVE = ["good", "great", "fine", "lovely", "superb", "moving", "funny", "smart"]
NEGATIVE = ["bad", "awful", "poor", "dull", "boring", "weak", "silly", "tedious"]
NEUTRAL = ["the", "film", "movie", "plot", "was", "very", "a", "and", "acting", "story"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never write into the user's ~/.cache/hora from tests."""
    monkeypatch.setenv("HORA_CACHE", str(tmp_path / "hora-cache"))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer BERT (4 heads, hidden 32) with a word-level tokenizer, saved to disk."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POSITIVE + NEGATIVE + NEUTRAL
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(folder)
    return folder


def make_rows(n: int = 120, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        pos = i % 2 == 0
        words = rng.sample(POSITIVE if pos else NEGATIVE, 2) + rng.sample(NEUTRAL, 3)
        rng.shuffle(words)
        rows.append({"review": " ".join(words), "sentiment": "pos" if pos else "neg", "id": i})
    return rows


@pytest.fixture
def tiny_csv(tmp_path) -> Path:
    import pandas as pd

    path = tmp_path / "reviews.csv"
    pd.DataFrame(make_rows()).to_csv(path, index=False)
    return path


@pytest.fixture
def tiny_jsonl(tmp_path) -> Path:
    path = tmp_path / "reviews.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in make_rows()))
    return path
