"""Fixtures for the experiment harness: a tiny random BERT with a real tokenizer, tiny text data."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

POSITIVE = ["good", "great", "fine", "lovely", "superb", "moving", "funny", "smart"]
NEGATIVE = ["bad", "awful", "poor", "dull", "boring", "weak", "silly", "tedious"]
NEUTRAL = ["the", "film", "movie", "plot", "was", "very", "a", "and", "acting", "story"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never write into the user's ~/.cache/hora from tests."""
    monkeypatch.setenv("HORA_CACHE", str(tmp_path / "hora-cache"))


@pytest.fixture
def trained_configs(monkeypatch) -> list:
    """The TrainConfig of every run that ``run_compare`` trains (rather than resumes or copies), in order."""
    from hora.experiments import sweep

    configs: list = []
    real_train = sweep.train
    monkeypatch.setattr(sweep, "train", lambda cfg, **kwargs: configs.append(cfg) or real_train(cfg, **kwargs))
    return configs


def save_tiny_bert(folder: Path, dropout: float = 0.1) -> Path:
    """A randomly initialised 2-layer BERT (4 heads, hidden 32, hidden and attention ``dropout``) with a
    word-level tokenizer over this file's words, saved to ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + POSITIVE + NEGATIVE + NEUTRAL
    BertTokenizer(vocab={word: i for i, word in enumerate(vocab)}).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=48, max_position_embeddings=64, hidden_dropout_prob=dropout,
                     attention_probs_dropout_prob=dropout)
    BertModel(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """The tiny BERT with BERT's usual dropout 0.1."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_bert_without_dropout(tmp_path_factory) -> Path:
    """The tiny BERT without dropout: its training is a deterministic function of the batches."""
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert-no-dropout"), dropout=0.0)


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


@pytest.fixture
def one_thread():
    """The simulation's small batched ops run fastest on one thread (see run_simulation)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def problem():
    """A small simulated regression problem (simulate_helpers.make_problem)."""
    from simulate_helpers import make_problem

    return make_problem()


SFT_WORDS = ["<pad>", "<s>", "</s>", "<unk>", "Review:", "Sentiment:", "positive", "negative"]


def save_tiny_llama(folder: Path, hidden_size: int = 32, intermediate_size: int = 40) -> Path:
    """A randomly initialised 2-layer Llama with grouped-query attention (4 query / 2 KV heads, hidden 32 unless
    told) and a word-level tokenizer (pad, BOS, EOS, the prompt words and this file's words), saved to ``folder``."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = SFT_WORDS + POSITIVE + NEGATIVE + NEUTRAL
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(folder)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(words), hidden_size=hidden_size, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=intermediate_size, max_position_embeddings=64,
                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """The tiny random GQA Llama (a causal LM folder for --objective sft)."""
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def make_prompt_rows(n: int = 120, seed: int = 0) -> list[dict]:
    """make_rows' reviews as prompts, with the answer " positive" / " negative" to generate after them."""
    answers = {"pos": " positive", "neg": " negative"}
    return [{"prompt": f"Review: {row['review']}\nSentiment:", "answer": answers[row["sentiment"]], "id": row["id"]}
            for row in make_rows(n, seed)]


@pytest.fixture
def tiny_qa_csv(tmp_path) -> Path:
    import pandas as pd

    path = tmp_path / "qa.csv"
    pd.DataFrame(make_prompt_rows()).to_csv(path, index=False)
    return path
